// Command otlp-forwarder streams audit events from Kafka to OpenTelemetry
// logs receivers over OTLP/HTTP (Grafana Cloud, Loki, a Collector).
package main

import (
	"github.com/auditstream/auditstream/services/internal/forwarding"
	"github.com/auditstream/auditstream/services/otlp-forwarder/internal/forwarder"
)

func main() { forwarding.Main(forwarder.Spec) }
