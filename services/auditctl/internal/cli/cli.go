// Package cli is the auditctl command line: tools for people who run
// auditstream.
package cli

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// Defaults shared by the subcommands.
const (
	DefaultBrokers = "127.0.0.1:9092"
	DefaultTopic   = "audit.events"
	// EnvBrokers overrides the configured brokers, as it does for the
	// services; --brokers overrides both.
	EnvBrokers = "AUDITSTREAM_KAFKA_BROKERS"
	// DefaultTimeout bounds the first contact with Kafka and each admin
	// request, so a wrong address fails fast instead of waiting silently.
	DefaultTimeout = 5 * time.Second
)

// Env gives the command its surroundings; tests replace them.
type Env struct {
	Stdout, Stderr io.Writer
	// Stdin is read by `produce --file -`; nil means os.Stdin.
	Stdin io.Reader
	// Environ lists the environment as KEY=VALUE; nil means os.Environ.
	Environ func() []string
	// Now is the clock relative times (-2h) are read against; nil means
	// time.Now.
	Now func() time.Time
	// IsTerminal reports whether w is a terminal (progress bars); nil means
	// a check of w's file descriptor.
	IsTerminal func(w io.Writer) bool
}

func (e Env) withDefaults() Env {
	if e.Stdout == nil {
		e.Stdout = os.Stdout
	}
	if e.Stderr == nil {
		e.Stderr = os.Stderr
	}
	if e.Stdin == nil {
		e.Stdin = os.Stdin
	}
	if e.Environ == nil {
		e.Environ = os.Environ
	}
	if e.Now == nil {
		e.Now = time.Now
	}
	if e.IsTerminal == nil {
		e.IsTerminal = isTerminal
	}
	return e
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// NewRootCommand returns the auditctl command tree.
func NewRootCommand(env Env) *cobra.Command {
	env = env.withDefaults()
	g := &globals{env: env}
	root := &cobra.Command{
		Use:   "auditctl",
		Short: "Operate auditstream: inspect, replay and repair the audit event topic",
		Long: `auditctl is the operators' command line for auditstream. It reads the same
configuration as the services: --config names a YAML file with a kafka
section (a forwarder's or the archiver's own config file works as it is),
AUDITSTREAM_* environment variables override it, and --brokers overrides
both.

It never joins a consumer group to read: tail, replay, dlq and archive
rebuild read partitions directly, so running it moves no service's offsets.`,
		Example: `  auditctl tail --from-beginning --max 10
  auditctl lag
  auditctl replay --from 2024-02-16T10:00:00Z --to 2024-02-16T12:00:00Z --destination dd-acme --config forwarder.yaml
  auditctl archive verify --config archiver.yaml --from 2024-02-01 --to 2024-02-29`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%w (see '%s --help')", err, c.CommandPath())
	})
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	pf := root.PersistentFlags()
	pf.StringVar(&g.configPath, "config", "", "YAML config file with the kafka section (a forwarder's or the archiver's own config file works)")
	pf.StringVar(&g.brokers, "brokers", "", "comma-separated Kafka brokers; overrides --config and $"+EnvBrokers+" (default "+DefaultBrokers+")")
	pf.DurationVar(&g.timeout, "timeout", DefaultTimeout, "how long to wait for Kafka to answer before giving up")
	root.AddCommand(
		newTailCommand(g),
		newProduceCommand(g),
		newLagCommand(g),
		newOffsetsCommand(g),
		newDLQCommand(g),
		newReplayCommand(g),
		newArchiveCommand(g),
		newDestinationsCommand(g),
	)
	return root
}
