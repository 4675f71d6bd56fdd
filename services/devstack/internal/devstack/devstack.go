// Package devstack runs the whole auditstream pipeline on one machine for
// development: an embedded Kafka-protocol broker (kfake) that keeps its data
// on disk, and every service as a child process with its dev config.
package devstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.yaml.in/yaml/v3"
)

// Defaults of the devstack command line.
const (
	DefaultDataDir    = ".data"
	DefaultBrokerAddr = "127.0.0.1:9092"
	DefaultBinDir     = "bin"
	DefaultConfigDir  = "services/devstack/config"
	// DefaultIngestAddr is ingest's listen address when its config names none.
	DefaultIngestAddr = "127.0.0.1:8080"
)

// EnvKafkaBrokers is the variable every service reads its brokers from.
const EnvKafkaBrokers = "AUDITSTREAM_KAFKA_BROKERS"

// Options configure Run.
type Options struct {
	// DataDir holds the broker's data (in DataDir/kafka).
	DataDir string
	// BrokerAddr is where the embedded broker listens; port 0 picks one.
	BrokerAddr string
	// ExternalBrokers, when not empty, is a comma-separated broker list to
	// use instead of starting the embedded broker.
	ExternalBrokers string
	// BinDir holds the service executables, ConfigDir their configs.
	BinDir, ConfigDir string
	// Env is added to the children's environment after os.Environ and
	// before the broker list devstack sets.
	Env []string
	// Stdout receives the banner and the children's stdout; Stderr their
	// stderr. Nil discards.
	Stdout, Stderr io.Writer
	// Log is devstack's own logger. Nil logs nothing.
	Log *zap.Logger
	// StopTimeout bounds each shutdown wait; zero means DefaultStopTimeout.
	StopTimeout time.Duration
	// Ready, when not nil, is called once every service has started.
	Ready func(Info)
}

// Info describes a running dev stack.
type Info struct {
	// Brokers is the broker list the services were given.
	Brokers string
	// Embedded reports whether devstack started the broker itself.
	Embedded bool
	// IngestURL is the base URL of the ingest service, or "" when the
	// stack has no ingest.
	IngestURL string
	// DestinationsAPIURL is the base URL of the destinations API, or ""
	// when the stack has none; DestinationsAPIToken is DevToken when the
	// API's config accepts it.
	DestinationsAPIURL, DestinationsAPIToken string
	// Keyrings are the keyring files the services seal and open the
	// destinations' secrets with (one, or none without the API).
	Keyrings []string
	// Services are the names of the services started.
	Services []string
}

// Run starts the broker (unless Options.ExternalBrokers is set) and the
// services, and runs them until ctx is done (then it stops them and returns
// nil) or a service exits on its own (then it stops the rest and returns an
// error). The broker is closed last, so the services can finish their
// writes.
func Run(ctx context.Context, o Options) error {
	log := o.Log
	if log == nil {
		log = zap.NewNop()
	}
	// The banner and the children's lines share stdout: one lock keeps
	// every line whole.
	var out io.Writer = io.Discard
	if o.Stdout != nil {
		out = &syncWriter{out: o.Stdout}
	}
	svcs, err := Discover(o.ConfigDir, o.BinDir)
	if err != nil {
		return err
	}
	// The keyring is made before anything starts: the API and every
	// consumer read it at start-up.
	keyrings, err := prepareKeyrings(svcs, log)
	if err != nil {
		return err
	}

	info := Info{Brokers: o.ExternalBrokers, Keyrings: keyrings}
	if info.Brokers == "" {
		dir := filepath.Join(o.DataDir, "kafka")
		cl, err := StartBroker(o.BrokerAddr, dir, log.Named("kafka"))
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("%w (another devstack or Kafka is running there: stop it, pick another --broker-addr, or set KAFKA_BROKERS to use it)", err)
		}
		if err != nil {
			return err
		}
		defer func() {
			log.Info("closing the broker")
			cl.Close()
			log.Info("broker closed")
		}()
		info.Brokers = BrokerAddr(cl)
		info.Embedded = true
		log.Info("broker started", zap.String("addr", info.Brokers), zap.String("data_dir", dir))
	} else {
		log.Info("using external brokers", zap.String("brokers", info.Brokers))
	}

	env := append(os.Environ(), o.Env...)
	env = append(env, EnvKafkaBrokers+"="+info.Brokers)
	for _, svc := range svcs {
		info.Services = append(info.Services, svc.Name)
		switch svc.Name {
		case "ingest":
			addr, err := serviceAddr(svc.Config, env, DefaultIngestAddr)
			if err != nil {
				log.Warn("cannot tell ingest's address", zap.Error(err))
			} else {
				info.IngestURL = "http://" + addr
			}
		case DestinationsAPI:
			url, token, err := destinationsAPIInfo(svc, env)
			if err != nil {
				log.Warn("cannot tell the destinations API's address", zap.Error(err))
			} else {
				info.DestinationsAPIURL, info.DestinationsAPIToken = url, token
			}
		}
	}

	sup := &Supervisor{Stdout: out, Stderr: o.Stderr, Env: env, Log: log, StopTimeout: o.StopTimeout}
	return sup.Run(ctx, svcs, func() {
		writeBanner(out, info)
		if o.Ready != nil {
			o.Ready(info)
		}
	})
}

