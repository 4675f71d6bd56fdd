// Command ingest is auditstream's front door for audit events.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/auditstream/auditstream/services/ingest/internal/ingest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(ingest.Execute(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}
