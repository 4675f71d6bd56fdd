// Package cmdline is the command line the long-running services share:
// --config (a YAML file, then AUDITSTREAM_* environment overrides, then
// validation) and --check-config, an exit code for every error, and a main
// that stops the service on SIGINT and SIGTERM.
package cmdline

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/auditstream/auditstream/services/internal/config"
	"github.com/auditstream/auditstream/services/internal/version"
	"github.com/spf13/cobra"
)

// Service describes one service's command. C is its configuration; P is
// *C, which validates it.
type Service[C any, P interface {
	*C
	config.Validator
}] struct {
	// Use is the binary's name; Short and Long describe it.
	Use, Short, Long string
	// Defaults is the configuration before the file and environment apply.
	Defaults func() C
	// Check, when set, is what --check-config checks beyond the loaded and
	// validated configuration, such as the destinations file.
	Check func(cfg C) error
	// Run runs the service until ctx ends.
	Run func(ctx context.Context, cfg C) error
}

// Command is the service's command line; env is the environment the
// configuration's overrides are read from (os.Environ in main).
func (s Service[C, P]) Command(env []string) *cobra.Command {
	var configPath string
	var checkOnly bool
	cmd := &cobra.Command{
		Use:           s.Use,
		Short:         s.Short,
		Long:          s.Long,
		Version:       version.Version,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := s.Defaults()
			if err := config.Load(configPath, env, P(&cfg)); err != nil {
				return err
			}
			if checkOnly {
				if s.Check != nil {
					if err := s.Check(cfg); err != nil {
						return err
					}
				}
				_, err := fmt.Fprintln(cmd.OutOrStdout(), "config is valid")
				return err
			}
			return s.Run(cmd.Context(), cfg)
		},
	}
	check := "validate the configuration, then exit"
	if s.Check != nil {
		check = "validate the configuration and the destinations file, then exit"
	}
	cmd.Flags().StringVar(&configPath, "config", "", "path to the YAML config file (defaults apply when empty)")
	cmd.Flags().BoolVar(&checkOnly, "check-config", false, check)
	return cmd
}

// Execute runs the service's command line with args and returns the exit
// code: 0, or 1 after printing "<use>: <error>" to stderr.
func (s Service[C, P]) Execute(ctx context.Context, args, env []string, stdout, stderr io.Writer) int {
	cmd := s.Command(env)
	cmd.SetArgs(args)
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	if err := cmd.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", s.Use, err)
		return 1
	}
	return 0
}

// Main is a service's whole main: the command line on the process's
// arguments and environment, stopped by SIGINT or SIGTERM, and its exit
// code.
func (s Service[C, P]) Main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := s.Execute(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
