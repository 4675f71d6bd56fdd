package replay

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/services/internal/config"
	"github.com/auditstream/auditstream/services/internal/delivery"
	"github.com/auditstream/auditstream/services/internal/sink"
	"github.com/auditstream/auditstream/services/internal/sink/datadog"
	"github.com/auditstream/auditstream/services/testsupport/ddfake"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// The intake answers 413 for a batch, and the sink's split budget runs out
// before the entries are alone: the sink fails them TooLarge, which means
// "resend smaller", not "rejected". The Sender retries them, as the
// forwarders' runtime does, and every event is delivered once.
func TestSenderRetriesEntriesLeftTooLarge(t *testing.T) {
	intake := ddfake.New("key")
	t.Cleanup(intake.Close)
	intake.FailNext(2, http.StatusRequestEntityTooLarge, nil)
	cfg := datadog.Config{BaseURL: intake.URL(), APIKey: config.SecretLiteral("key"), Timeout: 5 * time.Second}
	dd, err := datadog.New(cfg, datadog.Options{MaxBisectRequests: 1})
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		outcomes []Outcome
	)
	s := Start(context.Background(), SenderOptions{
		Connection: "dd", Sink: delivery.NewEntrySink(cfg.Encoder(), dd),
		Batch:       sink.BatchPolicy{Count: 4, Bytes: 1 << 20, Period: time.Hour},
		Backoff:     sink.Backoff{Initial: time.Millisecond, Max: 10 * time.Millisecond, Multiplier: 2},
		RetryBudget: 10 * time.Second, SendTimeout: 5 * time.Second, InFlight: 1,
	}, func(o Outcome) {
		mu.Lock()
		defer mu.Unlock()
		outcomes = append(outcomes, o)
	})
	for i := range 4 {
		ev := &auditlogv1.AuditEvent{Id: fmt.Sprintf("ev-%d", i), Timestamp: timestamppb.Now(),
			Target: &auditlogv1.Target{Context: &auditlogv1.Context{Account: &auditlogv1.Ref{Id: "acc"}}}}
		if err := s.Send(Item{Event: ev, Account: "acc", Time: ev.Timestamp.AsTime()}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatalf("sender stopped: %v", err)
	}
	if len(outcomes) != 4 {
		t.Fatalf("%d outcomes, want 4", len(outcomes))
	}
	for _, o := range outcomes {
		if o.Err != nil {
			t.Errorf("event %s reported rejected: %v", o.Event.GetId(), o.Err)
		}
	}
	if n := intake.Count("key"); n != 4 {
		t.Errorf("the intake holds %d logs, want the 4 events once each", n)
	}
	tooLarge := 0
	for _, r := range intake.Requests() {
		if r.Status == http.StatusRequestEntityTooLarge {
			tooLarge++
		}
	}
	if tooLarge != 2 {
		t.Errorf("the intake answered 413 %d times, want 2: the test did not leave entries TooLarge", tooLarge)
	}
}
