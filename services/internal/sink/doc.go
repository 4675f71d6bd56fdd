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
package sink
