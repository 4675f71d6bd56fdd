package archive

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"io"
	"os"
	"slices"
	"time"

	"github.com/klauspost/compress/gzip"
)

// spoolEntry is the in-memory index of one spooled event: 40 bytes, so a
// group's memory is bounded by max_group_bytes / (event size) * 40 while the
// events themselves wait on disk.
type spoolEntry struct {
	pos    int64
	offset int64
	ts     int64 // event time, Unix nanoseconds
	idHash uint64
	n      uint32
	acct   uint32
}

// Spool holds one group's events on local disk until the group is cut. The
// events are stored as the seed-shaped JSON lines they are archived as.
type Spool struct {
	f        *os.File
	w        *bufio.Writer
	size     int64
	entries  []spoolEntry
	accounts []string
	acctIdx  map[string]uint32
	seed     maphash.Seed
}

// NewSpool creates a spool file in dir. The file is unlinked at once: it
// lives only as long as the open descriptor, so a crash leaves no litter.
func NewSpool(dir string) (*Spool, error) {
	f, err := os.CreateTemp(dir, "group-*.spool")
	if err != nil {
		return nil, fmt.Errorf("create spool file in %s: %w", dir, err)
	}
	_ = os.Remove(f.Name())
	return &Spool{f: f, w: bufio.NewWriterSize(f, 256<<10), acctIdx: map[string]uint32{}, seed: maphash.MakeSeed()}, nil
}

// Add appends one event's JSON line (without the newline).
func (s *Spool) Add(account, id string, offset int64, ts time.Time, line []byte) error {
	idx, ok := s.acctIdx[account]
	if !ok {
		idx = uint32(len(s.accounts))
		s.accounts = append(s.accounts, account)
		s.acctIdx[account] = idx
	}
	if _, err := s.w.Write(line); err != nil {
		return fmt.Errorf("write spool: %w", err)
	}
	if err := s.w.WriteByte('\n'); err != nil {
		return fmt.Errorf("write spool: %w", err)
	}
	s.entries = append(s.entries, spoolEntry{
		pos: s.size, n: uint32(len(line) + 1), acct: idx, offset: offset,
		ts: ts.UnixNano(), idHash: maphash.String(s.seed, id),
	})
	s.size += int64(len(line) + 1)
	return nil
}

// Bytes is the spooled size.
func (s *Spool) Bytes() int64 { return s.size }

// Len is the number of spooled events.
func (s *Spool) Len() int { return len(s.entries) }

// Close releases the spool file.
func (s *Spool) Close() error { return s.f.Close() }

// AccountBatch is one account's share of a cut group.
type AccountBatch struct {
	Account string
	entries []int32 // indexes into the spool's entries, in offset order
}

// Partition splits the spool by account, accounts in sorted order (so work
// on a re-run happens in the same order), events in offset order.
func (s *Spool) Partition() ([]AccountBatch, error) {
	if err := s.w.Flush(); err != nil {
		return nil, fmt.Errorf("flush spool: %w", err)
	}
	counts := make([]int32, len(s.accounts))
	for i := range s.entries {
		counts[s.entries[i].acct]++
	}
	batches := make([]AccountBatch, len(s.accounts))
	for i, a := range s.accounts {
		batches[i] = AccountBatch{Account: a, entries: make([]int32, 0, counts[i])}
	}
	for i := range s.entries {
		a := s.entries[i].acct
		batches[a].entries = append(batches[a].entries, int32(i))
	}
	slices.SortFunc(batches, func(a, b AccountBatch) int {
		switch {
		case a.Account < b.Account:
			return -1
		case a.Account > b.Account:
			return 1
		}
		return 0
	})
	return batches, nil
}

// ObjectStats describes a built object.
type ObjectStats struct {
	SHA256      [32]byte
	Size        int64
	Records     int64
	Duplicates  int64
	FirstOffset int64
	LastOffset  int64
	FirstEvent  time.Time // earliest event time in the object
	LastEvent   time.Time // latest event time in the object
	// Filtered counts events the target's policy excluded.
	Filtered int64
}

