package cli

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/auditstream/auditstream/proto/auditevent"
	"github.com/auditstream/auditstream/services/internal/deadletter"
	"github.com/auditstream/auditstream/services/testsupport/ddfake"
	"github.com/auditstream/auditstream/services/testsupport/kafkatest"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

const dlqTopic = "audit.events.dlq"

// deadLetter makes a dead-letter record of rec as the runtime writes it.
func deadLetter(rec *kgo.Record, partition int32, reason, forwarder, conn string, srcPartition, srcOffset string) *kgo.Record {
	h := slices.Clone(rec.Headers)
	h = append(h,
		kgo.RecordHeader{Key: deadletter.HeaderDLQReason, Value: []byte(reason)},
		kgo.RecordHeader{Key: deadletter.HeaderDLQError, Value: []byte("the " + reason + " error")},
		kgo.RecordHeader{Key: deadletter.HeaderSourceTopic, Value: []byte(topic)},
		kgo.RecordHeader{Key: deadletter.HeaderSourcePartition, Value: []byte(srcPartition)},
		kgo.RecordHeader{Key: deadletter.HeaderSourceOffset, Value: []byte(srcOffset)},
		kgo.RecordHeader{Key: deadletter.HeaderForwarder, Value: []byte(forwarder)},
	)
	if conn != "" {
		h = append(h, kgo.RecordHeader{Key: deadletter.HeaderConnection, Value: []byte(conn)})
	}
	return &kgo.Record{Topic: dlqTopic, Partition: partition, Key: rec.Key, Value: rec.Value, Headers: h, Timestamp: testNow.Add(-time.Hour)}
}

// newDLQKafka is a broker whose dead-letter topic (2 partitions) holds:
//
//	0:0 a valid event a destination rejected (datadog, dd-a)
//	0:1 a malformed record (datadog)
//	0:2 a JSON event without an id, first read at audit.events/2@7 (eventbridge)
//	1:0 a valid event (eventbridge, eb-a)
func newDLQKafka(t *testing.T) *testKafka {
	t.Helper()
	k := newTestKafka(t, kfake.SeedTopics(2, dlqTopic))
	_, ev1 := event(t, "acc-a", "ev-1", 0)
	_, ev4 := event(t, "acc-b", "ev-4", 0)
	noID := &kgo.Record{Key: []byte("acc-c"), Value: []byte(`{"target":{"context":{"account":{"id":"acc-c"}}},"timestamp":"2024-02-16T12:00:00Z"}`),
		Headers: []kgo.RecordHeader{{Key: auditevent.HeaderContentType, Value: []byte(auditevent.ContentTypeJSON)}}}
	k.produce(t,
		deadLetter(ev1, 0, "rejected", "datadog", "dd-a", "0", "3"),
		deadLetter(malformed(0), 0, auditevent.ReasonBadProtobuf, "datadog", "", "0", "4"),
		deadLetter(noID, 0, "encode_failed", "eventbridge", "eb-a", "2", "7"),
		deadLetter(ev4, 1, "rejected", "eventbridge", "eb-a", "1", "0"),
	)
	return k
}

