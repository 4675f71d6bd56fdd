// Package otlp delivers audit events to one OpenTelemetry logs receiver
// over OTLP/HTTP (POST <endpoint>/v1/logs): Grafana Cloud, Grafana Loki 3's
// native OTLP endpoint, an OpenTelemetry Collector, or any backend that
// takes OTLP.
//
// Three parts, as for the other sinks:
//   - Config: the connection (endpoint, basic or bearer auth as
//     config.Secret references, extra headers, tenant, encoding, gzip,
//     request size limit), validated with every problem reported at once;
//   - Encoder: an event to one OTLP LogRecord under its resource (see
//     docs/otlp-forwarder.md for the mapping), built with the
//     OpenTelemetry Collector's own pdata types and kept as the protobuf
//     form of a one-record ExportLogsServiceRequest, with where its
//     resource, scope and record lie in it (Entry);
//   - Sink: batches of those entries merged into requests (one
//     ResourceLogs per account) within max_request_bytes, encoded as
//     protobuf or JSON, gzip-compressed, with every answer classified for
//     the delivery runtime (see WriteBatch).
//
// Encoding and sending are apart on purpose: Encode knows nothing of
// requests and WriteBatch nothing of audit events. An entry is read once,
// when it is encoded; WriteBatch, its retries and its splits only copy
// the parts it found.
//
// Secrets are read at every request, so rotation needs no restart, and
// they never appear in an error or a log line.
package otlp
