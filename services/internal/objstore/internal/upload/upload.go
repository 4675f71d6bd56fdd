// Package upload holds what the object-store backends share about bodies:
// checking one against its SHA-256 before it is sent, and cutting one into
// parts uploaded a few at a time.
package upload

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"golang.org/x/sync/errgroup"

	"github.com/auditstream/auditstream/services/internal/objstore"
)

// readChunk is how much of a body one read takes; the context is checked
// between reads.
const readChunk = 1 << 20

// castagnoli is the CRC32C table (GCS's checksum).
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Sums are a body's checksums.
type Sums struct {
	SHA256 []byte
	CRC32C uint32
}

// Digest reads size bytes of body once and returns their checksums. A body
// shorter than size is an error. When want is set and differs from the
// SHA-256, the error wraps objstore.ErrChecksumMismatch.
func Digest(ctx context.Context, body io.ReaderAt, size int64, want []byte) (Sums, error) {
	h := sha256.New()
	c := crc32.New(castagnoli)
	w := io.MultiWriter(h, c)
	buf := make([]byte, min(readChunk, max(size, 1)))
	for off := int64(0); off < size; {
		if err := ctx.Err(); err != nil {
			return Sums{}, err
		}
		n := min(int64(len(buf)), size-off)
		got, err := body.ReadAt(buf[:n], off)
		if int64(got) < n {
			if err == nil || errors.Is(err, io.EOF) {
				err = fmt.Errorf("body ends at %d bytes, before its size %d: %w", off+int64(got), size, io.ErrUnexpectedEOF)
			}
			return Sums{}, fmt.Errorf("read body: %w", err)
		}
		_, _ = w.Write(buf[:n])
		off += n
	}
	s := Sums{SHA256: h.Sum(nil), CRC32C: c.Sum32()}
	if err := Check(want, s.SHA256); err != nil {
		return Sums{}, err
	}
	return s, nil
}

// Check compares a body's SHA-256 with the one it was created with.
func Check(want, got []byte) error {
	if len(want) == 0 || bytes.Equal(want, got) {
		return nil
	}
	return fmt.Errorf("%w: sha256 is %s, want %s", objstore.ErrChecksumMismatch, hex.EncodeToString(got), hex.EncodeToString(want))
}

// CheckOptions checks the options every store accepts alike.
func CheckOptions(size int64, opts objstore.CreateOptions) error {
	if size < 0 {
		return fmt.Errorf("negative size %d", size)
	}
	if len(opts.SHA256) != 0 && len(opts.SHA256) != sha256.Size {
		return fmt.Errorf("SHA256 option has %d bytes, want %d", len(opts.SHA256), sha256.Size)
	}
	return nil
}

// Metadata is the object metadata every store keeps: "sha256" in hex when
// known.
func Metadata(opts objstore.CreateOptions) map[string]string {
	if len(opts.SHA256) == 0 {
		return nil
	}
	return map[string]string{"sha256": hex.EncodeToString(opts.SHA256)}
}

// Part is one part of a body.
type Part struct {
	Number int // from 1
	Offset int64
	Size   int64
}

// Parts cuts size bytes into parts of partSize, the last one shorter,
// growing the part size (in MiB steps) when more than maxParts would be
// needed.
func Parts(size, partSize int64, maxParts int) []Part {
	if size <= 0 {
		return nil
	}
	if need := (size + partSize - 1) / partSize; need > int64(maxParts) {
		partSize = (size + int64(maxParts) - 1) / int64(maxParts)
		partSize = (partSize + 1<<20 - 1) &^ (1<<20 - 1)
	}
	parts := make([]Part, 0, (size+partSize-1)/partSize)
	for off := int64(0); off < size; off += partSize {
		parts = append(parts, Part{Number: len(parts) + 1, Offset: off, Size: min(partSize, size-off)})
	}
	return parts
}

// Each runs fn for every part, at most concurrency at once, and returns the
// first error; the context given to fn ends with the first failure.
func Each(ctx context.Context, parts []Part, concurrency int, fn func(ctx context.Context, p Part) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(concurrency, 1))
	for _, p := range parts {
		if gctx.Err() != nil {
			break // a part failed: start no more
		}
		g.Go(func() error { return fn(gctx, p) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}
