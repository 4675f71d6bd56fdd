package destinations

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/services/internal/config"
	"github.com/auditstream/auditstream/services/internal/secretbox"
)

// DefaultPollInterval is how often a Watcher re-reads the file.
const DefaultPollInterval = 5 * time.Second

// maxSettle bounds the pause between the two reads of a changed file.
const maxSettle = 250 * time.Millisecond

// Config is the `destinations` section of a consumer's config.
type Config struct {
	// File is the destinations file, typically a mounted ConfigMap; it may
	// be left out when the topic is followed.
	File string `yaml:"file"`
	// Topic follows the destinations topic (kafka.topics.destinations) that
	// the destinations API writes. On by default.
	Topic bool `yaml:"topic"`
	// Encryption is the key-encryption key that opens the secrets the API
	// sealed (the API's own encryption section). Without it, connections
	// with secrets configured through the API fail, saying so.
	Encryption secretbox.Config `yaml:"encryption"`
	// PollInterval is how often the file is re-read. A mounted ConfigMap
	// changes by a symlink swap that file notifications miss, so the file is
	// polled and compared by content.
	PollInterval time.Duration `yaml:"poll_interval"`
}

// DefaultConfig polls the file every 5s and follows the topic.
func DefaultConfig() Config { return Config{PollInterval: DefaultPollInterval, Topic: true} }

// Validate reports every problem in the section.
func (c Config) Validate() error {
	var errs config.Errors
	if c.File == "" && !c.Topic {
		errs.Addf("file", "is required unless topic is on: the destinations file (connections and routes)")
	}
	if c.Encryption.IsSet() {
		errs.Add("encryption", c.Encryption.Validate())
	}
	if c.PollInterval < 100*time.Millisecond {
		errs.Addf("poll_interval", "must be at least 100ms")
	}
	return errs.Err()
}

// Options configure a Watcher.
type Options struct {
	// Path is the destinations file.
	Path string
	// PollInterval is how often the file is re-read; 0 means
	// DefaultPollInterval.
	PollInterval time.Duration
	// Check, when set, runs on every version that parses, before it is
	// published; an error rejects the version. A forwarder checks the
	// settings of its own type here (see CheckType). Its errors are logged,
	// so they must not quote settings values; Connection.Decode's never do.
	Check func(*Table) error
	// Logger receives reload outcomes; nil logs nothing.
	Logger *zap.Logger
	// Registerer receives the watcher's metrics; nil registers none.
	Registerer prometheus.Registerer
	// Store, when set, adds the accounts configured through the
	// destinations API to every table; with it, Path may be empty. Register
	// the watcher before the store runs: NewWatcher does, through OnChange.
	Store *Store
	// Open opens the sealed secrets of API-managed connections.
	Open Opener
}

// Watcher keeps the current Table of a destinations file. It publishes a new
// version only when it parses and passes Check; otherwise the current table
// stays, the error is logged and counted. It is safe for concurrent use.
type Watcher struct {
	path     string
	interval time.Duration
	settle   time.Duration
	check    func(*Table) error
	log      *zap.Logger
	m        metrics

	open    Opener
	current atomic.Pointer[Table]

	mu       sync.Mutex // serializes loads and the subscriber list
	lastSeen [sha256.Size]byte
	subs     map[chan *Table]struct{}
	file     *Table  // the file's table, without the API's accounts
	api      *apiSet // the API's accounts, routed against file
}

