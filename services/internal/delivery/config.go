package delivery

import (
	"time"

	"github.com/auditstream/auditstream/services/internal/config"
	"github.com/auditstream/auditstream/services/internal/kafka"
	"github.com/auditstream/auditstream/services/internal/sink"
)

// Config is the `delivery` section of a forwarder.
type Config struct {
	// Group is the consumer group; one per forwarder.
	Group string `yaml:"group"`
	// RetryTopic holds this forwarder's parked events. The forwarder's own
	// group reads it back when each event is due.
	RetryTopic kafka.TopicSpec  `yaml:"retry_topic"`
	Batch      sink.BatchPolicy `yaml:"batch"`
	Backoff    sink.Backoff     `yaml:"backoff"`
	// RetryBudget is how long a batch is retried in place before its events
	// are parked, so one failing connection never holds up the others.
	RetryBudget time.Duration `yaml:"retry_budget"`
	// ParkDelay is how long a parked event waits before it is tried again.
	ParkDelay time.Duration `yaml:"park_delay"`
	// MaxAge is how long an event may stay parked before it is dead-lettered.
	MaxAge time.Duration `yaml:"max_age"`
	// UnhealthyProbe is how often a connection marked unhealthy is tried with
	// real events; between probes its events are parked at once.
	UnhealthyProbe time.Duration `yaml:"unhealthy_probe"`
	// MaxInflightBytes caps the polled records not yet finished; fetching
	// waits beyond it, so memory is set by configuration, not by backlog.
	MaxInflightBytes config.ByteSize `yaml:"max_inflight_bytes"`
	// MaxConnectionBytes caps how much of MaxInflightBytes one connection may
	// hold queued; past it the connection's new events are parked rather
	// than leaving the others no room. At MaxInflightBytes a slow connection
	// only slows fetching (right when it is the only one).
	MaxConnectionBytes config.ByteSize `yaml:"max_connection_bytes"`
	// BacklogMaxWait is how long a connection over MaxConnectionBytes may go
	// without draining its oldest queued event before its new events are
	// parked; until then it only slows fetching.
	BacklogMaxWait time.Duration `yaml:"backlog_max_wait"`
	// MaxRetryHeldBytes caps parked records read back early and waiting for
	// their due time; past it the retry topic is paused.
	MaxRetryHeldBytes config.ByteSize `yaml:"max_retry_held_bytes"`
	// CommitInterval is how often finished offsets are committed.
	CommitInterval time.Duration `yaml:"commit_interval"`
	// RevokeTimeout bounds the flush before partitions are handed over in a
	// rebalance; keep it under the group's rebalance timeout.
	RevokeTimeout time.Duration `yaml:"revoke_timeout"`
	// RequestsInFlight is how many batches one connection may have out at
	// once (at least 1).
	RequestsInFlight int `yaml:"requests_in_flight"`
	// SendTimeout bounds one WriteBatch call.
	SendTimeout time.Duration `yaml:"send_timeout"`
	// SessionTimeout is how long the group waits for a member that stopped
	// heartbeating (a crashed pod) before moving its partitions.
	SessionTimeout time.Duration `yaml:"session_timeout"`
	// RebalanceTimeout bounds how long members may take to hand partitions
	// over; RevokeTimeout must fit inside it.
	RebalanceTimeout time.Duration `yaml:"rebalance_timeout"`
}

// DefaultConfig returns the defaults for a forwarder named name
// (e.g. "datadog"): group auditstream-<name>, retry topic
// audit.events.retry.<name>.
func DefaultConfig(name string) Config {
	return Config{
		Group:              "auditstream-" + name,
		RetryTopic:         kafka.TopicSpec{Name: "audit.events.retry." + name, Partitions: 6, ReplicationFactor: -1, Retention: 8 * 24 * time.Hour},
		Batch:              sink.BatchPolicy{Count: 500, Bytes: 4 << 20, Period: 200 * time.Millisecond, Idle: 50 * time.Millisecond},
		Backoff:            sink.DefaultBackoff(),
		RetryBudget:        30 * time.Second,
		ParkDelay:          time.Minute,
		MaxAge:             7 * 24 * time.Hour,
		UnhealthyProbe:     30 * time.Second,
		MaxInflightBytes:   16 << 20,
		MaxConnectionBytes: 8 << 20,
		BacklogMaxWait:     5 * time.Second,
		MaxRetryHeldBytes:  16 << 20,
		CommitInterval:     time.Second,
		RevokeTimeout:      20 * time.Second,
		SendTimeout:        30 * time.Second,
		RequestsInFlight:   2,
		SessionTimeout:     45 * time.Second,
		RebalanceTimeout:   60 * time.Second,
	}
}

// Validate reports every problem in the section.
func (c Config) Validate() error {
	var errs config.Errors
	if c.Group == "" {
		errs.Addf("group", "must not be empty")
	}
	errs.Add("retry_topic", c.RetryTopic.Validate())
	errs.Add("batch", c.Batch.Validate())
	errs.Add("backoff", c.Backoff.Validate())
	positive := []struct {
		name string
		d    time.Duration
	}{{"retry_budget", c.RetryBudget}, {"park_delay", c.ParkDelay}, {"max_age", c.MaxAge}, {"unhealthy_probe", c.UnhealthyProbe},
		{"commit_interval", c.CommitInterval}, {"revoke_timeout", c.RevokeTimeout}, {"send_timeout", c.SendTimeout},
		{"session_timeout", c.SessionTimeout}, {"rebalance_timeout", c.RebalanceTimeout}, {"backlog_max_wait", c.BacklogMaxWait}}
	for _, p := range positive {
		if p.d <= 0 {
			errs.Addf(p.name, "must be positive")
		}
	}
	if c.MaxAge > 0 && c.MaxAge < c.ParkDelay {
		errs.Addf("max_age", "must be at least park_delay")
	}
	if c.RevokeTimeout >= c.RebalanceTimeout {
		errs.Addf("revoke_timeout", "must be shorter than rebalance_timeout")
	}
	if c.RequestsInFlight < 1 || c.RequestsInFlight > 64 {
		errs.Addf("requests_in_flight", "must be between 1 and 64")
	}
	if c.MaxInflightBytes <= 0 {
		errs.Addf("max_inflight_bytes", "must be positive")
	}
	if c.MaxConnectionBytes <= 0 || c.MaxConnectionBytes > c.MaxInflightBytes {
		errs.Addf("max_connection_bytes", "must be positive and at most max_inflight_bytes")
	}
	if c.MaxRetryHeldBytes <= 0 {
		errs.Addf("max_retry_held_bytes", "must be positive")
	}
	return errs.Err()
}
