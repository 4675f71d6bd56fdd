package upload

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"sync/atomic"
	"testing"

	"github.com/auditstream/auditstream/services/internal/objstore"
)

func TestParts(t *testing.T) {
	cases := []struct {
		size, partSize int64
		maxParts       int
		wantParts      int
		wantFirst      int64
		wantLast       int64
	}{
		{0, 5, 10, 0, 0, 0},
		{5, 5, 10, 1, 5, 5},
		{11, 5, 10, 3, 5, 1},
		// more than maxParts: parts grow to whole MiB
		{100 << 20, 1 << 20, 10, 10, 10 << 20, 10 << 20},
		{100<<20 + 1, 1 << 20, 10, 10, 11 << 20, 100<<20 + 1 - 9*(11<<20)},
	}
	for _, c := range cases {
		parts := Parts(c.size, c.partSize, c.maxParts)
		if len(parts) != c.wantParts {
			t.Errorf("%+v: %d parts", c, len(parts))
			continue
		}
		var total int64
		for i, p := range parts {
			if p.Number != i+1 || p.Offset != total {
				t.Errorf("%+v: part %d is %+v", c, i, p)
			}
			total += p.Size
		}
		if total != c.size {
			t.Errorf("%+v: parts cover %d bytes", c, total)
		}
		if len(parts) > 0 && (parts[0].Size != c.wantFirst || parts[len(parts)-1].Size != c.wantLast) {
			t.Errorf("%+v: first %d last %d", c, parts[0].Size, parts[len(parts)-1].Size)
		}
	}
}

func TestDigest(t *testing.T) {
	body := bytes.Repeat([]byte("audit "), 400_000)
	sum := sha256.Sum256(body)
	got, err := Digest(t.Context(), bytes.NewReader(body), int64(len(body)), sum[:])
	if err != nil || !bytes.Equal(got.SHA256, sum[:]) || got.CRC32C == 0 {
		t.Fatalf("%x %v", got.SHA256, err)
	}
	if _, err := Digest(t.Context(), bytes.NewReader(body), int64(len(body)), make([]byte, 32)); !errors.Is(err, objstore.ErrChecksumMismatch) {
		t.Fatalf("wrong sum: %v", err)
	}
	if _, err := Digest(t.Context(), bytes.NewReader(body[:10]), int64(len(body)), nil); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short body: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Digest(ctx, bytes.NewReader(body), int64(len(body)), nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

// Each stops starting parts after the first failure and reports it.
func TestEach(t *testing.T) {
	parts := Parts(100, 1, 1000)
	var ran atomic.Int64
	boom := errors.New("boom")
	err := Each(t.Context(), parts, 2, func(ctx context.Context, p Part) error {
		ran.Add(1)
		if p.Number == 2 {
			return boom
		}
		<-ctx.Done()
		return ctx.Err()
	})
	if !errors.Is(err, boom) || ran.Load() > 5 {
		t.Fatalf("err %v after %d parts", err, ran.Load())
	}
	if err := Each(t.Context(), parts, 4, func(context.Context, Part) error { return nil }); err != nil {
		t.Fatal(err)
	}
}
