// Package connstatus carries each connection's health, as the consumers
// delivering to it see it, from the consumers to the destinations API.
//
// Every consumer replica (a forwarder or archiver process) publishes, every
// few seconds and at once when a connection turns unhealthy or recovers,
// one record per connection it has in use to the compacted status topic
// (kafka.topics.status): key "<connection>|<consumer>|<instance>", value a
// Status in JSON. Several replicas of a forwarder each own some partitions,
// so each publishes its own view and a Reader merges them. A record says
// until when it is fresh; a replica that stopped without a word is ignored
// once that passed, and one that stops cleanly writes tombstones.
package connstatus

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/auditstream/auditstream/services/internal/config"
)

// Schema names the JSON form of a Status.
const Schema = "auditstream.connection-status.v1"

// Status is one consumer replica's view of one connection: a record of the
// status topic. Counters count since the replica started (StartedAt).
type Status struct {
	Schema string `json:"schema"`
	// Connection is the connection's qualified name, as the runtime and the
	// destinations Table call it: "<account>/<name>" or
	// "<account>/storage-profiles/<name>" for one the destinations API
	// manages, the plain name for one of the destinations file.
	Connection string `json:"connection"`
	// Consumer is the publishing service ("datadog", "archiver"); Instance
	// is its replica.
	Consumer  string    `json:"consumer"`
	Instance  string    `json:"instance"`
	StartedAt time.Time `json:"started_at"`
	// PublishedAt is when the record was written; past FreshUntil readers
	// treat it as stale (its replica stopped publishing).
	PublishedAt time.Time `json:"published_at"`
	FreshUntil  time.Time `json:"fresh_until"`

	Healthy bool `json:"healthy"`
	// FailedSince is when the connection turned unhealthy, while it is.
	FailedSince *time.Time `json:"failed_since,omitempty"`
	LastSuccess *time.Time `json:"last_success,omitempty"`
	// LastError is the last failure, redacted (see Redact).
	LastError   string     `json:"last_error,omitempty"`
	LastErrorAt *time.Time `json:"last_error_at,omitempty"`

	// Delivered counts events the destination accepted; DeliveredToday
	// those of the UTC day Day.
	Delivered      int64  `json:"delivered"`
	DeliveredToday int64  `json:"delivered_today"`
	Day            string `json:"day"`
	// Parked counts events parked on the retry topic, DeadLettered events
	// written to the dead-letter topic for the connection.
	Parked       int64 `json:"parked"`
	DeadLettered int64 `json:"dead_lettered"`
	// Filtered counts events the connection's filter excluded,
	// FilterErrors events it could not decide on (delivered all the same).
	Filtered     int64 `json:"filtered,omitempty"`
	FilterErrors int64 `json:"filter_errors,omitempty"`
	// OldestUndelivered is when the oldest event the replica holds for the
	// connection and has not delivered yet entered the pipeline.
	OldestUndelivered *time.Time `json:"oldest_undelivered,omitempty"`
}

// Key is the record key of s.
func (s *Status) Key() string { return Key(s.Connection, s.Consumer, s.Instance) }

// Key is the status topic's record key of a connection as seen by one
// replica of a consumer.
func Key(connection, consumer, instance string) string {
	return connection + "|" + consumer + "|" + instance
}

// Decode reads a record value of the status topic.
func Decode(b []byte) (*Status, error) {
	var s Status
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("decode connection status: %w", err)
	}
	if s.Schema != Schema {
		return nil, fmt.Errorf("decode connection status: schema %q is not %q", s.Schema, Schema)
	}
	if s.Connection == "" || s.Consumer == "" || s.Instance == "" {
		return nil, fmt.Errorf("decode connection status: connection, consumer and instance are required")
	}
	return &s, nil
}

// MaxErrorLength bounds LastError.
const MaxErrorLength = 512

var (
	// userinfo and query strings of URLs: credentials (basic auth, SAS
	// tokens, presigned signatures) travel there.
	urlCreds = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@"']*@`)
	urlQuery = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://[^\s?"']*)\?[^\s"']*`)
	// key=value and "key": "value" pairs whose key names a secret.
	secretPair = regexp.MustCompile(`(?i)((?:api[_-]?key|dd-api-key|secret[_-]?access[_-]?key|secret|password|token|signature|sig|credential[s]?|authorization|private[_-]?key|sas)["']?\s*[:=]\s*["']?)(?:bearer\s+|basic\s+)?[^\s"',;&}]+`)
)

// Redact makes an error message fit for the status topic and the API's
// answers: credentials in URLs (user info and query strings) and the
// values of secret-looking pairs are cut out, each of secrets (the
// connection's own secret values, when the caller knows them) is replaced,
// and the message is bounded.
func Redact(msg string, secrets ...string) string {
	for _, s := range secrets {
		if len(s) >= 4 {
			msg = strings.ReplaceAll(msg, s, "[REDACTED]")
		}
	}
	msg = urlCreds.ReplaceAllString(msg, "${1}[REDACTED]@")
	msg = urlQuery.ReplaceAllString(msg, "${1}?[REDACTED]")
	msg = secretPair.ReplaceAllString(msg, "${1}[REDACTED]")
	if len(msg) > MaxErrorLength {
		cut := MaxErrorLength
		for cut > 0 && !utf8Start(msg[cut]) {
			cut--
		}
		msg = msg[:cut] + "..."
	}
	return msg
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

// Config is the `status` section of a consumer: how it publishes its
// connections' status.
type Config struct {
	// Publish turns publishing to the status topic on.
	Publish bool `yaml:"publish"`
	// Interval is how often every connection's status is published (and at
	// once on a change of health); readers treat a record as stale after
	// three intervals.
	Interval time.Duration `yaml:"interval"`
}

// DefaultConfig publishes every DefaultInterval.
func DefaultConfig() Config { return Config{Publish: true, Interval: DefaultInterval} }

// Validate reports every problem in the section.
func (c Config) Validate() error {
	var errs config.Errors
	if c.Interval < 100*time.Millisecond {
		errs.Addf("interval", "must be at least 100ms")
	}
	return errs.Err()
}
