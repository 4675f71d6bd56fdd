package sink

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/auditstream/auditstream/services/internal/config"
)

func TestBatchPolicyValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    BatchPolicy
		want []string // substrings of the error; none means valid
	}{
		{"count and period", BatchPolicy{Count: 500, Period: time.Second}, nil},
		{"bytes and period", BatchPolicy{Bytes: 5 << 20, Period: time.Second}, nil},
		{"all three", BatchPolicy{Count: 1000, Bytes: 5 << 20, Period: 200 * time.Millisecond}, nil},
		{"count one needs no period", BatchPolicy{Count: 1}, nil},
		{"nothing bounds the batch", BatchPolicy{Period: time.Second}, []string{"count: count or bytes must be set"}},
		{"negative count", BatchPolicy{Count: -1, Bytes: 10, Period: time.Second}, []string{"count: must not be negative"}},
		{"negative bytes", BatchPolicy{Count: 10, Bytes: -1, Period: time.Second}, []string{"bytes: must not be negative"}},
		{"negative period", BatchPolicy{Count: 10, Period: -time.Second}, []string{"period: must not be negative"}},
		{"no period", BatchPolicy{Count: 10}, []string{"period: must be positive unless count is 1"}},
		{"every problem at once", BatchPolicy{Count: -1, Bytes: -1, Period: -1}, []string{
			"count: must not be negative", "bytes: must not be negative",
			"count: count or bytes must be set", "period: must not be negative",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.p.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestBatchPolicyYAML(t *testing.T) {
	var p BatchPolicy
	if err := config.Parse([]byte("count: 1000\nbytes: 5MB\nperiod: 250ms\n"), &p); err != nil {
		t.Fatal(err)
	}
	want := BatchPolicy{Count: 1000, Bytes: 5 << 20, Period: 250 * time.Millisecond}
	if p != want {
		t.Fatalf("parsed %+v, want %+v", p, want)
	}
}

func TestBatcherFlushByCount(t *testing.T) {
	b := NewBatcher[int](BatchPolicy{Count: 3, Period: time.Second})
	for i := range 2 {
		if b.Add(i, 10) {
			t.Fatalf("Add(%d) ready before the count", i)
		}
	}
	if !b.Add(2, 10) {
		t.Fatal("Add(2) not ready at the count")
	}
	if b.Len() != 3 || b.Size() != 30 {
		t.Fatalf("Len, Size = %d, %d, want 3, 30", b.Len(), b.Size())
	}
	if got := b.Flush(); !slices.Equal(got, []int{0, 1, 2}) {
		t.Fatalf("Flush() = %v", got)
	}
	if b.Len() != 0 || b.Size() != 0 {
		t.Fatalf("after Flush: Len, Size = %d, %d, want 0, 0", b.Len(), b.Size())
	}
	if _, ok := b.Deadline(); ok {
		t.Fatal("empty batcher has a deadline")
	}
	if b.Add(3, 1) {
		t.Fatal("fresh batch ready after one item")
	}
}

func TestBatcherFlushByBytes(t *testing.T) {
	b := NewBatcher[string](BatchPolicy{Bytes: 100, Period: time.Second})
	if b.Add("a", 60) {
		t.Fatal("ready below the byte threshold")
	}
	if !b.Add("b", 40) {
		t.Fatal("not ready on reaching the byte threshold")
	}
	if got := b.Flush(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("Flush() = %v", got)
	}
	// Crossing the threshold keeps the crossing item: overshoot by one item.
	b.Add("c", 60)
	if !b.Add("d", 60) || b.Size() != 120 {
		t.Fatalf("crossing item: Size() = %d, want ready with 120", b.Size())
	}
}

func TestBatcherOversizeItem(t *testing.T) {
	b := NewBatcher[string](BatchPolicy{Count: 10, Bytes: 100, Period: time.Second})
	if !b.Add("huge", 1000) {
		t.Fatal("an item over Bytes is not ready at once")
	}
	if got := b.Flush(); !slices.Equal(got, []string{"huge"}) {
		t.Fatalf("Flush() = %v, want the oversize item alone", got)
	}
}

func TestBatcherHostileSizes(t *testing.T) {
	b := NewBatcher[int](BatchPolicy{Bytes: 100, Period: time.Second})
	if b.Add(1, -50) || b.Size() != 0 {
		t.Fatalf("negative size: Size() = %d, want 0 and not ready", b.Size())
	}
	b.Add(2, math.MaxInt)
	if !b.Add(3, math.MaxInt) || b.Size() != math.MaxInt {
		t.Fatalf("overflowing sizes: Size() = %d, want saturated at MaxInt", b.Size())
	}
}

func TestBatcherWithoutLimitsFlushesEachItem(t *testing.T) {
	b := NewBatcher[int](BatchPolicy{})
	if !b.Add(1, 1) {
		t.Fatal("an unbounded policy must not accumulate")
	}
}

func TestBatcherDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := NewBatcher[int](BatchPolicy{Count: 100, Period: time.Second})
		if _, ok := b.Deadline(); ok {
			t.Fatal("empty batcher has a deadline")
		}
		start := time.Now()
		b.Add(1, 1)
		// the bubble's fake clock moves on
		time.Sleep(400 * time.Millisecond)
		b.Add(2, 1) // a later item does not push the deadline back
		dl, ok := b.Deadline()
		if !ok || !dl.Equal(start.Add(time.Second)) {
			t.Fatalf("Deadline() = %v, %v, want first item + period %v", dl, ok, start.Add(time.Second))
		}
		b.Flush()
		time.Sleep(2 * time.Second)
		b.Add(3, 1)
		if dl, _ := b.Deadline(); !dl.Equal(time.Now().Add(time.Second)) {
			t.Fatalf("after Flush, Deadline() = %v, want now + period", dl)
		}
	})
	b := NewBatcher[int](BatchPolicy{Count: 1})
	b.Add(1, 1)
	if _, ok := b.Deadline(); ok {
		t.Fatal("a policy without Period has a deadline")
	}
}

