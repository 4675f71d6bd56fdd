// Package delivery holds the network-free parts of the delivery runtime that
// every forwarder shares: when to cut a batch (BatchPolicy, Batcher, Split),
// how long to wait before trying again (Backoff, RetryAfter), what a failure
// means (Class, SendError, Classify, ClassifyHTTP) and what a sink promises
// (Sink, BatchError).
//
// The shape follows Benthos / Redpanda Connect's batched outputs: the runtime
// accumulates records under one policy, hands a batch to a sink, and decides
// from the sink's classified errors whether to retry, split, dead-letter or
// park. Keeping that decision here, rather than in each forwarder, is what
// lets every destination keep the same "nothing accepted is lost" guarantee.
package delivery
