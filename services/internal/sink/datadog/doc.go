// Package datadog delivers audit events to one Datadog connection's logs
// intake (POST /api/v2/logs on https://http-intake.logs.<site>).
//
// Three parts:
//   - Config: the connection (site or base URL, API key as a config.Secret,
//     tag prefix, source, timeout, compression), validated with every
//     problem reported at once;
//   - Encoder: an event to one log entry, written by appending with the
//     event codec's writers (no reflection). The entry reproduces the seed's
//     example log: ddsource, ddtags, message, the event's attributes, and
//     hostname, service and timestamp as Datadog's reserved attributes. The
//     event id travels as "audit-id", since Datadog keeps "id" for its own;
//   - Sink: batches of entries to the intake under the sink.Sink
//     contract, cut to the intake's limits (1000 entries, 5 MB
//     uncompressed, 1 MB an entry), gzip-compressed, with every answer
//     classified for the delivery runtime (see WriteBatch).
//
// The API key is read from its Secret at every request, so rotation needs no
// restart, and it never appears in an error: errors carry the class, the
// status and the start of the intake's answer with the key masked.
//
// Entries older than Datadog's 18 h window (MaxLogAge) are still sent, since
// the intake accepts them, but Datadog may drop them; the sink counts them
// through Options.AtRisk and leaves logging and metrics to its caller.
//
// The package uses datadog-api-client-go's small datadog package only. Its
// datadogV2 package, which holds SubmitLog, takes minutes and gigabytes to
// compile and would re-encode the entries through reflection; the tests use
// it to prove that the sink's requests carry what SubmitLog's would.
//
// The package lives with the shared code so that the Datadog forwarder and
// auditctl (replay, redrive) deliver through the very same sink; no other
// service should import it.
package datadog
