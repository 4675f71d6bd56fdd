package sink

import (
	"math"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/auditstream/auditstream/services/internal/config"
)

func TestBackoffValidate(t *testing.T) {
	ok := DefaultBackoff()
	for _, tc := range []struct {
		name string
		edit func(*Backoff)
		want []string
	}{
		{"default", func(*Backoff) {}, nil},
		{"no jitter", func(b *Backoff) { b.Jitter = 0 }, nil},
		{"full jitter", func(b *Backoff) { b.Jitter = 1 }, nil},
		{"constant", func(b *Backoff) { b.Multiplier = 1; b.Max = b.Initial }, nil},
		{"zero initial", func(b *Backoff) { b.Initial = 0 }, []string{"initial: must be positive"}},
		{"max below initial", func(b *Backoff) { b.Max = b.Initial / 2 }, []string{"max: must be at least initial"}},
		{"max too long", func(b *Backoff) { b.Max = time.Hour }, []string{"max: must be at most 10m0s"}},
		{"shrinking", func(b *Backoff) { b.Multiplier = 0.5 }, []string{"multiplier"}},
		{"NaN multiplier", func(b *Backoff) { b.Multiplier = math.NaN() }, []string{"multiplier"}},
		{"infinite multiplier", func(b *Backoff) { b.Multiplier = math.Inf(1) }, []string{"multiplier"}},
		{"negative jitter", func(b *Backoff) { b.Jitter = -0.1 }, []string{"jitter"}},
		{"jitter over 1", func(b *Backoff) { b.Jitter = 1.5 }, []string{"jitter"}},
		{"NaN jitter", func(b *Backoff) { b.Jitter = math.NaN() }, []string{"jitter"}},
		{"zero value reports all", func(b *Backoff) { *b = Backoff{} }, []string{"initial", "multiplier"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := ok
			tc.edit(&b)
			err := b.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestBackoffYAML(t *testing.T) {
	var b Backoff
	if err := config.Parse([]byte("initial: 50ms\nmax: 5s\nmultiplier: 1.5\njitter: 0.1\n"), &b); err != nil {
		t.Fatal(err)
	}
	if want := (Backoff{Initial: 50 * time.Millisecond, Max: 5 * time.Second, Multiplier: 1.5, Jitter: 0.1}); b != want {
		t.Fatalf("parsed %+v, want %+v", b, want)
	}
}

func TestBackoffGrowthAndCap(t *testing.T) {
	b := Backoff{Initial: 100 * time.Millisecond, Max: 2 * time.Second, Multiplier: 2}
	for _, tc := range []struct {
		attempt int
		want    time.Duration
	}{
		{-5, 100 * time.Millisecond}, // nonsense attempt counts as the first
		{0, 100 * time.Millisecond},
		{1, 200 * time.Millisecond},
		{2, 400 * time.Millisecond},
		{4, 1600 * time.Millisecond},
		{5, 2 * time.Second},
		{64, 2 * time.Second},
		{math.MaxInt, 2 * time.Second}, // Pow overflows to +Inf: still the cap
	} {
		if got := b.delay(tc.attempt, 0, 0.7); got != tc.want {
			t.Errorf("delay(%d) = %v, want %v", tc.attempt, got, tc.want)
		}
	}
}

func TestBackoffJitterBounds(t *testing.T) {
	for _, jitter := range []float64{0, 0.2, 0.5, 1} {
		b := Backoff{Initial: time.Second, Max: 10 * time.Second, Multiplier: 2, Jitter: jitter}
		for attempt := range 6 {
			full := b.delay(attempt, 0, 0)
			lo := time.Duration(float64(full) * (1 - jitter))
			// The edges of the draw, then the real random source.
			if got := b.delay(attempt, 0, 1); got != lo {
				t.Errorf("jitter %v attempt %d: delay at u=1 is %v, want %v", jitter, attempt, got, lo)
			}
			for range 200 {
				if got := b.Delay(attempt, 0); got < lo || got > full {
					t.Fatalf("jitter %v attempt %d: Delay = %v, outside [%v, %v]", jitter, attempt, got, lo, full)
				}
			}
		}
	}
	b := Backoff{Initial: time.Second, Max: time.Second, Multiplier: 1, Jitter: 0.5}
	if got := b.delay(0, 0, 0.5); got != 750*time.Millisecond {
		t.Fatalf("proportional jitter: delay(u=0.5) = %v, want 750ms", got)
	}
}

func TestBackoffHint(t *testing.T) {
	b := Backoff{Initial: time.Second, Max: 30 * time.Second, Multiplier: 2}
	for _, tc := range []struct {
		name    string
		attempt int
		hint    time.Duration
		want    time.Duration
	}{
		{"no hint", 2, 0, 4 * time.Second},
		{"hint shorter than backoff", 2, time.Second, 4 * time.Second},
		{"hint longer than backoff", 0, 7 * time.Second, 7 * time.Second},
		{"hint beyond Max is honoured", 10, 2 * time.Minute, 2 * time.Minute},
		{"absurd hint is capped", 0, 24 * time.Hour, MaxRetryAfter},
		{"negative hint ignored", 1, -time.Hour, 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := b.delay(tc.attempt, tc.hint, 0); got != tc.want {
				t.Fatalf("delay(%d, %v) = %v, want %v", tc.attempt, tc.hint, got, tc.want)
			}
		})
	}
	// Jitter never takes the delay below the hint.
	j := Backoff{Initial: 10 * time.Second, Max: 10 * time.Second, Multiplier: 1, Jitter: 1}
	if got := j.delay(0, 3*time.Second, 0.99); got != 3*time.Second {
		t.Fatalf("jittered delay below hint: %v", got)
	}
}

func TestBackoffInvalidUsesDefault(t *testing.T) {
	def := DefaultBackoff()
	for _, b := range []Backoff{{}, {Initial: time.Second, Max: time.Second, Multiplier: math.NaN()}} {
		if got, want := b.delay(3, 0, 0), def.delay(3, 0, 0); got != want {
			t.Errorf("%+v: delay = %v, want the default's %v", b, got, want)
		}
	}
}

// TestBackoffSchedule waits out a retry schedule in a bubble, as a retry loop
// does, to pin the total time a run of failures costs.
func TestBackoffSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := Backoff{Initial: 100 * time.Millisecond, Max: time.Second, Multiplier: 2}
		start := time.Now()
		for attempt := range 6 { // 100+200+400+800+1000+1000 ms
			hint := time.Duration(0)
			if attempt == 2 {
				hint = 5 * time.Second // a 429 with Retry-After: 5
			}
			time.Sleep(b.delay(attempt, hint, 0)) // on the bubble's fake clock
		}
		if got, want := time.Since(start), 100*time.Millisecond+200*time.Millisecond+5*time.Second+800*time.Millisecond+2*time.Second; got != want {
			t.Fatalf("schedule took %v, want %v", got, want)
		}
	})
}

