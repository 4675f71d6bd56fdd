package check

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

type scanResult struct {
	bytes     int64
	rawTokens int
	secrets   int
}

// Scan counts raw tokens and secrets in data, under name (a topic, a log
// file): the sums of every call with the same name are reported.
func (c *Checker) Scan(name string, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.scanLocked(name, data)
}

func (c *Checker) scanLocked(name string, data []byte) {
	s := c.scans[name]
	if s == nil {
		s = &scanResult{}
		c.scans[name] = s
	}
	s.bytes += int64(len(data))
	if n := bytes.Count(data, []byte(RawTokenMarker)); n > 0 {
		s.rawTokens += n
		c.problem("%s: a raw access token: %.200s", name, around(data, []byte(RawTokenMarker)))
	}
	for _, sec := range c.secrets {
		if n := bytes.Count(data, []byte(sec)); n > 0 {
			s.secrets += n
			c.problem("%s: a connection secret in plain text", name)
		}
	}
}

// ScanFile scans a file in chunks that overlap by the longest needle, so a
// match across a chunk boundary is counted once.
func (c *Checker) ScanFile(name, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("scan %s: %w", path, err)
	}
	defer f.Close()
	c.mu.Lock()
	overlap := len(RawTokenMarker)
	for _, s := range c.secrets {
		overlap = max(overlap, len(s))
	}
	c.mu.Unlock()
	overlap--
	buf := make([]byte, 1<<20+overlap)
	keep := 0
	var total int64
	for {
		n, err := io.ReadFull(f, buf[keep:])
		if n > 0 {
			chunk := buf[:keep+n]
			c.mu.Lock()
			// A match wholly inside the kept overlap was counted with the
			// previous chunk: count the chunk, then take the overlap's own
			// matches back.
			c.scanLocked(name, chunk)
			if keep > 0 {
				c.unscanLocked(name, chunk[:keep])
			}
			c.mu.Unlock()
			total += int64(n)
			k := min(overlap, len(chunk))
			copy(buf, chunk[len(chunk)-k:])
			keep = k
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("scan %s: %w", path, err)
		}
	}
	return nil
}

// unscanLocked takes back the counts of data scanned twice (the overlap).
func (c *Checker) unscanLocked(name string, data []byte) {
	s := c.scans[name]
	s.bytes -= int64(len(data))
	s.rawTokens -= bytes.Count(data, []byte(RawTokenMarker))
	for _, sec := range c.secrets {
		s.secrets -= bytes.Count(data, []byte(sec))
	}
}

// around returns the bytes near the first match of needle, for a report.
func around(data, needle []byte) []byte {
	i := bytes.Index(data, needle)
	if i < 0 {
		return nil
	}
	lo, hi := max(0, i-80), min(len(data), i+80)
	return data[lo:hi]
}
