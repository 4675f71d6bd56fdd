package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/auditstream/auditstream/proto/auditevent"
)

// timeFormats is what every time flag accepts, for error messages.
const timeFormats = "want RFC 3339 (2024-02-16T12:00:00Z), a date (2024-02-16, midnight UTC), now, or a time relative to now (-2h, -30m, -7d)"

// timeForms is timeFormats for flag usage lines.
const timeForms = "RFC 3339, YYYY-MM-DD (UTC), now, or relative: -2h, -7d"

// parseTime reads a time given on the command line: RFC 3339 (a time
// without a zone is UTC, as in events), a date alone (midnight UTC), "now",
// or a signed duration relative to now, where d counts 24 hours (-2h, -7d,
// -1d12h, +30m).
func parseTime(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return time.Time{}, fmt.Errorf("empty time: %s", timeFormats)
	case s == "now":
		return now.UTC(), nil
	case s[0] == '-' || s[0] == '+':
		d, err := parseRelative(s[1:])
		if err != nil {
			return time.Time{}, fmt.Errorf("%q: %w; %s", s, err, timeFormats)
		}
		if s[0] == '-' {
			d = -d
		}
		return now.Add(d).UTC(), nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if t, err := auditevent.ParseTimestamp(s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is not a time: %s", s, timeFormats)
}

// parseRelative reads an unsigned duration that may start with whole days:
// 7d, 1d12h, 90m.
func parseRelative(s string) (time.Duration, error) {
	var days time.Duration
	if i := strings.IndexByte(s, 'd'); i >= 0 {
		n, err := strconv.ParseUint(s[:i], 10, 16)
		if err != nil {
			return 0, fmt.Errorf("bad number of days %q", s[:i])
		}
		days = time.Duration(n) * 24 * time.Hour
		if s = s[i+1:]; s == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("bad duration %q", s)
	}
	return days + d, nil
}

// timeFlag is a pflag.Value holding a time read with parseTime.
type timeFlag struct {
	t   time.Time
	set bool
	now func() time.Time
}

func newTimeFlag(now func() time.Time) *timeFlag { return &timeFlag{now: now} }

func (f *timeFlag) Set(s string) error {
	t, err := parseTime(s, f.now())
	if err != nil {
		return err
	}
	f.t, f.set = t, true
	return nil
}

func (f *timeFlag) String() string {
	if !f.set {
		return ""
	}
	return f.t.Format(time.RFC3339Nano)
}

func (f *timeFlag) Type() string { return "time" }

// Output formats.
const (
	outputText = "text"
	outputJSON = "json"
)

// outputFlag is --output: text for people, json for scripts.
type outputFlag string

func (o *outputFlag) Set(s string) error {
	switch s {
	case outputText, outputJSON:
		*o = outputFlag(s)
		return nil
	}
	return fmt.Errorf("must be %s or %s", outputText, outputJSON)
}

func (o *outputFlag) String() string { return string(*o) }
func (o *outputFlag) Type() string   { return "format" }
func (o *outputFlag) json() bool     { return *o == outputJSON }

// writeJSON writes v as one indented JSON document.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