func TestRetryAfter(t *testing.T) {
	// RetryAfter takes the clock as an argument, so a fixed now suffices.
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	date := func(d time.Duration) string { return now.Add(d).UTC().Format(http.TimeFormat) }
	for _, tc := range []struct {
		name   string
		header map[string]string
		want   time.Duration
		ok     bool
	}{
		{"none", nil, 0, false},
		{"seconds", map[string]string{"Retry-After": "120"}, 2 * time.Minute, true},
		{"seconds with spaces", map[string]string{"Retry-After": " 5 "}, 5 * time.Second, true},
		{"zero", map[string]string{"Retry-After": "0"}, 0, true},
		{"leading zeros", map[string]string{"Retry-After": "007"}, 7 * time.Second, true},
		{"negative", map[string]string{"Retry-After": "-5"}, 0, false},
		{"plus sign", map[string]string{"Retry-After": "+5"}, 0, false},
		{"fraction", map[string]string{"Retry-After": "1.5"}, 0, false},
		{"unit", map[string]string{"Retry-After": "5s"}, 0, false},
		{"garbage", map[string]string{"Retry-After": "soon"}, 0, false},
		{"empty", map[string]string{"Retry-After": ""}, 0, false},
		{"a day", map[string]string{"Retry-After": "86400"}, MaxRetryAfter, true},
		{"overflow", map[string]string{"Retry-After": "99999999999999999999999999999"}, MaxRetryAfter, true},
		{"date ahead", map[string]string{"Retry-After": date(30 * time.Second)}, 30 * time.Second, true},
		{"date behind", map[string]string{"Retry-After": date(-time.Hour)}, 0, true},
		{"date far ahead", map[string]string{"Retry-After": "Fri, 31 Dec 9999 23:59:59 GMT"}, MaxRetryAfter, true},
		{"date long ago", map[string]string{"Retry-After": "Mon, 01 Jan 0001 00:00:00 GMT"}, 0, true},
		{"RFC 850 date", map[string]string{"Retry-After": now.Add(time.Minute).UTC().Format("Monday, 02-Jan-06 15:04:05 GMT")}, time.Minute, true},
		{"bad date", map[string]string{"Retry-After": "Mon, 99 Foo 2024 25:61:61 GMT"}, 0, false},
		{"rate limit spent", map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "7"}, 7 * time.Second, true},
		{"rate limit reset alone", map[string]string{"X-RateLimit-Reset": "7"}, 7 * time.Second, true},
		{"rate limit not spent", map[string]string{"X-RateLimit-Remaining": "12", "X-RateLimit-Reset": "7"}, 0, false},
		{"rate limit reset negative", map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "-3"}, 0, false},
		{"rate limit reset huge", map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1700000000"}, MaxRetryAfter, true},
		{"longer of both", map[string]string{"Retry-After": "2", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "10"}, 10 * time.Second, true},
		{"Retry-After longer", map[string]string{"Retry-After": "20", "X-RateLimit-Reset": "10"}, 20 * time.Second, true},
		{"bad Retry-After, good reset", map[string]string{"Retry-After": "later", "X-RateLimit-Reset": "3"}, 3 * time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tc.header {
				h.Set(k, v)
			}
			got, ok := RetryAfter(h, now)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("RetryAfter(%v) = %v, %v, want %v, %v", tc.header, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func FuzzRetryAfter(f *testing.F) {
	for _, s := range []string{"0", "120", "-1", "1e9", "99999999999999999999", "Wed, 21 Oct 2015 07:28:00 GMT", "Fri, 31 Dec 9999 23:59:59 GMT", "\x00", " 3 "} {
		f.Add(s, s)
	}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, retryAfter, reset string) {
		h := http.Header{"Retry-After": {retryAfter}, "X-Ratelimit-Reset": {reset}}
		d, ok := RetryAfter(h, now)
		if d < 0 || d > MaxRetryAfter || (!ok && d != 0) {
			t.Fatalf("RetryAfter(%q, %q) = %v, %v", retryAfter, reset, d, ok)
		}
	})
}