func TestDLQList(t *testing.T) {
	k := newDLQKafka(t)
	r := mustCtl(t, "dlq", "list", "--brokers", k.addr)
	for _, want := range []string{
		"POSITION  TIME                  FORWARDER    CONNECTION  REASON              SOURCE            KEY    ERROR",
		"0:0       2024-02-17T23:00:00Z  datadog      dd-a        rejected            audit.events/0@3  acc-a  the rejected error",
		"0:1       2024-02-17T23:00:00Z  datadog      -           malformed_protobuf  audit.events/0@4  acc-a  the malformed_protobuf error",
		"1:0       2024-02-17T23:00:00Z  eventbridge  eb-a        rejected",
		"4 dead letters on audit.events.dlq: encode_failed 1, malformed_protobuf 1, rejected 2\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("list lacks %q:\n%s", want, r.stdout)
		}
	}

	r = mustCtl(t, "dlq", "list", "--brokers", k.addr, "--forwarder", "datadog", "--output", "json")
	var got struct {
		Topic       string         `json:"topic"`
		DeadLetters []DeadLetter   `json:"dead_letters"`
		Count       int            `json:"count"`
		ByReason    map[string]int `json:"by_reason"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, r.stdout)
	}
	if got.Topic != dlqTopic || got.Count != 2 || len(got.DeadLetters) != 2 || got.ByReason["rejected"] != 1 || got.ByReason["malformed_protobuf"] != 1 {
		t.Errorf("json list %+v", got)
	}
	if d := got.DeadLetters[0]; d.Position != "0:0" || d.Reason != "rejected" || d.Connection != "dd-a" || d.Source != "audit.events/0@3" || d.Key != "acc-a" {
		t.Errorf("first dead letter %+v", d)
	}

	r = mustCtl(t, "dlq", "list", "--brokers", k.addr, "--reason", "nothing-like-this", "-o", "json")
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got.Count != 0 || len(got.DeadLetters) != 0 {
		t.Errorf("empty json list %v %+v:\n%s", err, got, r.stdout)
	}
	r = mustCtl(t, "dlq", "list", "--brokers", k.addr, "--limit", "1", "--reason", "rejected")
	if !strings.Contains(r.stdout, "2 dead letters on audit.events.dlq: rejected 2 (1 listed)") || strings.Count(r.stdout, "\n") != 3 {
		t.Errorf("limited list:\n%s", r.stdout)
	}
}

func TestDLQShow(t *testing.T) {
	k := newDLQKafka(t)
	r := mustCtl(t, "dlq", "show", "0:0", "--brokers", k.addr)
	for _, want := range []string{
		"position:  0:0\n", "key:       acc-a\n",
		"  content-type: application/x-protobuf\n", "  auditstream-dlq-reason: rejected\n", "  auditstream-dlq-error: the rejected error\n",
		"  auditstream-connection: dd-a\n", "event:\n  {\n    \"id\": \"ev-1\",",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("show 0:0 lacks %q:\n%s", want, r.stdout)
		}
	}
	r = mustCtl(t, "dlq", "show", "0:1", "--brokers", k.addr, "-o", "json")
	var s ShownDeadLetter
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, r.stdout)
	}
	if s.Position != "0:1" || s.Event != nil || !strings.HasPrefix(s.DecodeError, "malformed_protobuf: ") || s.ValueBase64 != "////" || len(s.Headers) != 7 {
		t.Errorf("show 0:1: %+v", s)
	}
}

func TestDLQRedriveToTopic(t *testing.T) {
	k := newDLQKafka(t)
	r := ctl(t, "dlq", "redrive", "0:0", "0:1,0:2", "--brokers", k.addr)
	if r.err == nil || r.err.Error() != "1 of 3 dead letters not redriven" {
		t.Errorf("redrive = %v", r.err)
	}
	for _, want := range []string{
		"0:0  sent event ev-1 of acc-a to audit.events\n",
		"0:1  not redriven: does not decode: malformed_protobuf: ",
		"0:2  sent event kafka:audit.events:2:7 of acc-c to audit.events\n",
		"redriven 2 to audit.events, not redriven 1\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("redrive lacks %q:\n%s", want, r.stdout)
		}
	}
	// The events are on the topic again, as events every consumer reads.
	recs := kafkatest.ReadAll(t, k.Brokers(), topic, 2, 10*time.Second)
	var ids []string
	for _, rec := range recs {
		ev, err := auditevent.DecodeRecord(rec)
		if err != nil {
			t.Fatalf("redriven record does not decode: %v", err)
		}
		if string(rec.Key) != auditevent.AccountID(ev) {
			t.Errorf("redriven record key %q, account %q", rec.Key, auditevent.AccountID(ev))
		}
		for _, h := range rec.Headers {
			if strings.HasPrefix(h.Key, "auditstream-") {
				t.Errorf("redriven record carries %s", h.Key)
			}
		}
		ids = append(ids, ev.GetId())
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"ev-1", "kafka:audit.events:2:7"}) {
		t.Errorf("audit.events holds %v", ids)
	}
}

func TestDLQRedriveAllDryRun(t *testing.T) {
	k := newDLQKafka(t)
	r := ctl(t, "dlq", "redrive", "--all", "--dry-run", "--brokers", k.addr, "-o", "json")
	if r.err == nil || r.err.Error() != "1 of 4 dead letters not redriven" {
		t.Errorf("redrive = %v", r.err)
	}
	var rep RedriveReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, r.stdout)
	}
	if !rep.DryRun || rep.Sent != 3 || rep.Failed != 1 || len(rep.Items) != 4 || rep.Items[1].Sent || rep.Items[3] != (Redriven{Position: "1:0", EventID: "ev-4", Account: "acc-b", Sent: true}) {
		t.Errorf("report %+v", rep)
	}
	if recs := kafkatest.ReadAll(t, k.Brokers(), topic, 1, time.Second); len(recs) != 0 {
		t.Errorf("a dry run wrote %d records", len(recs))
	}
	r = mustCtl(t, "dlq", "redrive", "--all", "--forwarder", "eventbridge", "--dry-run", "--brokers", k.addr)
	if !strings.Contains(r.stdout, "dry run: 2 would be sent to audit.events, 0 would not; nothing sent") {
		t.Errorf("filtered dry run:\n%s", r.stdout)
	}
}

func TestBadInputDLQ(t *testing.T) {
	k := newDLQKafka(t)
	b := []string{"--brokers", k.addr}
	intake := ddfake.New("dd-a")
	t.Cleanup(intake.Close)
	dests := ddDestinations(t, intake)
	checkBadInputs(t, []badInput{
		{[]string{"dlq"}, "dlq needs a subcommand: list, show or redrive"},
		{[]string{"dlq", "list", "--limit", "-1"}, "--limit must be 0 (no limit) or more"},
		{[]string{"dlq", "list", "--topic", ""}, "--topic must not be empty"},
		{[]string{"dlq", "list", "-o", "table"}, `invalid argument "table" for "-o, --output"`},
		{append([]string{"dlq", "list", "--topic", "no.dlq"}, b...), "topic no.dlq does not exist"},
		{[]string{"dlq", "show"}, "accepts 1 arg(s), received 0"},
		{append([]string{"dlq", "show", "x:1"}, b...), `"x:1" is not a dead-letter position: want partition:offset`},
		{append([]string{"dlq", "show", "0:-1"}, b...), `"0:-1" is not a dead-letter position`},
		{append([]string{"dlq", "show", "3"}, b...), "offset 3 is ambiguous: audit.events.dlq has 2 partitions; write partition:offset, e.g. 0:3"},
		{append([]string{"dlq", "show", "5:0"}, b...), "dead letter 5:0 does not exist: audit.events.dlq has no partition 5"},
		{append([]string{"dlq", "show", "0:9"}, b...), "dead letter 0:9 does not exist: partition 0 of audit.events.dlq holds offsets 0 to 2"},
		{[]string{"dlq", "redrive"}, "name the dead letters to redrive (partition:offset ...) or give --all, not both"},
		{[]string{"dlq", "redrive", "0:1", "--all"}, "name the dead letters to redrive"},
		{[]string{"dlq", "redrive", "0:1", "--to-topic", ""}, "--to-topic must not be empty"},
		{append([]string{"dlq", "redrive", "0:0", "--to-topic", "nope"}, b...), "topic nope does not exist"},
		{[]string{"dlq", "redrive", "0:0", "--destination", "dd-a", "--to-topic", "x"}, "--to-topic and --destination exclude each other"},
		{[]string{"dlq", "redrive", "0:0", "--destination", "dd-a"}, "no destinations file"},
		{[]string{"dlq", "redrive", "0:0", "--destination", "nope", "--destinations", dests}, `unknown connection "nope"`},
		{append([]string{"dlq", "redrive", "1:1"}, b...), "dead letter 1:1 does not exist: partition 1 of audit.events.dlq holds offsets 0 to 0"},
		{[]string{"dlq", "list", "--timeout", "1s", "--brokers", closedAddr(t)}, "cannot reach Kafka at 127.0.0.1:"},
	})
}

func TestDLQRedriveThroughConnection(t *testing.T) {
	k := newDLQKafka(t)
	intake := ddfake.New("dd-a", "dd-c")
	t.Cleanup(intake.Close)
	cfgFile := testConfig(t, ddDestinations(t, intake))
	r := ctl(t, "dlq", "redrive", "0:0", "0:2", "1:0", "--destination", "dd-a", "--config", cfgFile, "--brokers", k.addr)
	if r.err == nil || r.err.Error() != "1 of 3 dead letters not redriven" {
		t.Errorf("redrive = %v\n%s", r.err, r.stderr)
	}
	for _, want := range []string{
		"0:0  sent event ev-1 of acc-a to connection dd-a\n",
		"0:2  not redriven: account acc-c does not route to connection dd-a\n",
		"1:0  sent event ev-4 of acc-b to connection dd-a\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("redrive lacks %q:\n%s", want, r.stdout)
		}
	}
	if got := ddIDs(intake, "dd-a"); !slices.Equal(got, []string{"ev-1", "ev-4"}) {
		t.Errorf("dd-a received %v", got)
	}
	if recs := kafkatest.ReadAll(t, k.Brokers(), topic, 1, time.Second); len(recs) != 0 {
		t.Errorf("redrive through a connection wrote %d records to the topic", len(recs))
	}

	// The destination still rejects one: reported, not sent.
	intake.RejectEntries(func(e []byte) bool { return strings.Contains(string(e), `"ev-4"`) })
	r = ctl(t, "dlq", "redrive", "0:0", "1:0", "--destination", "dd-a", "--config", cfgFile, "--brokers", k.addr, "-o", "json")
	var rep RedriveReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, r.stdout)
	}
	if r.err == nil || rep.Sent != 1 || rep.Failed != 1 || !strings.HasPrefix(rep.Items[1].Error, "rejected: ") {
		t.Errorf("redrive = %v, report %+v", r.err, rep)
	}
}
