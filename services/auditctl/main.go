// Command auditctl operates auditstream. `auditctl tail` prints the audit
// events on the topic as JSON lines.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/auditstream/auditstream/services/auditctl/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := cli.NewRootCommand(cli.Env{}).ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "auditctl:", err)
		os.Exit(1)
	}
}
