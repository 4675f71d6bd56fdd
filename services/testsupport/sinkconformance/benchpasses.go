package sinkconformance

// The passes a forwarder's report measures it against, written once and
// driven by the forwarder's encoder and sink: the consume ceiling, the
// encode passes (records decoded, encoded and handed in batches to the
// sink's work, sent nowhere) and the fake alone taking requests made
// before the timer.

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auditstream/auditstream/proto/auditevent"
	"github.com/auditstream/auditstream/services/internal/forwarding"
	"github.com/auditstream/auditstream/services/internal/sink"
	"github.com/auditstream/auditstream/services/testsupport/forwardingtest"
	"github.com/twmb/franz-go/pkg/kgo"
)

// BenchBatchEntries is the default delivery batch: what one WriteBatch
// gets, and what the encode passes cut their work into.
const BenchBatchEntries = 500

// BenchConsumeCeiling is the ceiling: a franz-go group consumer with the
// runtime's consumer and fetch options (no decoding, no delivery) polling
// b.N pre-loaded records, from a cold start (group join included, as for
// the forwarder).
func BenchConsumeCeiling(b *testing.B, spec forwarding.Spec) {
	cluster, cfg := forwardingtest.BenchBroker(b, spec)
	forwardingtest.BenchConsumeCeiling(b, cluster, cfg, benchDeliverTimeout)
}

// BenchRecords is forwardingtest.BenchPool records as the broker holds
// them; the encode passes cycle through them.
func BenchRecords(b *testing.B, spec forwarding.Spec) []*kgo.Record {
	gen := forwardingtest.NewBenchGen(b, forwarding.DefaultConfig(spec).Kafka.Topics.Events.Name)
	at := time.Now()
	records := make([]*kgo.Record, forwardingtest.BenchPool)
	for i := range records {
		records[i] = gen.Record(b, i, at.Add(time.Duration(i)*time.Microsecond))
	}
	return records
}

// BenchEntries is BenchRecords decoded and encoded by enc, for the passes
// that encode before the timer.
func BenchEntries[E any](b *testing.B, spec forwarding.Spec, enc sink.Encoder[E]) []sink.Entry[E] {
	records := BenchRecords(b, spec)
	entries := make([]sink.Entry[E], len(records))
	for i, rec := range records {
		ev, err := auditevent.DecodeRecord(rec)
		if err != nil {
			b.Fatal(err)
		}
		if entries[i], err = enc.EncodeEntry(ev); err != nil {
			b.Fatal(err)
		}
	}
	return entries
}

// BenchBatches times events 0 to b.N-1 cut into batches of
// BenchBatchEntries, taken in order on GOMAXPROCS goroutines, each with
// the work newWorker gives it (handed a batch's events from to to), and
// reports events/s (forwardingtest.BenchWorkers).
func BenchBatches(b *testing.B, newWorker func() (func(from, to int) error, error)) {
	batches := int64((b.N + BenchBatchEntries - 1) / BenchBatchEntries)
	elapsed := forwardingtest.BenchWorkers(b, runtime.GOMAXPROCS(0), batches, func() (func(int64) error, error) {
		work, err := newWorker()
		if err != nil {
			return nil, err
		}
		return func(batch int64) error {
			from := int(batch) * BenchBatchEntries
			return work(from, min(from+BenchBatchEntries, b.N))
		}, nil
	})
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
}

// BenchEncode is an encode pass: b.N records (BenchRecords, cycled)
// decoded with auditevent.DecodeRecord and encoded by enc, each batch of
// BenchBatchEntries handed to the write newWrite gives each goroutine
// (BenchBatches). It reports events/s and entry-B, each entry's bytes as
// size counts them.
func BenchEncode[E any](b *testing.B, spec forwarding.Spec, enc sink.Encoder[E], size func(sink.Entry[E]) int,
	newWrite func() (func([]sink.Entry[E]) error, error)) {
	records := BenchRecords(b, spec)
	var entryBytes atomic.Int64
	BenchBatches(b, func() (func(from, to int) error, error) {
		write, err := newWrite()
		if err != nil {
			return nil, err
		}
		entries := make([]sink.Entry[E], 0, BenchBatchEntries)
		return func(from, to int) error {
			entries = entries[:0]
			for i := from; i < to; i++ {
				ev, err := auditevent.DecodeRecord(records[i%len(records)])
				if err != nil {
					return err
				}
				entry, err := enc.EncodeEntry(ev)
				if err != nil {
					return err
				}
				entryBytes.Add(int64(size(entry)))
				entries = append(entries, entry)
			}
			return write(entries)
		}, nil
	})
	b.ReportMetric(float64(entryBytes.Load())/float64(b.N), "entry-B")
}

// BenchRequest is a request as a sink sent it (or would), made before the
// timer to be sent again.
type BenchRequest struct {
	URL    string
	Header http.Header
	Body   []byte
}

// BenchReplay is what a fake costs on the CPUs it shares with the
// forwarder: requests (cycled) POSTed by a bare net/http client on workers
// goroutines, as many requests out as the forwarder has, until n were
// answered, each with status; each request holds perRequest entries. It
// reports events/s, b.N over the time taken; the caller checks what the
// fake accepted.
func BenchReplay(b *testing.B, requests []BenchRequest, workers, perRequest, status int) {
	if len(requests) == 0 {
		b.Fatal("no request to send")
	}
	transport := &http.Transport{MaxIdleConnsPerHost: 2 * workers}
	b.Cleanup(transport.CloseIdleConnections)
	client := &http.Client{Transport: transport}
	send := func(i int64) error {
		r := requests[i%int64(len(requests))]
		req, err := http.NewRequest(http.MethodPost, r.URL, bytes.NewReader(r.Body))
		if err != nil {
			return err
		}
		req.Header = r.Header.Clone()
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != status {
			return fmt.Errorf("the fake answered %s", resp.Status)
		}
		return nil
	}
	total := int64((b.N + perRequest - 1) / perRequest)
	elapsed := forwardingtest.BenchWorkers(b, workers, total, func() (func(int64) error, error) { return send, nil })
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
}