// serviceAddr reads http.addr from a service's config (def when it names
// none), with the environment override the service itself applies.
func serviceAddr(configPath string, env []string, def string) (string, error) {
	addr := def
	data, err := os.ReadFile(configPath)
	if err != nil {
		return "", err
	}
	var cfg struct {
		HTTP struct {
			Addr string `yaml:"addr"`
		} `yaml:"http"`
	}
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		return "", fmt.Errorf("parse %s: %w", configPath, err)
	}
	if cfg.HTTP.Addr != "" {
		addr = cfg.HTTP.Addr
	}
	if v, ok := lookupEnv(env, "AUDITSTREAM_HTTP_ADDR"); ok && v != "" {
		addr = v
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("http addr %q: %w", addr, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// lookupEnv finds key in env; the last entry wins, as in os/exec.
func lookupEnv(env []string, key string) (string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}

// SeedAccount is the account of the seed example event
// (proto/auditevent/testdata/seed-attributes.json).
const SeedAccount = "acc-sscctbisjkl3123"

func writeBanner(w io.Writer, info Info) {
	var b strings.Builder
	b.WriteString("\nauditstream dev stack is up: " + strings.Join(info.Services, ", ") + "\n")
	if info.Embedded {
		b.WriteString("  kafka broker  " + info.Brokers + " (embedded)\n")
	} else {
		b.WriteString("  kafka brokers " + info.Brokers + " (from KAFKA_BROKERS)\n")
	}
	if info.IngestURL != "" {
		b.WriteString("  ingest        " + info.IngestURL + "\n")
	}
	if info.DestinationsAPIURL != "" {
		b.WriteString("  destinations  " + info.DestinationsAPIURL + " (the destinations API, docs/destinations-api.md)\n")
		if info.DestinationsAPIToken != "" {
			b.WriteString("  dev token     " + info.DestinationsAPIToken + " (operator token of the dev stack only)\n")
		}
		b.WriteString("  console       " + info.DestinationsAPIURL + "/console/ (account admins' web console, docs/console.md; sign in with the dev token)\n")
	}
	for _, k := range info.Keyrings {
		b.WriteString("  keyring       " + k + " (seals the secrets set through the API)\n")
	}
	if info.IngestURL != "" || info.DestinationsAPIToken != "" {
		b.WriteString("\nTry, in another terminal:\n")
	}
	if info.IngestURL != "" {
		b.WriteString("  curl -sS -X POST " + info.IngestURL + "/v1/events -H 'content-type: application/json' --data @proto/auditevent/testdata/seed-attributes.json\n")
		tail := "  bin/auditctl tail --from-beginning"
		if info.Brokers != DefaultBrokerAddr {
			tail += " --brokers " + info.Brokers
		}
		b.WriteString(tail + "\n")
	}
	if info.DestinationsAPIToken != "" {
		b.WriteString("  curl -sS " + info.DestinationsAPIURL + "/v1/accounts/" + SeedAccount + "/audit-logs -H 'Authorization: Bearer " + info.DestinationsAPIToken + "'\n")
		b.WriteString("  (README.md's quick start turns a destination on for that account)\n")
	}
	b.WriteString("\nCtrl-C stops everything.\n\n")
	_, _ = io.WriteString(w, b.String())
}
