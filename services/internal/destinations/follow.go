package destinations

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/services/internal/kafka"
	"github.com/auditstream/auditstream/services/internal/secretbox"
)

// SecretboxOpener opens the secrets the destinations API sealed with box.
func SecretboxOpener(box *secretbox.Box) Opener {
	return func(ctx context.Context, raw json.RawMessage, aad map[string]string) ([]byte, error) {
		var sealed secretbox.Sealed
		if err := json.Unmarshal(raw, &sealed); err != nil {
			return nil, fmt.Errorf("stored secret is not a sealed value: %w", err)
		}
		return box.Open(ctx, sealed, secretbox.Context(aad))
	}
}

// Following is a consumer's view of its destinations: the file, the
// destinations topic, or both.
type Following struct {
	Watcher *Watcher
	// Store is nil when the topic is not followed.
	Store *Store
}

// Follow opens what cfg names: the destinations file (checked with check)
// and, unless turned off, the destinations topic the API writes, with the
// key ring that opens its secrets. Of the topic, a consumer keeps the
// resources of types only (nil keeps all). Run the result; a consumer must not
// route before Ready.
func Follow(ctx context.Context, cfg Config, kcfg kafka.Config, types []string, check func(*Table) error, log *zap.Logger, reg prometheus.Registerer) (*Following, error) {
	f := &Following{}
	var open Opener
	if cfg.Topic {
		if cfg.Encryption.IsSet() {
			kek, err := secretbox.NewKEK(ctx, cfg.Encryption, log)
			if err != nil {
				return nil, fmt.Errorf("destinations.encryption: %w", err)
			}
			open = SecretboxOpener(secretbox.New(kek))
		}
		s, err := NewStore(ctx, StoreOptions{Kafka: kcfg, Logger: log, Registerer: reg, Types: types})
		if err != nil {
			return nil, err
		}
		f.Store = s
	}
	w, err := NewWatcher(Options{Path: cfg.File, PollInterval: cfg.PollInterval, Check: check, Logger: log, Registerer: reg, Store: f.Store, Open: open})
	if err != nil {
		f.Close()
		return nil, err
	}
	f.Watcher = w
	return f, nil
}

// Run follows the file and the topic until ctx ends.
func (f *Following) Run(ctx context.Context) error {
	if f.Store == nil {
		return f.Watcher.Run(ctx)
	}
	errc := make(chan error, 1)
	go func() { errc <- f.Store.Run(ctx) }()
	werr := f.Watcher.Run(ctx)
	if err := <-errc; err != nil {
		return err
	}
	return werr
}

// WaitReady waits until the topic has been read up to its end (at once
// without the topic).
func (f *Following) WaitReady(ctx context.Context) error {
	if f.Store == nil {
		return nil
	}
	return f.Store.WaitReady(ctx)
}

// Ready is a readiness check: the topic has been read.
func (f *Following) Ready(context.Context) error {
	if f.Store == nil {
		return nil
	}
	return f.Store.IsReady()
}

// Close releases the topic's client; call it after Run returned.
func (f *Following) Close() {
	if f.Store != nil {
		f.Store.Close()
	}
}

// Rewrapper re-seals one stored secret under the current key-encryption
// key; changed is false for a secret already under it.
type Rewrapper func(ctx context.Context, sealed json.RawMessage, aad map[string]string) (out json.RawMessage, changed bool, err error)

// SecretboxRewrapper re-wraps with box the secrets sealed under a key that
// is no longer box's current one.
func SecretboxRewrapper(box *secretbox.Box) Rewrapper {
	return func(ctx context.Context, raw json.RawMessage, aad map[string]string) (json.RawMessage, bool, error) {
		var sealed secretbox.Sealed
		if err := json.Unmarshal(raw, &sealed); err != nil {
			return nil, false, fmt.Errorf("stored secret is not a sealed value: %w", err)
		}
		if !box.Stale(sealed) {
			return raw, false, nil
		}
		again, err := box.Rewrap(ctx, sealed, secretbox.Context(aad))
		if err != nil {
			return nil, false, err
		}
		out, err := json.Marshal(again)
		return out, err == nil, err
	}
}

// Snapshot reads the destinations topic to its end (and the file cfg
// names, if any) and returns the table then in force, for a command that
// needs the destinations once rather than following them.
func Snapshot(ctx context.Context, cfg Config, kcfg kafka.Config, log *zap.Logger) (*Table, error) {
	cfg.Topic = true
	kcfg.Topics.Bootstrap = false // a reader creates nothing
	f, err := Follow(ctx, cfg, kcfg, nil, nil, log, nil)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- f.Store.Run(runCtx) }()
	defer func() { stop(); <-done }()
	if err := f.WaitReady(ctx); err != nil {
		return nil, err
	}
	return f.Watcher.Current(), nil
}
