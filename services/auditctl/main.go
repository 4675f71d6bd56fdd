// Command auditctl is the operators' command line for auditstream: tail and
// produce events, show lag, reset a group's offsets, inspect and redrive
// dead letters, replay a time range through a connection's own sink, and
// rebuild and verify the archive.
// docs/auditctl.md describes each command.
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
