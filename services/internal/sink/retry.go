package sink

import (
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/auditstream/auditstream/services/internal/config"
)

// MaxRetryAfter caps any wait a destination asks for. A longer wait holds a
// partition's offsets hostage; past it the runtime should park the events on
// the retry topic instead. It also caps Backoff.Max.
const MaxRetryAfter = 10 * time.Minute

// Backoff is an exponential backoff with proportional jitter.
type Backoff struct {
	// Initial is the delay before the first retry.
	Initial time.Duration `yaml:"initial"`
	// Max caps the computed delay (not a destination's hint).
	Max time.Duration `yaml:"max"`
	// Multiplier grows the delay after each attempt; at least 1.
	Multiplier float64 `yaml:"multiplier"`
	// Jitter is the fraction of the delay that is random, in [0, 1]: the
	// delay is drawn uniformly from [(1-Jitter)·d, d]. 0 is no jitter and 1 is
	// "full jitter". Jitter only shortens, so Max stays a true upper bound,
	// and it spreads the retries of many consumers hit by the same outage.
	Jitter float64 `yaml:"jitter"`
}

// DefaultBackoff is 100ms doubling to 30s with 20% jitter.
func DefaultBackoff() Backoff {
	return Backoff{Initial: 100 * time.Millisecond, Max: 30 * time.Second, Multiplier: 2, Jitter: 0.2}
}

// Validate reports every problem in the section.
func (b Backoff) Validate() error {
	var errs config.Errors
	if b.Initial <= 0 {
		errs.Addf("initial", "must be positive")
	}
	if b.Max < b.Initial {
		errs.Addf("max", "must be at least initial (%s)", b.Initial)
	}
	if b.Max > MaxRetryAfter {
		errs.Addf("max", "must be at most %s; park events instead of waiting longer", MaxRetryAfter)
	}
	if !(b.Multiplier >= 1) || math.IsInf(b.Multiplier, 0) { // also rejects NaN
		errs.Addf("multiplier", "must be a number of at least 1")
	}
	if !(b.Jitter >= 0 && b.Jitter <= 1) {
		errs.Addf("jitter", "must be between 0 and 1")
	}
	return errs.Err()
}

// Delay is how long to wait before retry number attempt (0 for the first
// retry): Initial·Multiplier^attempt, capped at Max, then jittered. When the
// destination gave a hint (Retry-After, a rate-limit reset) the delay is at
// least the hint, even above Max, because the destination knows when it will
// accept again; the hint itself is capped at MaxRetryAfter. A Backoff that
// fails Validate behaves as DefaultBackoff rather than spinning with no delay.
func (b Backoff) Delay(attempt int, hint time.Duration) time.Duration {
	return b.delay(attempt, hint, rand.Float64())
}

// delay is Delay with the random draw u in [0, 1) supplied, for tests.
func (b Backoff) delay(attempt int, hint time.Duration, u float64) time.Duration {
	if b.Validate() != nil {
		b = DefaultBackoff()
	}
	attempt = max(attempt, 0)
	d := float64(b.Initial) * math.Pow(b.Multiplier, float64(attempt))
	if !(d < float64(b.Max)) { // also catches +Inf
		d = float64(b.Max)
	}
	u = min(max(u, 0), 1)
	delay := time.Duration(d * (1 - b.Jitter*u))
	hint = min(hint, MaxRetryAfter)
	return max(delay, hint)
}

// RetryAfter reads how long a destination asked us to wait from response
// headers, relative to now:
//   - Retry-After as delay-seconds or an HTTP-date (RFC 9110);
//   - Datadog's X-RateLimit-Reset (seconds until the window resets), when
//     X-RateLimit-Remaining is 0 or absent: with requests remaining, the rate
//     limit is not what failed us.
//
// When both are present the longer wins. The result is within
// [0, MaxRetryAfter]: a date in the past is 0 (retry now), a value too large
// is capped, and a negative or unparseable value is ignored. AWS throttling
// carries no such header, so it reports false and plain backoff applies.
func RetryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	var best time.Duration
	found := false
	if d, ok := parseRetryAfter(h.Get("Retry-After"), now); ok {
		best, found = d, true
	}
	if rem := strings.TrimSpace(h.Get("X-RateLimit-Remaining")); rem == "" || rem == "0" {
		if d, ok := parseSeconds(h.Get("X-RateLimit-Reset")); ok {
			best, found = max(best, d), true
		}
	}
	return best, found
}

func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if d, ok := parseSeconds(v); ok {
		return d, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	d := t.Sub(now) // saturates rather than wrapping for far dates
	return min(max(d, 0), MaxRetryAfter), true
}

// parseSeconds accepts a non-negative whole number of seconds (the RFC's
// delay-seconds, 1*DIGIT): signs, fractions and units are rejected rather
// than guessed at. Any number of digits is fine; it is capped.
func parseSeconds(v string) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n > uint64(MaxRetryAfter/time.Second) {
		return MaxRetryAfter, true // digits only, so the only failure is overflow
	}
	return time.Duration(n) * time.Second, true
}
