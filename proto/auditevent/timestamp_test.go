package auditevent_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/auditstream/auditstream/proto/auditevent"
)

func TestParseTimestamp(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want time.Time
	}{
		{"zulu milliseconds", "2024-02-16T12:58:38.577Z", time.Date(2024, 2, 16, 12, 58, 38, 577000000, time.UTC)},
		{"zulu no fraction", "2024-02-16T12:58:38Z", time.Date(2024, 2, 16, 12, 58, 38, 0, time.UTC)},
		{"positive offset to UTC", "2024-02-16T14:58:38.577846+02:00", time.Date(2024, 2, 16, 12, 58, 38, 577846000, time.UTC)},
		{"negative offset crossing midnight", "2024-02-15T23:30:00-01:00", time.Date(2024, 2, 16, 0, 30, 0, 0, time.UTC)},
		{"zero offset", "2024-02-16T12:58:38+00:00", time.Date(2024, 2, 16, 12, 58, 38, 0, time.UTC)},
		{"no zone microseconds (seed)", "2024-02-16T12:58:38.577846", time.Date(2024, 2, 16, 12, 58, 38, 577846000, time.UTC)},
		{"no zone nanoseconds", "2024-02-16T12:58:38.123456789", time.Date(2024, 2, 16, 12, 58, 38, 123456789, time.UTC)},
		{"zoned nanoseconds", "2024-02-16T12:58:38.000000001Z", time.Date(2024, 2, 16, 12, 58, 38, 1, time.UTC)},
		{"no zone no fraction", "2024-02-16T12:58:38", time.Date(2024, 2, 16, 12, 58, 38, 0, time.UTC)},
		{"first second of year 1", "0001-01-01T00:00:00Z", time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"last instant of year 9999", "9999-12-31T23:59:59.999999999", time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)},
		{"offset within year 1 in UTC", "0001-01-01T00:30:00+00:30", time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := auditevent.ParseTimestamp(tt.in)
			if err != nil {
				t.Fatalf("ParseTimestamp(%q): %v", tt.in, err)
			}
			if !got.Equal(tt.want) {
				t.Errorf("ParseTimestamp(%q) = %v, want %v", tt.in, got, tt.want)
			}
			if got.Location() != time.UTC {
				t.Errorf("ParseTimestamp(%q) location = %v, want UTC", tt.in, got.Location())
			}

			// The same through DecodeJSON.
			ev, err := auditevent.DecodeJSON([]byte(`{"timestamp":`+strconv.Quote(tt.in)+`}`), strict)
			if err != nil {
				t.Fatalf("DecodeJSON: %v", err)
			}
			if ts := ev.GetTimestamp().AsTime(); !ts.Equal(tt.want) {
				t.Errorf("decoded timestamp = %v, want %v", ts, tt.want)
			}
		})
	}
}

func TestParseTimestampRejects(t *testing.T) {
	tests := []struct{ name, in string }{
		{"empty", ""},
		{"date only", "2024-02-16"},
		{"garbage", "yesterday at noon"},
		{"unix seconds as string", "1708088318"},
		{"year 10000", "10000-01-01T00:00:00Z"},
		{"year 0", "0000-12-31T23:59:59Z"},
		{"space instead of T", "2024-02-16 12:58:38"},
		{"month 13", "2024-13-01T00:00:00Z"},
		{"hour 25", "2024-02-16T25:00:00Z"},
		{"offset without minutes", "2024-02-16T12:58:38+02"},
		{"trailing dot", "2024-02-16T12:58:38."},
		{"trailing text", "2024-02-16T12:58:38Z garbage"},
		{"named zone", "2024-02-16T12:58:38 UTC"},
		// An offset that moves the time out of years 0001-9999 in UTC:
		// accepted, it would be written back as a year nothing can read.
		{"before year 1 in UTC", "0001-01-01T00:00:00+01:00"},
		{"after year 9999 in UTC", "9999-12-31T23:30:00-01:00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := auditevent.ParseTimestamp(tt.in); err == nil {
				t.Errorf("ParseTimestamp(%q) = %v, want an error", tt.in, got)
			}
			_, err := auditevent.DecodeJSON([]byte(`{"timestamp":`+strconv.Quote(tt.in)+`}`), strict)
			checkFieldError(t, err, "timestamp", auditevent.ReasonBadTimestamp)
		})
	}
}

func TestFormatTimestamp(t *testing.T) {
	tests := []struct {
		name string
		in   time.Time
		want string
	}{
		{"whole seconds", time.Date(2024, 2, 16, 12, 58, 38, 0, time.UTC), "2024-02-16T12:58:38"},
		{"microseconds (seed)", time.Date(2024, 2, 16, 12, 58, 38, 577846000, time.UTC), "2024-02-16T12:58:38.577846"},
		{"milliseconds as microseconds", time.Date(2024, 2, 16, 12, 58, 38, 577000000, time.UTC), "2024-02-16T12:58:38.577000"},
		{"one microsecond", time.Date(2024, 2, 16, 12, 58, 38, 1000, time.UTC), "2024-02-16T12:58:38.000001"},
		{"nanoseconds", time.Date(2024, 2, 16, 12, 58, 38, 123456789, time.UTC), "2024-02-16T12:58:38.123456789"},
		{"one nanosecond", time.Date(2024, 2, 16, 12, 58, 38, 1, time.UTC), "2024-02-16T12:58:38.000000001"},
		{"other zone to UTC", time.Date(2024, 2, 16, 14, 58, 38, 0, time.FixedZone("CEST", 2*3600)), "2024-02-16T12:58:38"},
		{"year 1", time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), "0001-01-01T00:00:00"},
		{"year 9999", time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC), "9999-12-31T23:59:59.999999999"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := auditevent.FormatTimestamp(tt.in)
			if got != tt.want {
				t.Errorf("FormatTimestamp(%v) = %q, want %q", tt.in, got, tt.want)
			}
			if app := string(auditevent.AppendTimestamp([]byte("x"), tt.in)); app != "x"+tt.want {
				t.Errorf("AppendTimestamp = %q, want %q", app, "x"+tt.want)
			}
			back, err := auditevent.ParseTimestamp(got)
			if err != nil {
				t.Fatalf("ParseTimestamp(%q): %v", got, err)
			}
			if !back.Equal(tt.in) {
				t.Errorf("round trip of %v gave %v", tt.in, back)
			}
		})
	}
}
