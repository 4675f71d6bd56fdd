package devstack

import (
	"bytes"
	"io"
	"sync"
)

// maxLine bounds the bytes a prefixWriter holds for one unfinished line; a
// longer line is written out in pieces of this size.
const maxLine = 64 << 10

// syncWriter serialises writes from several children to one output so their
// lines never interleave mid-line.
type syncWriter struct {
	mu  sync.Mutex
	out io.Writer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.out.Write(p)
}

// prefixWriter writes each line it is given to out with prefix in front.
// A partial line waits for its end (or Flush). Writes come from one
// goroutine at a time (os/exec copies each pipe from one goroutine).
type prefixWriter struct {
	out    io.Writer
	prefix []byte
	buf    []byte // prefix + the unfinished line
}

func newPrefixWriter(out io.Writer, prefix string) *prefixWriter {
	return &prefixWriter{out: out, prefix: []byte(prefix), buf: []byte(prefix)}
}

func (w *prefixWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			room := len(w.prefix) + maxLine - len(w.buf)
			if len(p) < room {
				w.buf = append(w.buf, p...)
				return n, nil
			}
			w.buf = append(w.buf, p[:room]...)
			p = p[room:]
			if err := w.emit(); err != nil {
				return n - len(p), err
			}
			continue
		}
		w.buf = append(w.buf, p[:i]...)
		p = p[i+1:]
		if err := w.emit(); err != nil {
			return n - len(p), err
		}
	}
	return n, nil
}

// Flush writes out a last line that had no newline.
func (w *prefixWriter) Flush() error {
	if len(w.buf) == len(w.prefix) {
		return nil
	}
	return w.emit()
}

func (w *prefixWriter) emit() error {
	w.buf = append(w.buf, '\n')
	_, err := w.out.Write(w.buf)
	w.buf = w.buf[:len(w.prefix)]
	return err
}
