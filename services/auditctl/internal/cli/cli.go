// Package cli is the auditctl command line: tools for people who run
// auditstream.
package cli

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// Defaults shared by the subcommands.
const (
	DefaultBrokers = "127.0.0.1:9092"
	DefaultTopic   = "audit.events"
	// EnvBrokers overrides DefaultBrokers, as it does for the services.
	EnvBrokers = "AUDITSTREAM_KAFKA_BROKERS"
)

// Env gives the command its surroundings; tests replace them.
type Env struct {
	Stdout, Stderr io.Writer
	// Getenv reads environment variables; nil means os.Getenv.
	Getenv func(string) string
}

// NewRootCommand returns the auditctl command tree.
func NewRootCommand(env Env) *cobra.Command {
	if env.Stdout == nil {
		env.Stdout = os.Stdout
	}
	if env.Stderr == nil {
		env.Stderr = os.Stderr
	}
	if env.Getenv == nil {
		env.Getenv = os.Getenv
	}
	root := &cobra.Command{
		Use:           "auditctl",
		Short:         "Operate auditstream: inspect the audit event topic",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%w (see '%s --help')", err, c.CommandPath())
	})
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	root.AddCommand(newTailCommand(env))
	return root
}

// defaultBrokers is the broker list when --brokers is not given.
func defaultBrokers(getenv func(string) string) string {
	if v := strings.TrimSpace(getenv(EnvBrokers)); v != "" {
		return v
	}
	return DefaultBrokers
}

// splitList splits a comma-separated list, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