// LineTransform rewrites one stored line (without its newline) for one
// target, appending the result to buf: a storage profile's filter and
// redaction (PolicyLine). keep false leaves the event out.
type LineTransform func(line, buf []byte) (out []byte, keep bool, err error)

// Build writes the batch's object, gzip-compressed JSON lines in offset
// order with events whose id was seen before in the batch left out, to dst,
// and returns its stats. The bytes depend only on the events, so a re-run
// builds the same object.
func (s *Spool) Build(b AccountBatch, dst io.Writer) (ObjectStats, error) {
	return s.BuildWith(b, dst, nil)
}

// BuildWith is Build with each event rewritten by transform (nil for none)
// after duplicates are left out; the bytes still depend only on the events
// and transform, so a re-run builds the same object.
func (s *Spool) BuildWith(b AccountBatch, dst io.Writer, transform LineTransform) (ObjectStats, error) {
	h := sha256.New()
	cw := &countingWriter{w: io.MultiWriter(dst, h)}
	zw, err := gzip.NewWriterLevel(cw, gzip.BestSpeed)
	if err != nil {
		return ObjectStats{}, err
	}
	st := ObjectStats{FirstOffset: -1, LastOffset: -1}
	seen := make(map[uint64]int32, len(b.entries))
	var buf, other, out []byte
	var minTS, maxTS int64
	for _, i := range b.entries {
		e := &s.entries[i]
		buf, err = s.read(e, buf)
		if err != nil {
			return ObjectStats{}, err
		}
		if j, dup := seen[e.idHash]; dup {
			// Equal hashes: compare the ids themselves before dropping.
			other, err = s.read(&s.entries[j], other)
			if err != nil {
				return ObjectStats{}, err
			}
			if eventID(buf) == eventID(other) {
				st.Duplicates++
				continue
			}
		} else {
			seen[e.idHash] = i
		}
		line := buf
		if transform != nil {
			var keep bool
			out, keep, err = transform(bytes.TrimSuffix(buf, []byte{'\n'}), out[:0])
			if err != nil {
				return ObjectStats{}, err
			}
			if !keep {
				st.Filtered++
				continue
			}
			line = append(out, '\n')
		}
		if _, err := zw.Write(line); err != nil {
			return ObjectStats{}, fmt.Errorf("compress object: %w", err)
		}
		if st.Records == 0 {
			st.FirstOffset, minTS, maxTS = e.offset, e.ts, e.ts
		}
		st.LastOffset = e.offset
		minTS, maxTS = min(minTS, e.ts), max(maxTS, e.ts)
		st.Records++
	}
	if err := zw.Close(); err != nil {
		return ObjectStats{}, fmt.Errorf("compress object: %w", err)
	}
	copy(st.SHA256[:], h.Sum(nil))
	st.Size = cw.n
	st.FirstEvent, st.LastEvent = time.Unix(0, minTS).UTC(), time.Unix(0, maxTS).UTC()
	return st, nil
}

func (s *Spool) read(e *spoolEntry, buf []byte) ([]byte, error) {
	buf = slices.Grow(buf[:0], int(e.n))[:e.n]
	if _, err := s.f.ReadAt(buf, e.pos); err != nil {
		return nil, fmt.Errorf("read spool at %d: %w", e.pos, err)
	}
	return buf, nil
}

func eventID(line []byte) string {
	var v struct {
		ID string `json:"id"`
	}
	_ = json.NewDecoder(bytes.NewReader(line)).Decode(&v)
	return v.ID
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Each calls fn with every event of the batch, in offset order (duplicates
// included), for handing a batch elsewhere when it cannot be archived.
func (s *Spool) Each(b AccountBatch, fn func(offset int64, line []byte) error) error {
	var buf []byte
	var err error
	for _, i := range b.entries {
		e := &s.entries[i]
		if buf, err = s.read(e, buf); err != nil {
			return err
		}
		if err := fn(e.offset, bytes.TrimSuffix(buf, []byte{'\n'})); err != nil {
			return err
		}
	}
	return nil
}

// Len is the number of the batch's events.
func (b AccountBatch) Len() int { return len(b.entries) }
