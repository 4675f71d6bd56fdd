package cli

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/auditstream/auditstream/proto/auditevent"
	"github.com/auditstream/auditstream/services/testsupport/kafkatest"
)

const (
	goodLine   = `{"id":"ev-%d","actor":{"id":"user-1","access-token":{"type":"session","token":"raw-session-token-B6wifA"}},"request":{"action":"discard-run"},"target":{"context":{"account":{"id":"acc-a"}}},"timestamp":"2024-02-16T12:58:38Z"}`
	minimalOne = `{"target":{"context":{"account":{"id":"acc-b"}}}}`
)

func good(i int) string { return strings.Replace(goodLine, "%d", string(rune('0'+i)), 1) }

// readEvents reads n records of the topic and decodes them.
func readEvents(t *testing.T, k *testKafka, n int) map[string]string {
	t.Helper()
	recs := kafkatest.ReadAll(t, k.Brokers(), topic, n, 10*time.Second)
	got := map[string]string{} // id → JSON
	for _, r := range recs {
		ev, err := auditevent.DecodeRecord(r)
		if err != nil {
			t.Fatalf("record at %d/%d: %v", r.Partition, r.Offset, err)
		}
		got[ev.GetId()] = string(auditevent.EncodeJSON(ev))
	}
	return got
}

func TestProduce(t *testing.T) {
	longLine := `{"target":{"context":{"account":{"id":"acc-a"}}},"extra":{"pad":"` + strings.Repeat("x", 2000) + `"}}`
	garbage := make([]byte, 4096)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range garbage {
		garbage[i] = byte(rng.IntN(256))
	}
	for _, c := range []struct {
		name    string
		input   string
		args    []string
		written int
		failed  int
		// errors are the per-line errors expected on stderr, in order.
		errors []string
	}{
		{name: "good file", input: good(1) + "\n" + good(2) + "\r\n\n" + minimalOne + "\n" + good(3), written: 4},
		{name: "bad lines", input: strings.Join([]string{
			good(1),
			`{"target":`,
			`{"target":{"context":{"account":{}}}}`,
			`{"target":{"context":{"account":{"id":"acc-a"}}},"nickname":"x"}`,
			`{"target":{"context":{"account":{"id":"acc a"}}}}`,
			`{"target":{"context":{"account":{"id":"acc-a"}}},"timestamp":"yesterday"}`,
			`[1,2]`,
			good(2),
		}, "\n"), written: 2, failed: 6, errors: []string{
			"line 2: malformed_json: ",
			"line 3: field target.context.account.id: required: ",
			"line 4: field nickname: unknown_field: ",
			"line 5: field target.context.account.id: bad_account_id: ",
			"line 6: field timestamp: bad_timestamp: ",
			"line 7: wrong_type: ",
		}},
		{name: "oversized line", input: good(1) + "\n" + longLine + "\n" + good(2) + "\n" + longLine, args: []string{"--max-line-bytes", "1KiB"}, written: 2, failed: 2,
			errors: []string{"line 2: too_large: line is longer than 1024 bytes", "line 4: too_large: line is longer than 1024 bytes"}},
		{name: "empty file", input: ""},
		{name: "blank lines only", input: "\n  \n\r\n"},
		{name: "binary garbage", input: string(garbage), failed: strings.Count(string(garbage), "\n") + 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			k := newTestKafka(t)
			file := writeFile(t, "events.ndjson", c.input)
			args := append([]string{"produce", "--brokers", k.addr, "--file", file}, c.args...)
			r := ctl(t, args...)
			if c.failed > 0 {
				if r.err == nil || !strings.Contains(r.err.Error(), "events failed") {
					t.Errorf("produce = %v, want the failures reported as an error", r.err)
				}
			} else if r.err != nil {
				t.Fatalf("produce: %v\nstderr:\n%s", r.err, r.stderr)
			}
			if want := "written " + strconv.Itoa(c.written) + ", failed " + strconv.Itoa(c.failed) + " "; !strings.HasPrefix(r.stdout, want) {
				t.Errorf("stdout %q, want it to start with %q", r.stdout, want)
			}
			lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
			for i, want := range c.errors {
				if i >= len(lines) || !strings.HasPrefix(lines[i], "auditctl: "+want) {
					t.Errorf("stderr line %d, want %q:\n%s", i+1, want, r.stderr)
				}
			}
			if strings.ContainsFunc(r.stderr, func(r rune) bool { return r < ' ' && r != '\n' }) {
				t.Errorf("stderr carries control characters: %q", r.stderr)
			}
			if c.written == 0 {
				return
			}
			got := readEvents(t, k, c.written)
			if len(got) != c.written {
				t.Fatalf("topic holds %d events, want %d", len(got), c.written)
			}
			for id, js := range got {
				if strings.Contains(js, "raw-session-token") {
					t.Errorf("event %s was written with its token unmasked: %s", id, js)
				}
				if !strings.Contains(js, `"timestamp":"`) {
					t.Errorf("event %s has no timestamp: %s", id, js)
				}
			}
		})
	}
}

