package devstack

import (
	"io"
	"os"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// NewCommand returns the devstack command line. Output goes to stdout and
// stderr; getenv reads KAFKA_BROKERS (nil means os.Getenv).
func NewCommand(stdout, stderr io.Writer, getenv func(string) string) *cobra.Command {
	if getenv == nil {
		getenv = os.Getenv
	}
	o := Options{Stdout: stdout, Stderr: stderr}
	cmd := &cobra.Command{
		Use:   "devstack",
		Short: "Run the auditstream pipeline locally: an embedded Kafka broker and every service",
		Long: `devstack runs the auditstream pipeline on this machine for development.

It starts an embedded Kafka-protocol broker that keeps its data in
<data-dir>/kafka (so a restart keeps events and consumer offsets), then one
child process per YAML file in the config dir: name.yaml runs
<bin>/name --config <config-dir>/name.yaml with AUDITSTREAM_KAFKA_BROKERS set
to the broker. Set KAFKA_BROKERS to use an existing Kafka instead of the
embedded broker. Before the services start, it creates the keyring file
the configs name (encryption.keyring_file of the destinations API,
destinations.encryption.keyring_file of the consumers) if it is missing,
and it prints the destinations API's URL and development token.

Ctrl-C (or SIGTERM) stops the services, then the broker. If a service exits
on its own, devstack stops the others and exits non-zero.`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.ExternalBrokers = getenv("KAFKA_BROKERS")
			o.Log = newLogger(stderr)
			defer func() { _ = o.Log.Sync() }()
			return Run(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.DataDir, "data-dir", DefaultDataDir, "directory for the broker's data (kept across restarts)")
	f.StringVar(&o.BrokerAddr, "broker-addr", DefaultBrokerAddr, "listen address of the embedded broker")
	f.StringVar(&o.BinDir, "bin", DefaultBinDir, "directory holding the service executables")
	f.StringVar(&o.ConfigDir, "config-dir", DefaultConfigDir, "directory holding one <service>.yaml per service to run")
	f.DurationVar(&o.StopTimeout, "stop-timeout", DefaultStopTimeout, "how long services get to stop after SIGTERM before they are killed")
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	return cmd
}

func newLogger(w io.Writer) *zap.Logger {
	enc := zap.NewDevelopmentEncoderConfig()
	enc.EncodeTime = zapcore.TimeEncoderOfLayout("15:04:05.000")
	core := zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.Lock(zapcore.AddSync(w)), zapcore.InfoLevel)
	return zap.New(core).Named("devstack")
}
