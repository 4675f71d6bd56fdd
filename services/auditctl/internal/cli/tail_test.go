package cli

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/auditstream/auditstream/proto/auditevent"
	"github.com/auditstream/auditstream/services/testsupport/testwait"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestTailFromBeginningSkipsMalformedRecords(t *testing.T) {
	k := newTestKafka(t)
	ev1, r1 := event(t, "acc-a", "ev-1", 0)
	_, r2 := event(t, "acc-b", "ev-2", 0)
	_, r3 := event(t, "acc-a", "ev-3", 1)
	_, r4 := event(t, "acc-b", "ev-4", 2)
	// The bad record sits before ev-2 in partition 0, so reading all four
	// events means reading past it.
	k.produce(t, r1, malformed(0), r2, r3, r4)

	var stdout, stderr lockedBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run(ctx, &stdout, &stderr, "tail", "--brokers", k.addr, "--from-beginning", "--max", "4"); err != nil {
		t.Fatalf("tail: %v\nstderr: %s", err, stderr.String())
	}
	if got, want := printedIDs(t, stdout.String()), []string{"ev-1", "ev-2", "ev-3", "ev-4"}; !slices.Equal(got, want) {
		t.Errorf("printed ids %v, want %v", got, want)
	}
	// Each line is exactly the codec's JSON for the event.
	if want := string(auditevent.EncodeJSON(ev1)) + "\n"; !strings.Contains(stdout.String(), want) {
		t.Errorf("stdout lacks ev-1 as %s\nstdout:\n%s", want, stdout.String())
	}
	if strings.Contains(stdout.String(), "secret-token-value") {
		t.Error("an unmasked access token was printed")
	}
	errOut := stderr.String()
	if want := "auditctl: warning: skipping record at partition 0 offset 1: " + auditevent.ReasonBadProtobuf + ": "; !strings.Contains(errOut, want) {
		t.Errorf("stderr lacks %q:\n%s", want, errOut)
	}
	if n := strings.Count(errOut, "\n"); n != 1 {
		t.Errorf("stderr has %d lines, want the one warning:\n%s", n, errOut)
	}
}

func TestTailAccountFilter(t *testing.T) {
	k := newTestKafka(t)
	var recs []*kgo.Record
	for i, acc := range []string{"acc-a", "acc-b", "acc-a", "acc-b", "acc-a"} {
		_, r := event(t, acc, fmt.Sprintf("ev-%d", i), int32(i%3))
		recs = append(recs, r)
	}
	k.produce(t, recs...)

	var stdout, stderr lockedBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run(ctx, &stdout, &stderr, "tail", "--brokers", k.addr, "--from-beginning", "--account", "acc-b", "--max", "2"); err != nil {
		t.Fatalf("tail: %v\nstderr: %s", err, stderr.String())
	}
	if got, want := printedIDs(t, stdout.String()), []string{"ev-1", "ev-3"}; !slices.Equal(got, want) {
		t.Errorf("printed ids %v, want %v", got, want)
	}
	if stderr.String() != "" {
		t.Errorf("stderr: %s", stderr.String())
	}
}

func TestTailStartsAtTheEndByDefault(t *testing.T) {
	k := newTestKafka(t)
	var old []string
	for i := range 3 {
		id := fmt.Sprintf("old-%d", i)
		_, r := event(t, "acc-a", id, int32(i))
		k.produce(t, r)
		old = append(old, id)
	}

	var stdout, stderr lockedBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, &stdout, &stderr, "tail", "--brokers", k.addr, "--max", "1") }()
	// tail picks its start offsets a moment after it starts: keep writing
	// new events until it prints one.
	for i := 0; ; i++ {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("tail: %v\nstderr: %s", err, stderr.String())
			}
			ids := printedIDs(t, stdout.String())
			if len(ids) != 1 || slices.Contains(old, ids[0]) || !strings.HasPrefix(ids[0], "new-") {
				t.Errorf("printed %v, want one new event", ids)
			}
			return
		case <-time.After(50 * time.Millisecond):
			_, r := event(t, "acc-a", fmt.Sprintf("new-%d", i), int32(i%3))
			k.produce(t, r)
		}
	}
}

func TestTailInterruptExitsCleanly(t *testing.T) {
	k := newTestKafka(t)
	_, r := event(t, "acc-a", "ev-1", 0)
	k.produce(t, r)

	var stdout, stderr lockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, &stdout, &stderr, "tail", "--brokers", k.addr, "--from-beginning") }()
	defer func() {
		if t.Failed() {
			t.Logf("stderr: %s", stderr.String())
		}
	}()
	testwait.Until(t, "tail to print ev-1", 20*time.Second, func() bool { return strings.Contains(stdout.String(), `"id":"ev-1"`) })
	cancel() // what Ctrl-C does in main
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("tail after interrupt = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("tail did not stop after the interrupt")
	}
}

func TestTailActionFilterAndSummary(t *testing.T) {
	k := newTestKafka(t)
	var recs []*kgo.Record
	for i, action := range []string{"discard-run", "apply-run", "discard-run", "lock-workspace"} {
		ev, _ := event(t, "acc-a", fmt.Sprintf("ev-%d", i), 0)
		ev.Request.Action = action
		r, err := auditevent.NewRecord(topic, ev)
		if err != nil {
			t.Fatal(err)
		}
		r.Partition = 0
		recs = append(recs, r)
	}
	k.produce(t, recs...)

	r := mustCtl(t, "tail", "--brokers", k.addr, "--from-beginning", "--action", "apply-run", "--action", "lock-workspace", "--max", "2", "--format", "summary")
	want := "2024-02-16T12:58:38 acc-a [email protected] apply-run runs/run-1 SUCCESS 202 id=ev-1 p0@1\n" +
		"2024-02-16T12:58:38 acc-a [email protected] lock-workspace runs/run-1 SUCCESS 202 id=ev-3 p0@3\n"
	if r.stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", r.stdout, want)
	}
}

func TestBrokersPrecedence(t *testing.T) {
	cfgFile := writeFile(t, "auditctl.yaml", "kafka:\n  brokers: [file-kafka:9092]\n")
	for _, c := range []struct {
		name    string
		environ []string
		config  string
		flag    string
		want    string
	}{
		{"default", nil, "", "", DefaultBrokers},
		{"config file", nil, cfgFile, "", "file-kafka:9092"},
		{"environment over file", []string{EnvBrokers + "=env-kafka:9092,env-kafka-2:9092"}, cfgFile, "", "env-kafka:9092,env-kafka-2:9092"},
		{"flag over both", []string{EnvBrokers + "=env-kafka:9092"}, cfgFile, "flag-kafka:9092", "flag-kafka:9092"},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := &globals{env: Env{Environ: func() []string { return c.environ }}, configPath: c.config, brokers: c.flag, timeout: time.Second}
			cfg, err := g.load()
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(cfg.Kafka.Brokers, ","); got != c.want {
				t.Errorf("brokers %s, want %s", got, c.want)
			}
		})
	}
	// And the environment's brokers are the ones tail then tries.
	addr := closedAddr(t)
	var stdout, stderr lockedBuffer
	err := runEnv(context.Background(), []string{EnvBrokers + "=" + addr}, &stdout, &stderr, "tail", "--timeout", "1s")
	if err == nil || !strings.HasPrefix(err.Error(), "cannot reach Kafka at "+addr+":") {
		t.Errorf("tail = %v, want cannot reach Kafka at %s", err, addr)
	}
}
