// Package sink is the contract between a destination and whatever sends to
// it: what a sink promises (Sink, BatchError), what a failure means (Class,
// SendError, Classify, and CheckStatus and ClassifyHTTP for HTTP answers),
// when to cut a batch (BatchPolicy, Batcher, Split) and how long to wait
// before trying again (Backoff, RetryAfter).
//
// The shape follows Benthos / Redpanda Connect's batched outputs: a sender
// accumulates records under one policy, hands a batch to a sink, and decides
// from the sink's classified errors whether to retry, split, dead-letter or
// park. The destinations (sink/datadog, sink/eventbridge), the forwarders'
// runtime (delivery), the archiver and auditctl depend on this package, and
// it depends on none of them, so a sink does not pull in the consumer.
//
// # Writing a destination
//
// A destination is a package of its own under sink/ with:
//
//   - a Config decoded from a connection's settings (with Validate and
//     WithDefaults; secrets as config.Secret, never logged);
//   - an encoder, EncodeEntry(*auditlogv1.AuditEvent) (Entry[E], error)
//     (Encoder), that turns one event (already filtered and redacted by
//     the connection's policy) into the destination's entry: a value of
//     the destination's own type E, already encoded as the destination
//     takes it, with its Size and the event's Time and ID (EntryOf). An
//     entry the destination can never take (over its size limit) is a
//     Permanent *SendError: the runtime dead-letters that event for that
//     connection;
//   - a Sink[E] whose WriteBatch sends a batch of those entries, cut
//     into requests by the destination's own limits (Split), and reports
//     each entry's outcome as the Sink comment says: nil, a *BatchError
//     naming the failed indexes, or one error for the whole batch. What
//     the runtime knows of an entry comes with it, so a sink never
//     decodes its own entries to learn it;
//   - the classification of the destination's answers into Class:
//     Retryable (try again with Backoff, then park), Permanent (dead-letter
//     the entry), TooLarge (the request was too large; the caller resends,
//     and an entry too large alone is Permanent), Unhealthy (the connection
//     is broken: park its events until an operator fixes it). A hint to
//     wait goes in SendError.RetryAfter.
//
// The retry policy, batching, parking and dead-lettering are the caller's
// (delivery for the forwarders, auditctl's replay sender), never the
// sink's. delivery.NewEntrySink pairs the encoder and the Sink for the
// runtime, which keeps entries typed (no allocation of its own per event);
// services/testsupport/sinkconformance is the suite a new destination's
// forwarder runs with an adapter for its fake.
package sink
