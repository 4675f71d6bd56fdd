// Command eventbridge-forwarder streams audit events from Kafka to Amazon
// EventBridge.
package main

import (
	"github.com/auditstream/auditstream/services/eventbridge-forwarder/internal/forwarder"
	"github.com/auditstream/auditstream/services/internal/forwarding"
)

func main() { forwarding.Main(forwarder.Spec) }