// TestBatcherFlushByPeriod drives a Batcher the way a forwarder does: one
// goroutine selecting on input and a timer set from Deadline.
func TestBatcherFlushByPeriod(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		type flush struct {
			at    time.Time
			items []int
		}
		in := make(chan int)
		out := make(chan flush, 10)
		b := NewBatcher[int](BatchPolicy{Count: 3, Period: time.Second})
		go func() {
			defer close(out)
			timer := time.NewTimer(time.Hour)
			timer.Stop()
			for {
				if dl, ok := b.Deadline(); ok {
					timer.Reset(time.Until(dl))
				}
				select {
				case v, open := <-in:
					timer.Stop()
					if !open {
						if b.Len() > 0 {
							out <- flush{time.Now(), b.Flush()}
						}
						return
					}
					if b.Add(v, 1) {
						out <- flush{time.Now(), b.Flush()}
					}
				case <-timer.C:
					out <- flush{time.Now(), b.Flush()}
				}
			}
		}()

		start := time.Now()
		in <- 1
		time.Sleep(300 * time.Millisecond)
		in <- 2
		time.Sleep(time.Second) // the period ends 700ms into this sleep
		in <- 3
		in <- 4
		in <- 5 // count reached at once, long before the period
		in <- 6
		close(in)

		want := []flush{
			{start.Add(time.Second), []int{1, 2}},
			{start.Add(1300 * time.Millisecond), []int{3, 4, 5}},
			{start.Add(1300 * time.Millisecond), []int{6}},
		}
		var got []flush
		for f := range out {
			got = append(got, f)
		}
		if len(got) != len(want) {
			t.Fatalf("got %d flushes %v, want %d", len(got), got, len(want))
		}
		for i := range want {
			if !got[i].at.Equal(want[i].at) || !slices.Equal(got[i].items, want[i].items) {
				t.Errorf("flush %d = %v at +%v, want %v at +%v", i,
					got[i].items, got[i].at.Sub(start), want[i].items, want[i].at.Sub(start))
			}
		}
	})
}

