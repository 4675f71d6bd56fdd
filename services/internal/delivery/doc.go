// Package delivery is the runtime every forwarder shares: it consumes the
// events topic, routes each event to its account's connections, batches and
// sends them through each connection's sink, retries, parks and
// dead-letters what a sink refuses, and commits offsets only behind what is
// done (Runtime). A forwarder gives it an EntrySink per connection (NewEntrySink: an
// encoder and a sink over the sink's own entry type); the
// contract that sink keeps (error classes, BatchError, batch policy,
// backoff) is package sink, so the sinks need not import the consumer.
//
// Keeping the retry, split, dead-letter and park decisions here, rather
// than in each forwarder, is what lets every destination keep the same
// "nothing accepted is lost" guarantee.
package delivery