// NewWatcher loads the file once and returns a Watcher holding it. A file
// that cannot be read, parsed or checked is an error: a consumer should not
// start without its routes. Call Run to follow changes.
func NewWatcher(o Options) (*Watcher, error) {
	if o.Path == "" && o.Store == nil {
		return nil, errors.New("destinations: neither a file nor the destinations topic given")
	}
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	w := &Watcher{
		path:     o.Path,
		interval: o.PollInterval,
		settle:   min(o.PollInterval/10, maxSettle),
		check:    o.Check,
		log:      o.Logger,
		m:        newMetrics(o.Registerer),
		subs:     map[chan *Table]struct{}{},
		open:     o.Open,
		api:      newAPISet(),
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if o.Path == "" {
		w.publish(buildTable(nil, nil))
	} else if err := w.apply(w.read()); err != nil {
		return nil, err
	}
	if o.Store != nil {
		o.Store.OnChange(w.applyAccounts)
	}
	return w, nil
}

// applyAccounts applies changes the destinations topic brought.
func (w *Watcher) applyAccounts(changes map[string]*AccountConfig) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.api = w.api.with(changes, w.open, w.file)
	old := w.current.Load()
	t := withAPI(w.file, w.api)
	w.current.Store(t)
	w.m.lastSuccess.SetToCurrentTime()
	w.log.Info("destinations topic applied",
		zap.String("version", t.Version()),
		zap.Int("accounts_changed", len(changes)),
		zap.Int("api_accounts", w.api.n),
		zap.String("previous_version", old.Version()))
	w.notify(t)
}

// Current returns the table in force. It never returns nil.
func (w *Watcher) Current() *Table { return w.current.Load() }

// Reload re-reads the file now, whether or not it changed (for SIGHUP), and
// returns why a version was rejected. A rejected version keeps the current
// table.
func (w *Watcher) Reload() error {
	if w.path == "" {
		return nil
	}
	data, sum, err := w.read()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.apply(data, sum, err)
}

// Run polls the file every PollInterval until ctx is done, and returns nil
// then. Bytes equal to the last ones read are not parsed again, so a
// rejected version is logged and counted once, not at every poll. A
// ConfigMap swap is atomic but a write in place is not, so changed bytes are
// read again after a short pause and used only if both reads agree.
func (w *Watcher) Run(ctx context.Context) error {
	if w.path == "" {
		<-ctx.Done()
		return nil
	}
	tick := time.NewTicker(w.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			w.poll(ctx)
		}
	}
}

func (w *Watcher) poll(ctx context.Context) {
	data, sum, err := w.read()
	w.mu.Lock()
	seen := sum == w.lastSeen
	w.mu.Unlock()
	if seen {
		return
	}
	if err == nil {
		pause := time.NewTimer(w.settle)
		select {
		case <-ctx.Done():
			pause.Stop()
			return
		case <-pause.C:
		}
		if _, again, err := w.read(); err != nil || again != sum {
			return // still being written: the next poll looks again
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if sum != w.lastSeen { // unless Reload got there first
		_ = w.apply(data, sum, err) // logged and counted
	}
}

// read returns the file and a hash of what was read; a read error hashes
// as its message, so the same error is reported once.
func (w *Watcher) read() ([]byte, [sha256.Size]byte, error) {
	data, err := readFile(w.path)
	if err != nil {
		return nil, sha256.Sum256([]byte("error\x00" + err.Error())), err
	}
	return data, sha256.Sum256(data), nil
}

// Subscribe returns a channel that receives the current table at once and
// then every new table the watcher publishes, and a function that ends the
// subscription (and closes the channel). The channel holds one table: a
// subscriber that falls behind skips versions and receives the latest, so
// it never blocks the watcher.
func (w *Watcher) Subscribe() (<-chan *Table, func()) {
	ch := make(chan *Table, 1)
	w.mu.Lock()
	defer w.mu.Unlock()
	ch <- w.current.Load()
	w.subs[ch] = struct{}{}
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			w.mu.Lock()
			defer w.mu.Unlock()
			delete(w.subs, ch)
			close(ch)
		})
	}
}

