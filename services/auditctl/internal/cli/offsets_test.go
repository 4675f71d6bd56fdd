package cli

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestOffsetsReset(t *testing.T) {
	k := newTestKafka(t)
	start := testNow.Add(-24 * time.Hour)
	// Partition 0: 10 records a minute apart; 1: 5; 2: none.
	k.fill(t, map[int32]int{0: 10, 1: 5}, start)
	const group = "auditstream-datadog"
	before := map[int32]int64{0: 10, 1: 5, 2: 0}
	k.commit(t, group, before)
	to := start.Add(3*time.Minute + 30*time.Second).Format(time.RFC3339)
	// The first records at or after 00:03:30: offset 4 on partition 0; 4 on
	// partition 1; partition 2 has none, so its end.
	want := map[int32]int64{0: 4, 1: 4, 2: 0}

	r := mustCtl(t, "offsets", "reset", "--brokers", k.addr, "--group", group, "--to-time", to)
	for _, line := range []string{
		"audit.events  0          10   4    -6",
		"audit.events  1          5    4    -1",
		"audit.events  2          0    0    +0",
		"dry run: group auditstream-datadog not changed; add --execute",
	} {
		if !strings.Contains(r.stdout, line) {
			t.Errorf("dry run lacks %q:\n%s", line, r.stdout)
		}
	}
	if got := k.committed(t, group); fmt.Sprint(got) != fmt.Sprint(before) {
		t.Fatalf("a dry run moved the group: %v, was %v", got, before)
	}

	r = mustCtl(t, "offsets", "reset", "--brokers", k.addr, "--group", group, "--to-time", to, "--execute", "--output", "json")
	var rep ResetReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, r.stdout)
	}
	if !rep.Executed || rep.Group != group || len(rep.Partitions) != 3 || rep.Partitions[0] != (OffsetMove{Topic: topic, Partition: 0, Old: 10, New: 4}) {
		t.Errorf("report %+v", rep)
	}
	if got := k.committed(t, group); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("after --execute the group is at %v, want %v", got, want)
	}

	// A relative time before everything moves the group to the start.
	mustCtl(t, "offsets", "reset", "--brokers", k.addr, "--group", group, "--to-time", "-30d", "--execute")
	if got := k.committed(t, group); fmt.Sprint(got) != fmt.Sprint(map[int32]int64{0: 0, 1: 0, 2: 0}) {
		t.Errorf("after a reset to -30d the group is at %v", got)
	}
}

func TestOffsetsResetRefusesActiveGroup(t *testing.T) {
	k := newTestKafka(t)
	k.fill(t, map[int32]int{0: 3}, testNow.Add(-time.Hour))
	k.joinGroup(t, "auditstream-datadog", "datadog-forwarder")
	k.commit(t, "auditstream-idle", map[int32]int64{0: 3})
	for _, execute := range []bool{false, true} {
		args := []string{"offsets", "reset", "--brokers", k.addr, "--group", "auditstream-datadog", "--to-time", "-2h"}
		if execute {
			args = append(args, "--execute")
		}
		r := ctl(t, args...)
		if r.err == nil || !strings.Contains(r.err.Error(), "consumer group auditstream-datadog has 1 active member(s) (datadog-forwarder@") ||
			!strings.Contains(r.err.Error(), "stop them first") {
			t.Errorf("reset of a group with a member = %v", r.err)
		}
		if r.stdout != "" {
			t.Errorf("stdout: %s", r.stdout)
		}
	}
}

func TestBadInputOffsets(t *testing.T) {
	k := newTestKafka(t)
	checkBadInputs(t, []badInput{
		{[]string{"offsets"}, "offsets needs a subcommand: reset"},
		{[]string{"offsets", "reset", "--to-time", "-2h"}, "--group is required"},
		{[]string{"offsets", "reset", "--group", "g"}, "--to-time is required"},
		{[]string{"offsets", "reset", "--group", "g", "--to-time", "last tuesday"}, `invalid argument "last tuesday" for "--to-time" flag: "last tuesday" is not a time`},
		{[]string{"offsets", "reset", "--group", "g", "--to-time", "2024-13-01"}, `invalid argument "2024-13-01" for "--to-time"`},
		{[]string{"offsets", "reset", "--group", "g", "--to-time", "-2h", "--topic", ""}, "--topic must not be empty"},
		{[]string{"offsets", "reset", "--group", "g", "--to-time", "-2h", "-o", "csv"}, `invalid argument "csv" for "-o, --output"`},
		{[]string{"offsets", "reset", "--group", "g", "--to-time", "-2h", "--execute=maybe"}, `invalid argument "maybe" for "--execute"`},
		{[]string{"offsets", "reset", "--brokers", k.addr, "--group", "no-such-group", "--to-time", "-2h"}, "consumer group no-such-group not found"},
		{[]string{"offsets", "reset", "--brokers", k.addr, "--group", "g", "--to-time", "-2h", "--topic", "nope"}, "topic nope does not exist"},
		{[]string{"offsets", "reset", "--group", "g", "--to-time", "-2h", "--timeout", "1s", "--brokers", closedAddr(t)}, "cannot reach Kafka at 127.0.0.1:"},
	})
}
