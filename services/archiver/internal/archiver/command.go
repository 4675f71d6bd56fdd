package archiver

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/auditstream/auditstream/services/internal/config"
	"github.com/auditstream/auditstream/services/internal/destinations"
	"github.com/auditstream/auditstream/services/internal/version"
)

// Command is the archiver's command line.
func Command(env []string) *cobra.Command {
	var configPath string
	var checkOnly bool
	cmd := &cobra.Command{
		Use:   "archiver",
		Short: "Archive audit events into daily, immutable objects in S3, GCS, Azure Blob or a directory",
		Long: `archiver consumes the events topic in its own consumer group and writes each
account's events as gzip-compressed JSON lines into the account's storage
connections, one object per window of event time (a UTC day by default), with
a signed manifest chain per account. Objects are created with conditional
creates and never overwritten; offsets are committed only after the objects
covering them exist.`,
		Version:       version.Version,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := DefaultConfig()
			if err := config.Load(configPath, env, &cfg); err != nil {
				return err
			}
			if checkOnly {
				table, err := destinations.Load(cfg.Destinations.File)
				if err != nil {
					return err
				}
				if err := destinations.CheckType(StorageType, CheckStorage)(table); err != nil {
					return err
				}
				_, err = fmt.Fprintln(cmd.OutOrStdout(), "config is valid")
				return err
			}
			return Run(cmd.Context(), cfg)
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "path to the YAML config file")
	cmd.Flags().BoolVar(&checkOnly, "check-config", false, "validate the configuration and the destinations file, then exit")
	return cmd
}

// Execute runs the command line and returns the exit code.
func Execute(ctx context.Context, args, env []string, stdout, stderr io.Writer) int {
	cmd := Command(env)
	cmd.SetArgs(args)
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	if err := cmd.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(stderr, "archiver: %v\n", err)
		return 1
	}
	return 0
}

// Main is the whole main: signals, command line, exit code.
func Main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Execute(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