// apply publishes what read returned if it is good and routes differently
// from the current table. w.mu is held.
func (w *Watcher) apply(data []byte, sum [sha256.Size]byte, err error) error {
	w.lastSeen = sum
	if err != nil {
		return w.reject(err)
	}
	t, err := Parse(data)
	if err == nil && w.check != nil {
		if err = w.check(t); err != nil {
			err = fmt.Errorf("invalid destinations: %w", err)
		}
	}
	if err != nil {
		return w.reject(err)
	}
	w.m.lastSuccess.SetToCurrentTime()
	w.m.lastOK.Set(1)
	old := w.current.Load()
	if w.file != nil && w.file.Version() == t.Version() {
		w.log.Debug("destinations file read; routing unchanged", zap.String("file", w.path), zap.String("version", t.Version()))
		return nil
	}
	w.publish(t)
	added, removed, changed := diff(old, t)
	// Names and counts only: settings may hold secrets.
	w.log.Info("destinations loaded",
		zap.String("file", w.path),
		zap.String("version", w.current.Load().Version()),
		zap.Int("connections", len(t.conns)),
		zap.Int("routes", len(t.routes)),
		zap.Int("accounts", len(t.accounts)),
		zap.Strings("added", added),
		zap.Strings("removed", removed),
		zap.Strings("changed", changed))
	return nil
}

// publish puts the file's table file in force, with the API's accounts
// routed against it. w.mu is held.
func (w *Watcher) publish(file *Table) {
	t := file
	w.file = file
	if w.api.n > 0 {
		w.api = w.api.rerouted(file)
		t = withAPI(file, w.api)
	}
	w.current.Store(t)
	for _, typ := range Types {
		w.m.connections.WithLabelValues(typ).Set(0)
	}
	for typ, n := range t.CountByType(true) {
		w.m.connections.WithLabelValues(typ).Set(float64(n))
	}
	w.notify(t)
}

// notify hands t to every subscriber. w.mu is held.
func (w *Watcher) notify(t *Table) {
	for ch := range w.subs {
		select { // drop an unread older table: the latest wins
		case <-ch:
		default:
		}
		ch <- t
	}
}

func (w *Watcher) reject(err error) error {
	w.m.failures.Inc()
	w.m.lastOK.Set(0)
	w.log.Error("destinations file rejected; the current table stays",
		zap.String("file", w.path),
		zap.String("current_version", w.current.Load().Version()),
		zap.Error(err))
	return err
}

// diff names the connections added, removed and changed (type, settings or
// enabled) from old to t.
func diff(old, t *Table) (added, removed, changed []string) {
	for _, c := range t.conns {
		o := old.Lookup(c.Name)
		switch {
		case o == nil:
			added = append(added, c.Name)
		case o.Fingerprint != c.Fingerprint || o.Enabled != c.Enabled:
			changed = append(changed, c.Name)
		}
	}
	if old != nil {
		for _, o := range old.conns {
			if t.Lookup(o.Name) == nil {
				removed = append(removed, o.Name)
			}
		}
	}
	slices.Sort(removed)
	return added, removed, changed
}

type metrics struct {
	failures    prometheus.Counter
	lastSuccess prometheus.Gauge
	lastOK      prometheus.Gauge
	connections *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) metrics {
	m := metrics{
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "auditstream_destinations_reload_failures_total",
			Help: "Versions of the destinations file rejected (unreadable, invalid or failing the consumer's check); the previous table stayed in force.",
		}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "auditstream_destinations_last_reload_success_timestamp_seconds",
			Help: "When a version of the destinations file was last read and accepted.",
		}),
		lastOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "auditstream_destinations_last_reload_successful",
			Help: "1 if the latest version of the destinations file was accepted, 0 if it was rejected.",
		}),
		connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "auditstream_destinations_connections",
			Help: "Enabled connections in the destinations table in force, by type.",
		}, []string{"type"}),
	}
	if reg != nil {
		m.failures = register(reg, m.failures)
		m.lastSuccess = register(reg, m.lastSuccess)
		m.lastOK = register(reg, m.lastOK)
		m.connections = register(reg, m.connections)
	}
	return m
}

// register registers c, or returns the collector already registered under
// its name, so two watchers may share a registry.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(fmt.Sprintf("destinations: register metrics: %v", err))
	}
	return c
}
