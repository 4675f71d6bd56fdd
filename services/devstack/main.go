// Command devstack runs the auditstream pipeline locally: an embedded Kafka
// broker and every service as a child process. `make run` starts it.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/auditstream/auditstream/services/devstack/internal/devstack"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		// A second Ctrl-C during shutdown ends devstack at once.
		stop()
	}()
	if err := devstack.NewCommand(os.Stdout, os.Stderr, nil).ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "devstack:", err)
		os.Exit(1)
	}
}
