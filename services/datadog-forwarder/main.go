// Command datadog-forwarder streams audit events from Kafka to Datadog.
package main

import (
	"github.com/auditstream/auditstream/services/datadog-forwarder/internal/forwarder"
	"github.com/auditstream/auditstream/services/internal/forwarding"
)

func main() { forwarding.Main(forwarder.Spec) }
