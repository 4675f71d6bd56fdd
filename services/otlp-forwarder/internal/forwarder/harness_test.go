package forwarder

import (
	"testing"

	"github.com/auditstream/auditstream/proto/auditevent"
	"github.com/auditstream/auditstream/services/testsupport/otlpfake"
	"github.com/auditstream/auditstream/services/testsupport/sinkconformance"
	"github.com/twmb/franz-go/pkg/kgo"
)

// pipeline is a broker, an OTLP receiver fake and the forwarder's config
// pointing at both (sinkconformance.Pipeline). Each connection is its own
// tenant (tenant_id = its name) of the fake, so the fake's records per
// tenant are the connection's deliveries, and sends a bearer token read
// from a Secret file (receiverFake.Connection).
type pipeline struct {
	*sinkconformance.Pipeline
	rcv *otlpfake.Server
}

func newPipeline(t *testing.T) *pipeline {
	t.Helper()
	f := &receiverFake{Server: otlpfake.New(), t: t}
	f.RequireTenant(true)
	t.Cleanup(f.Close)
	return &pipeline{Pipeline: sinkconformance.NewPipeline(t, Spec, DefaultConfig(), f), rcv: f.Server}
}

func headers(rec *kgo.Record) map[string]string {
	h := map[string]string{}
	for _, x := range rec.Headers {
		h[x.Key] = string(x.Value)
	}
	return h
}

func recordEventID(t *testing.T, rec *kgo.Record) string {
	t.Helper()
	ev, err := auditevent.DecodeRecord(rec)
	if err != nil {
		t.Fatalf("record does not decode: %v", err)
	}
	return ev.GetId()
}
