// Command datadog-forwarder streams audit events from Kafka to Datadog.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/auditstream/auditstream/services/datadog-forwarder/internal/forwarder"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(forwarder.Execute(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}
