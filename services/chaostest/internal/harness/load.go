package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/auditstream/auditstream/services/chaostest/internal/check"
)

// loadStats count what the generator saw.
type loadStats struct {
	requests, accepted, unconfirmed, rejected, skipped atomic.Int64
	mu                                                 sync.Mutex
	answers                                            map[string]int
}

func (s *loadStats) answer(what string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.answers == nil {
		s.answers = map[string]int{}
	}
	s.answers[what]++
}

func (s *loadStats) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var parts []string
	for _, k := range sortedKeys(s.answers) {
		parts = append(parts, fmt.Sprintf("%s×%d", k, s.answers[k]))
	}
	return fmt.Sprintf("%d requests (%s), %d ticks skipped while every sender was busy", s.requests.Load(), strings.Join(parts, " "), s.skipped.Load())
}

// posted is one event of a request, as the ledger needs it.
type posted struct {
	id, account, token string
}

// generator posts events of many accounts to ingest at a steady rate and
// puts each in the checker's ledger with what ingest answered.
type generator struct {
	url      string
	accounts []string
	rate     float64
	check    *check.Checker
	stats    *loadStats
	client   *http.Client
	seq      atomic.Int64
	runID    string
	pad      string
}

func newGenerator(ingestURL string, accounts []string, rate float64, chk *check.Checker) *generator {
	return &generator{
		url: ingestURL + "/v1/events", accounts: accounts, rate: rate, check: chk, stats: &loadStats{},
		client: &http.Client{Timeout: 10 * time.Second},
		runID:  randomHex(4),
		// Events of a realistic size (about 900 bytes of JSON), with
		// characters that need escaping.
		pad: strings.Repeat("chaos padding \"quoted\" \\ é ✓ ", 14),
	}
}

// run posts until ctx ends: every 50 ms a request of rate/20 events (the
// fraction carried over), on up to four senders at once, so a slow answer
// delays no other request. A tick finding every sender busy is skipped and
// counted, keeping the offered rate steady rather than bursting later.
func (g *generator) run(ctx context.Context) {
	const tick = 50 * time.Millisecond
	jobs := make(chan []posted)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for batch := range jobs {
				g.post(batch)
			}
		}()
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	carry := 0.0
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-t.C:
		}
		carry += g.rate * tick.Seconds()
		n := int(carry)
		carry -= float64(n)
		if n == 0 {
			continue
		}
		batch := make([]posted, n)
		for i := range batch {
			batch[i] = g.event()
		}
		select {
		case jobs <- batch:
		default:
			g.stats.skipped.Add(1)
		}
	}
	close(jobs)
	wg.Wait()
}

func (g *generator) event() posted {
	seq := g.seq.Add(1)
	return posted{
		id:      "chaos-" + g.runID + "-" + strconv.FormatInt(seq, 10),
		account: g.accounts[rand.IntN(len(g.accounts))],
		token:   check.RawTokenMarker + randomHex(12),
	}
}

func (g *generator) body(batch []posted) []byte {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, p := range batch {
		if i > 0 {
			b.WriteByte(',')
		}
		ev := map[string]any{
			"id": p.id,
			"actor": map[string]any{
				"id": "user-" + strconv.Itoa(rand.IntN(50)), "type": "user", "email": "someone@example.com",
				"access-token": map[string]any{"type": "session", "token": p.token},
			},
			"request": map[string]any{
				"ip-address": "10.0." + strconv.Itoa(rand.IntN(255)) + ".7", "action": []string{"apply-run", "discard-run", "create-workspace", "delete-variable"}[rand.IntN(4)],
				"id": randomHex(16), "source": "api", "user-agent": "auditstream-chaos/1",
			},
			"hostname": "platform.example.com",
			"service":  "audit-log",
			"outcome":  map[string]any{"result": "SUCCESS", "status-code": 202},
			"target": map[string]any{
				"id": "run-" + randomHex(6), "type": "runs", "display-name": "run " + p.id,
				"context": map[string]any{
					"account":     map[string]any{"id": p.account, "display-name": "Account " + p.account},
					"environment": map[string]any{"id": "env-" + p.account, "display-name": "Production"},
					"workspace":   map[string]any{"id": "ws-" + randomHex(5), "display-name": "Workspace"},
				},
			},
			"extra": map[string]any{"pad": g.pad, "run": g.runID},
		}
		enc, err := json.Marshal(ev)
		if err != nil {
			panic(err)
		}
		b.Write(enc)
	}
	b.WriteByte(']')
	return b.Bytes()
}

// post sends one request and records each event with ingest's answer: 202
// accepts all; 503 kafka_write_failed accepts the written and leaves the
// failed unconfirmed (they may be on the topic after all); any other 503,
// or a 400, rejects all; no answer leaves all unconfirmed. Nothing is
// re-sent: a re-sent event is a duplicate downstream that no bound covers.
func (g *generator) post(batch []posted) {
	g.stats.requests.Add(1)
	for _, p := range batch {
		g.check.Record(p.id, p.account, p.token, check.Unconfirmed)
	}
	resp, err := g.client.Post(g.url, "application/json", bytes.NewReader(g.body(batch)))
	if err != nil {
		g.stats.answer("no-answer")
		g.stats.unconfirmed.Add(int64(len(batch)))
		return
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var ans struct {
		IDs   []string `json:"ids"`
		Error struct {
			Code    string   `json:"code"`
			Written []string `json:"written"`
			Failed  []string `json:"failed"`
		} `json:"error"`
		Written []string `json:"written"`
		Failed  []string `json:"failed"`
	}
	_ = json.Unmarshal(raw, &ans)
	set := func(st check.State) {
		for _, p := range batch {
			g.check.Record(p.id, p.account, p.token, st)
		}
	}
	switch {
	case resp.StatusCode == http.StatusAccepted:
		g.stats.answer("202")
		if len(ans.IDs) != len(batch) {
			g.stats.answer("202-with-wrong-ids")
		}
		for i, p := range batch {
			if i < len(ans.IDs) && ans.IDs[i] != p.id {
				g.stats.answer("202-with-wrong-ids")
			}
		}
		set(check.Accepted)
		g.stats.accepted.Add(int64(len(batch)))
	case resp.StatusCode == http.StatusServiceUnavailable && ans.Error.Code == "kafka_write_failed":
		g.stats.answer("503-kafka_write_failed")
		written := map[string]bool{}
		for _, id := range append(ans.Written, ans.Error.Written...) {
			written[id] = true
		}
		for _, p := range batch {
			if written[p.id] {
				g.check.Record(p.id, p.account, p.token, check.Accepted)
				g.stats.accepted.Add(1)
			} else {
				g.stats.unconfirmed.Add(1)
			}
		}
	default:
		code := ans.Error.Code
		if code == "" {
			code = "no-code"
		}
		g.stats.answer(strconv.Itoa(resp.StatusCode) + "-" + code)
		set(check.Rejected)
		g.stats.rejected.Add(int64(len(batch)))
	}
}
