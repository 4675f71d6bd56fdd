// Package consumer is the plumbing every consumer of the events topic runs
// beside its work, the forwarders (package forwarding) and the archiver
// alike: its HTTP server, following the destinations (with a reload of the
// destinations file on SIGHUP) and publishing connection status.
package consumer

import (
	"context"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/auditstream/auditstream/services/internal/connstatus"
	"github.com/auditstream/auditstream/services/internal/destinations"
	"github.com/auditstream/auditstream/services/internal/server"
	"go.uber.org/zap"
)

// ServeAndWatch runs a consumer's companions until ctx ends: the HTTP
// server (already listening), its destinations (the file's watcher and the
// destinations topic), and a reload of the destinations file on SIGHUP.
// wait blocks until all three have stopped.
func ServeAndWatch(ctx context.Context, log *zap.Logger, srv *server.Server, dests *destinations.Following) (wait func()) {
	var wg sync.WaitGroup
	watcher := dests.Watcher
	wg.Go(func() {
		if err := dests.Run(ctx); err != nil {
			log.Error("destinations", zap.Error(err))
		}
	})
	wg.Go(func() {
		if err := srv.Serve(ctx); err != nil {
			log.Error("http server", zap.Error(err))
		}
	})
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	wg.Go(func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if err := watcher.Reload(); err != nil {
					log.Error("reload destinations", zap.Error(err))
				}
			}
		}
	})
	return wg.Wait
}

// RunPublisher publishes connection status until ctx ends or stop is
// called; stop returns once the publisher withdrew its records.
func RunPublisher(ctx context.Context, pub *connstatus.Publisher) (stop func()) {
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = pub.Run(pctx)
	}()
	return func() {
		cancel()
		<-done
	}
}
