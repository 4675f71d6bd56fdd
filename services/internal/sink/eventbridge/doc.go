// Package eventbridge delivers audit events to one EventBridge connection:
// an event bus (by name or ARN) in a region, written with PutEvents.
//
// Three parts:
//   - Config: the connection (region, bus, endpoint override, source,
//     detail type, credentials: the AWS default chain, static keys from
//     config.Secrets, or an assumed role with an external id), validated
//     with every problem reported at once;
//   - Encoder: an event to one PutEvents entry. Detail is the event's
//     seed-shaped JSON with its id, Time its timestamp, Resources its
//     target when the target id is an ARN. Entries are sized as AWS sizes
//     them (EntrySize), and one over 256 KiB is refused at once so the
//     runtime dead-letters it;
//   - Sink: batches of entries under the sink.Sink contract, cut into
//     calls of at most 10 entries and 256 KiB, several calls in flight, and
//     every call's and every entry's answer classified for the delivery
//     runtime (see WriteBatch), so only failed entries are ever sent again.
//     Calls go through aws-sdk-go-v2's EventBridge client with its retries
//     off; only the PutEvents body is written by the sink
//     (putEventsProtocol), byte for byte as the SDK would write it.
//
// Credentials never appear in an error or a log: Secrets are read when
// credentials are needed and errors name their sources; the SDK's logger is
// off; answers are quoted shortened and in printable ASCII only.
//
// The package lives with the shared code so that the EventBridge forwarder
// and auditctl (replay, redrive) deliver through the very same sink.
package eventbridge
