// Package console is the destinations console: server-rendered pages under
// /console/ where an account admin signs in with the same bearer token the
// API takes and manages the account's audit-log settings, connections and
// storage profiles, tests them and watches their status. Every change is a
// call to the API's own handlers in process, so validation, errors, audit
// events and tenant rules are the API's.
package console

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/auditstream/auditstream/services/internal/config"
)

// Config is the console's section of the API's configuration.
type Config struct {
	// Disabled turns the console off: /console/ answers 404.
	Disabled bool `yaml:"disabled"`
	// FrameAncestors are the origins allowed to embed the console in a
	// frame (CSP frame-ancestors), e.g. https://platform.example.com.
	// Empty allows none. The session cookie is SameSite=Strict, so an
	// embedding page must be of the same site as the console.
	FrameAncestors []string `yaml:"frame_ancestors"`
	// SessionTTL is how long a sign-in lasts (default 8h).
	SessionTTL time.Duration `yaml:"session_ttl"`
	// StatusRefresh is how often the status page reloads itself (default
	// 10s).
	StatusRefresh time.Duration `yaml:"status_refresh"`
}

// WithDefaults fills the unset settings.
func (c Config) WithDefaults() Config {
	if c.SessionTTL == 0 {
		c.SessionTTL = 8 * time.Hour
	}
	if c.StatusRefresh == 0 {
		c.StatusRefresh = 10 * time.Second
	}
	return c
}

// Validate reports every problem.
func (c Config) Validate() error {
	var errs config.Errors
	for i, o := range c.FrameAncestors {
		if o == "'self'" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Path != "" || u.RawQuery != "" ||
			strings.ContainsAny(o, " ;,'") {
			errs.Addf(fmt.Sprintf("frame_ancestors[%d]", i), "%q must be an origin such as https://platform.example.com, or 'self'", o)
		}
	}
	if c.SessionTTL < 0 || c.SessionTTL > 7*24*time.Hour {
		errs.Addf("session_ttl", "must be between 1m and 168h")
	} else if c.SessionTTL != 0 && c.SessionTTL < time.Minute {
		errs.Addf("session_ttl", "must be between 1m and 168h")
	}
	if c.StatusRefresh < 0 || (c.StatusRefresh != 0 && c.StatusRefresh < time.Second) {
		errs.Addf("status_refresh", "must be at least 1s")
	}
	return errs.Err()
}