func TestSplit(t *testing.T) {
	size := func(n int) int { return n }
	for _, tc := range []struct {
		name            string
		items           []int
		maxCount, bytes int
		want            [][]int
	}{
		{"empty", nil, 10, 100, nil},
		{"fits", []int{1, 2, 3}, 10, 100, [][]int{{1, 2, 3}}},
		{"count", []int{1, 1, 1, 1, 1}, 2, 0, [][]int{{1, 1}, {1, 1}, {1}}},
		{"bytes", []int{40, 40, 40, 10}, 0, 100, [][]int{{40, 40}, {40, 10}}},
		{"bytes exactly", []int{50, 50, 50}, 0, 100, [][]int{{50, 50}, {50}}},
		{"both", []int{10, 10, 10, 90, 5}, 2, 100, [][]int{{10, 10}, {10, 90}, {5}}},
		{"oversize alone in the middle", []int{10, 500, 10}, 10, 100, [][]int{{10}, {500}, {10}}},
		{"oversize first", []int{500, 10, 10}, 10, 100, [][]int{{500}, {10, 10}}},
		{"no limits", []int{1, 2, 3}, 0, 0, [][]int{{1, 2, 3}}},
		{"zero sizes", []int{0, 0, 0}, 0, 1, [][]int{{0, 0, 0}}},
		{"huge sizes do not wrap", []int{math.MaxInt, math.MaxInt, 1}, 0, math.MaxInt, [][]int{{math.MaxInt}, {math.MaxInt}, {1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Split(tc.items, size, tc.maxCount, tc.bytes)
			if !slices.EqualFunc(got, tc.want, slices.Equal) {
				t.Fatalf("Split(%v, %d, %d) = %v, want %v", tc.items, tc.maxCount, tc.bytes, got, tc.want)
			}
		})
	}
}

// TestSplitProperties checks over random inputs that chunks keep order, obey
// both limits (or hold one oversize item), and are greedy: the first item of
// the next chunk could not have joined the previous one.
func TestSplitProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		n := r.IntN(60)
		maxCount := r.IntN(12) // 0: no limit
		maxBytes := r.IntN(300)
		items := make([]int, n)
		for i := range items {
			items[i] = r.IntN(120)
		}
		chunks := Split(items, func(v int) int { return v }, maxCount, maxBytes)

		if got := slices.Concat(chunks...); !slices.Equal(got, items) && !(len(got) == 0 && len(items) == 0) {
			t.Fatalf("Split(%v, %d, %d) reordered or lost items: %v", items, maxCount, maxBytes, chunks)
		}
		for k, c := range chunks {
			sum := 0
			for _, v := range c {
				sum += v
			}
			if len(c) == 0 {
				t.Fatalf("empty chunk %d in %v", k, chunks)
			}
			if maxCount > 0 && len(c) > maxCount {
				t.Fatalf("chunk %v has more than %d items", c, maxCount)
			}
			if maxBytes > 0 && sum > maxBytes && len(c) != 1 {
				t.Fatalf("chunk %v is %d bytes, over %d, with more than one item", c, sum, maxBytes)
			}
			if k+1 < len(chunks) {
				next := chunks[k+1][0]
				fitsCount := maxCount <= 0 || len(c)+1 <= maxCount
				fitsBytes := maxBytes <= 0 || sum+next <= maxBytes
				if fitsCount && fitsBytes {
					t.Fatalf("chunk %v was cut although %d fits (count %d, bytes %d)", c, next, maxCount, maxBytes)
				}
			}
		}
	}
}

func TestSplitChunksDoNotAlias(t *testing.T) {
	items := []int{1, 2, 3, 4}
	chunks := Split(items, func(int) int { return 1 }, 2, 0)
	_ = append(chunks[0], 99)
	if chunks[1][0] != 3 {
		t.Fatalf("appending to chunk 0 overwrote chunk 1: %v", chunks)
	}
}

func TestBatcherFlushAt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := NewBatcher[int](BatchPolicy{Count: 100, Period: time.Second, Idle: 50 * time.Millisecond})
		if _, ok := b.FlushAt(time.Now()); ok {
			t.Fatal("empty batcher has a flush time")
		}
		start := time.Now()
		b.Add(1, 1)
		if at, ok := b.FlushAt(time.Now()); !ok || !at.Equal(start.Add(50*time.Millisecond)) {
			t.Fatalf("FlushAt = %v, %v, want quiet + idle", at, ok)
		}
		// items keep coming: the idle time moves with the last quiet moment,
		// but never past the period
		time.Sleep(970 * time.Millisecond)
		b.Add(2, 1)
		if at, _ := b.FlushAt(time.Now()); !at.Equal(start.Add(time.Second)) {
			t.Fatalf("FlushAt = %v, want first item + period %v", at, start.Add(time.Second))
		}
	})
	b := NewBatcher[int](BatchPolicy{Count: 100, Period: time.Second})
	b.Add(1, 1)
	now := time.Now()
	if at, _ := b.FlushAt(now); !at.After(now.Add(900 * time.Millisecond)) {
		t.Fatalf("without Idle, FlushAt = %v, want the period", at)
	}
	if err := (BatchPolicy{Count: 1, Idle: -time.Second}).Validate(); err == nil || !strings.Contains(err.Error(), "idle") {
		t.Fatalf("negative idle: %v", err)
	}
}
