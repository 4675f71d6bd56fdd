// Package delivery is the runtime every forwarder shares: it consumes the
// events topic, routes each event to its account's connections, batches and
// sends them through each connection's sink, retries, parks and
// dead-letters what a sink refuses, and commits offsets only behind what is
// done (Runtime). Around it sit when to cut a batch (BatchPolicy, Batcher,
// Split), how long to wait before trying again (Backoff, RetryAfter), what
// a failure means (Class, SendError, Classify, ClassifyHTTP), what a sink
// promises (Sink, EntrySink, BatchError) and the dead-letter record
// (DeadLetter).
//
// The shape follows Benthos / Redpanda Connect's batched outputs: the runtime
// accumulates records under one policy, hands a batch to a sink, and decides
// from the sink's classified errors whether to retry, split, dead-letter or
// park. Keeping that decision here, rather than in each forwarder, is what
// lets every destination keep the same "nothing accepted is lost" guarantee.
package delivery