func TestProduceStdinJSONOutput(t *testing.T) {
	k := newTestKafka(t)
	var stdout, stderr lockedBuffer
	input := good(1) + "\n{bad\n" + minimalOne + "\n"
	err := runStdin(context.Background(), nil, input, &stdout, &stderr, "produce", "--brokers", k.addr, "--file", "-", "--output", "json")
	if err == nil || err.Error() != "1 of 3 events failed" {
		t.Errorf("produce = %v, want 1 of 3 events failed", err)
	}
	var sum ProduceSummary
	if err := json.Unmarshal([]byte(stdout.String()), &sum); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, stdout.String())
	}
	want := ProduceSummary{File: "-", Topic: topic, Lines: 3, Events: 3, Written: 2, Failed: 1,
		Errors: []LineError{{Line: 2, Reason: auditevent.ReasonMalformedJSON, Message: sum.Errors[0].Message}}}
	if sum.File != want.File || sum.Topic != want.Topic || sum.Lines != want.Lines || sum.Events != want.Events ||
		sum.Written != want.Written || sum.Failed != want.Failed || !slices.Equal(sum.Errors, want.Errors) {
		t.Errorf("summary %+v, want %+v", sum, want)
	}
	if stderr.String() != "" {
		t.Errorf("with --output json stderr should be empty: %s", stderr.String())
	}
	got := readEvents(t, k, 2)
	if _, ok := got["ev-1"]; !ok || len(got) != 2 {
		t.Errorf("topic holds %v", got)
	}
	for id := range got {
		if id != "ev-1" && len(id) != 36 {
			t.Errorf("an event without id got %q, want a UUID", id)
		}
	}
}

func TestBadInputProduce(t *testing.T) {
	k := newTestKafka(t)
	file := writeFile(t, "events.ndjson", good(1)+"\n")
	checkBadInputs(t, []badInput{
		{[]string{"produce"}, "--file is required"},
		{[]string{"produce", "--file", "/does/not/exist"}, "open --file: open /does/not/exist: no such file or directory"},
		{[]string{"produce", "--file", file, "--max-line-bytes", "huge"}, `invalid argument "huge" for "--max-line-bytes"`},
		{[]string{"produce", "--file", file, "--max-line-bytes", "0"}, "--max-line-bytes must be positive"},
		{[]string{"produce", "--file", file, "--output", "yaml"}, `invalid argument "yaml" for "-o, --output" flag: must be text or json`},
		{[]string{"produce", "--file", file, "--topic", ""}, "--topic must not be empty"},
		{[]string{"produce", "--file", file, "--brokers", k.addr, "--topic", "no.such.topic"}, "topic no.such.topic does not exist"},
		{[]string{"produce", "--file", file, "--timeout", "1s", "--brokers", closedAddr(t)}, "cannot reach Kafka at 127.0.0.1:"},
	})
}
