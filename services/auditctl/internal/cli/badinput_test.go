package cli

import (
	"context"
	"strings"
	"testing"
	"time"
)

// badInput is a command line that must fail with a message naming the
// problem, print nothing on stdout, and do so quickly.
type badInput struct {
	args []string
	want string
}

func checkBadInputs(t *testing.T, cases []badInput) {
	t.Helper()
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			var stdout, stderr lockedBuffer
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			start := time.Now()
			err := run(ctx, &stdout, &stderr, c.args...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("auditctl %q = %v, want an error containing %q", c.args, err, c.want)
			}
			if err != nil && strings.HasPrefix(err.Error(), "cannot reach Kafka") && strings.Contains(err.Error(), "\n") {
				t.Errorf("an unreachable Kafka is not one line:\n%v", err)
			}
			if stdout.String() != "" {
				t.Errorf("printed to stdout: %s", stdout.String())
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %s to fail", d)
			}
		})
	}
}

func TestBadInputCommon(t *testing.T) {
	badConfig := writeFile(t, "bad.yaml", "kafka:\n  brokerz: [x]\n")
	checkBadInputs(t, []badInput{
		{[]string{"tali"}, `unknown command "tali" for "auditctl"`},
		{[]string{"tail", "--brokers", " , "}, "--brokers must name at least one host:port"},
		{[]string{"tail", "--brokers", "kafka-without-port"}, `--brokers: "kafka-without-port" is not host:port`},
		{[]string{"tail", "--timeout", "0s"}, "--timeout must be positive"},
		{[]string{"tail", "--timeout", "soon"}, `invalid argument "soon" for "--timeout"`},
		{[]string{"tail", "--config", "/does/not/exist.yaml"}, "config /does/not/exist.yaml: read config: open /does/not/exist.yaml: no such file or directory"},
		{[]string{"tail", "--config", badConfig}, "field brokerz not found"},
		// the default --timeout: a refused connection fails at once
		{[]string{"lag", "--brokers", closedAddr(t)}, "cannot reach Kafka at 127.0.0.1:"},
	})
}

func TestBadInputTail(t *testing.T) {
	checkBadInputs(t, []badInput{
		{[]string{"tail", "--max", "ten"}, `invalid argument "ten" for "--max"`},
		{[]string{"tail", "--max", "-1"}, "--max must be 0 (no limit) or more, not -1"},
		{[]string{"tail", "--follow"}, "unknown flag: --follow (see 'auditctl tail --help')"},
		{[]string{"tail", "extra"}, `unknown command "extra" for "auditctl tail"`},
		{[]string{"tail", "--topic", ""}, "--topic must not be empty"},
		{[]string{"tail", "--format", "yaml"}, `--format must be json or summary, not "yaml"`},
		{[]string{"tail", "--timeout", "1s", "--brokers", closedAddr(t)}, "cannot reach Kafka at 127.0.0.1:"},
	})
}

func TestParseTime(t *testing.T) {
	now := time.Date(2024, 2, 16, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		in   string
		want time.Time
		err  string
	}{
		{"2024-02-16T10:30:00Z", time.Date(2024, 2, 16, 10, 30, 0, 0, time.UTC), ""},
		{"2024-02-16T12:30:00+02:00", time.Date(2024, 2, 16, 10, 30, 0, 0, time.UTC), ""},
		{"2024-02-16T10:30:00.5", time.Date(2024, 2, 16, 10, 30, 0, 5e8, time.UTC), ""},
		{"2024-02-15", time.Date(2024, 2, 15, 0, 0, 0, 0, time.UTC), ""},
		{"now", now, ""},
		{"-2h", now.Add(-2 * time.Hour), ""},
		{"-90m", now.Add(-90 * time.Minute), ""},
		{"-7d", now.Add(-7 * 24 * time.Hour), ""},
		{"-1d12h", now.Add(-36 * time.Hour), ""},
		{"+30m", now.Add(30 * time.Minute), ""},
		{"", time.Time{}, "empty time"},
		{"yesterday", time.Time{}, `"yesterday" is not a time`},
		{"2024-02-30", time.Time{}, "is not a time"},
		{"2024-02-16 10:30:00", time.Time{}, "is not a time"},
		{"-2x", time.Time{}, `bad duration "2x"`},
		{"--2h", time.Time{}, `bad duration "-2h"`},
		{"-xd", time.Time{}, `bad number of days "x"`},
	} {
		got, err := parseTime(c.in, now)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("parseTime(%q) = %v, %v; want an error containing %q", c.in, got, err, c.err)
			}
			continue
		}
		if err != nil || !got.Equal(c.want) {
			t.Errorf("parseTime(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
}
