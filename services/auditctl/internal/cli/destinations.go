package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/services/internal/destinations"
	"github.com/auditstream/auditstream/services/internal/secretbox"
)

func newDestinationsCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "destinations",
		Short: "Maintain the destinations topic the destinations API writes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return fmt.Errorf("destinations needs a subcommand: rewrap (see '%s --help')", cmd.CommandPath())
		},
	}
	cmd.AddCommand(newRewrapCommand(g))
	return cmd
}

type rewrapOptions struct {
	execute bool
	output  outputFlag
}

// rewrapReport is what rewrap found and did.
type rewrapReport struct {
	Accounts  int      `json:"accounts"`
	Secrets   int      `json:"secrets"`
	Stale     int      `json:"stale"`
	Rewrapped int      `json:"rewrapped"`
	KeyID     string   `json:"key_id"`
	Failed    []string `json:"failed,omitempty"`
	Executed  bool     `json:"executed"`
}

func newRewrapCommand(g *globals) *cobra.Command {
	o := rewrapOptions{output: outputText}
	cmd := &cobra.Command{
		Use:   "rewrap",
		Short: "Re-seal every stored secret under the current key-encryption key",
		Long: `rewrap reads the destinations topic and re-seals every secret that is sealed
under a key-encryption key other than the current one (the keyring's primary,
or the KMS key), account by account, as ordinary versioned writes: the API and
the consumers keep running, and a consumer opens a secret under the old or the
new key alike as long as its keyring still holds both. Remove the old key
only once rewrap reports nothing stale.

It needs destinations.encryption in --config (the key ring the API and the
consumers use). It is a dry run unless --execute is given: it counts the stale
secrets and changes nothing.`,
		Example: `  auditctl destinations rewrap --config destinations-api.yaml
  auditctl destinations rewrap --config destinations-api.yaml --execute`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			if !cfg.Destinations.Encryption.IsSet() {
				return errors.New("destinations.encryption is not set in the configuration: rewrap needs the key ring (keyring_file or kms)")
			}
			if err := cfg.Destinations.Encryption.Validate(); err != nil {
				return fmt.Errorf("destinations.encryption: %w", err)
			}
			ctx := cmd.Context()
			kek, err := secretbox.NewKEK(ctx, cfg.Destinations.Encryption, zap.NewNop())
			if err != nil {
				return fmt.Errorf("destinations.encryption: %w", err)
			}
			box := secretbox.New(kek)
			cl, err := g.connect(ctx, cfg)
			if err != nil {
				return err
			}
			cl.Close()
			store, err := destinations.NewStore(ctx, destinations.StoreOptions{Kafka: cfg.Kafka, Writer: o.execute})
			if err != nil {
				return err
			}
			defer store.Close()
			runCtx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- store.Run(runCtx) }()
			defer func() { stop(); <-done }()
			readyCtx, cancel := context.WithTimeout(ctx, max(g.timeout, time.Minute))
			err = store.WaitReady(readyCtx)
			cancel()
			if err != nil {
				return err
			}
			rep := rewrap(ctx, store, box, o.execute)
			if o.output.json() {
				if err := writeJSON(g.env.Stdout, rep); err != nil {
					return err
				}
			} else {
				verb := "would re-seal"
				if rep.Executed {
					verb = "re-sealed"
				}
				fmt.Fprintf(g.env.Stdout, "%d accounts, %d secrets, %d sealed under another key than %s; %s %d\n", rep.Accounts, rep.Secrets, rep.Stale, rep.KeyID, verb, rep.Rewrapped)
				for _, f := range rep.Failed {
					fmt.Fprintln(g.env.Stdout, "failed:", f)
				}
			}
			if len(rep.Failed) > 0 {
				return fmt.Errorf("%d accounts could not be re-sealed", len(rep.Failed))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.execute, "execute", false, "write the re-sealed secrets (without it, only count them)")
	f.Var(&o.output, "output", "text or json")
	return cmd
}

// rewrap counts, and with execute re-seals, the stale secrets of every
// account. An account changed concurrently through the API is tried again.
func rewrap(ctx context.Context, store *destinations.Store, box *secretbox.Box, execute bool) rewrapReport {
	rep := rewrapReport{KeyID: box.CurrentKeyID(), Executed: execute}
	all := store.Accounts()
	accounts := make([]string, 0, len(all))
	for a := range all {
		accounts = append(accounts, a)
	}
	slices.Sort(accounts)
	rep.Accounts = len(accounts)
	count := destinations.SecretboxRewrapper(box)
	for _, account := range accounts {
		seen, stale, err := all[account].Clone().Rewrap(ctx, func(ctx context.Context, sealed json.RawMessage, aad map[string]string) (json.RawMessage, bool, error) {
			var s secretbox.Sealed
			if err := json.Unmarshal(sealed, &s); err != nil {
				return nil, false, err
			}
			return sealed, box.Stale(s), nil
		})
		rep.Secrets += seen
		rep.Stale += stale
		if err != nil {
			rep.Failed = append(rep.Failed, fmt.Sprintf("%s: %v", account, err))
			continue
		}
		if !execute || stale == 0 {
			continue
		}
		var changed int
		for attempt := 0; ; attempt++ {
			_, err = store.Update(ctx, account, "auditctl-rewrap", func(cur *destinations.AccountConfig, _ int64) (*destinations.AccountConfig, error) {
				if cur == nil {
					return nil, errNothingToRewrap
				}
				_, n, err := cur.Rewrap(ctx, count)
				if err == nil && n == 0 {
					err = errNothingToRewrap
				}
				changed = n
				return cur, err
			})
			if !errors.Is(err, destinations.ErrConflict) || attempt == 3 {
				break
			}
		}
		switch {
		case errors.Is(err, errNothingToRewrap):
		case err != nil:
			rep.Failed = append(rep.Failed, fmt.Sprintf("%s: %v", account, err))
		default:
			rep.Rewrapped += changed
		}
	}
	return rep
}

var errNothingToRewrap = errors.New("nothing to re-seal")
