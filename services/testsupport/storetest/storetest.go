// Package storetest is the conformance suite every objstore.Store passes:
// conditional create (sequential and racing, small and multipart bodies),
// reads, listing order and paging, cancelled and failed uploads, hostile
// keys, and secrets kept out of descriptions and errors.
package storetest

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/internal/objstore"
)

// DefaultLargeSize is the size of the suite's large bodies unless
// Suite.LargeSize says otherwise: more than twice S3's 5 MiB minimum part
// size and a multiple of no part or chunk size, so a store configured with
// 5 MiB parts (or 4 MiB blocks, or 1 MiB chunks) sends three or more
// parts, the last one short.
const DefaultLargeSize = 11<<20 + 4321

// Suite is the conformance suite with its options.
type Suite struct {
	// NewStore returns an empty store, a new one for each call; calls may
	// come from parallel tests.
	NewStore func(t *testing.T) objstore.Store
	// LargeSize is the size of a body the store uploads in parts
	// (DefaultLargeSize when 0). Configure the store so that it does, and
	// check afterwards that parts were sent, or the multipart cases prove
	// nothing.
	LargeSize int64
	// Secrets are the credentials the stores were given; none may appear in
	// Describe or in an error.
	Secrets []string
}

// Run runs the suite against the stores newStore makes.
func Run(t *testing.T, newStore func(t *testing.T) objstore.Store) {
	Suite{NewStore: newStore}.Run(t)
}

// Run runs every case as a parallel subtest of one group, so counters a
// caller keeps about its store are complete when Run returns.
func (s Suite) Run(t *testing.T) {
	if s.LargeSize == 0 {
		s.LargeSize = DefaultLargeSize
	}
	cases := []struct {
		name string
		run  func(t *testing.T, st objstore.Store)
	}{
		{"create then open", s.createThenOpen},
		{"second create refused", s.secondCreate},
		{"large body in parts", s.largeBody},
		{"concurrent creates", s.concurrentCreates},
		{"missing", s.missing},
		{"list", s.list},
		{"cancel mid-upload", s.cancelMidUpload},
		{"bad body", s.badBody},
		{"keys with spaces and unicode", s.unicodeKeys},
		{"invalid keys", s.invalidKeys},
		{"describe", s.describe},
	}
	t.Run("conformance", func(t *testing.T) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				st := s.NewStore(t)
				t.Cleanup(func() {
					if err := st.Close(); err != nil {
						t.Errorf("close: %v", err)
					}
				})
				c.run(t, st)
			})
		}
	})
}

// Body is a test body: its bytes and the options it is created with.
type Body struct {
	Data []byte
	Opts objstore.CreateOptions
}

// NewBody returns n pseudo-random bytes (from seed) with their SHA-256.
func NewBody(n int64, seed uint64) Body {
	data := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	return newBody(data, "application/octet-stream", "")
}

func newBody(data []byte, contentType, encoding string) Body {
	sum := sha256.Sum256(data)
	return Body{Data: data, Opts: objstore.CreateOptions{ContentType: contentType, ContentEncoding: encoding, SHA256: sum[:]}}
}

// Create creates b under key.
func Create(ctx context.Context, st objstore.Store, key string, b Body) (objstore.Info, error) {
	return st.Create(ctx, key, bytes.NewReader(b.Data), int64(len(b.Data)), b.Opts)
}

// MustCreate creates b under key or fails the test.
func MustCreate(t *testing.T, st objstore.Store, key string, b Body) objstore.Info {
	t.Helper()
	info, err := Create(t.Context(), st, key, b)
	if err != nil {
		t.Fatalf("create %s: %v", key, err)
	}
	if info.Key != key || info.Size != int64(len(b.Data)) || info.Version == "" {
		t.Fatalf("create %s: info %+v, want key %s size %d and a version", key, info, key, len(b.Data))
	}
	return info
}

// Expect checks that key holds want, with version when it is not empty,
// through Open and Stat.
func Expect(t *testing.T, st objstore.Store, key string, want []byte, version string) {
	t.Helper()
	rc, info, err := st.Open(t.Context(), key)
	if err != nil {
		t.Fatalf("open %s: %v", key, err)
	}
	got, err := io.ReadAll(rc)
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s holds %d bytes %s, want %d bytes %s", key, len(got), digest(got), len(want), digest(want))
	}
	if info.Key != key || info.Size != int64(len(want)) || (version != "" && info.Version != version) {
		t.Errorf("open %s: info %+v, want size %d version %q", key, info, len(want), version)
	}
	st2, err := st.Stat(t.Context(), key)
	if err != nil {
		t.Fatalf("stat %s: %v", key, err)
	}
	if st2.Key != key || st2.Size != int64(len(want)) || st2.Version != info.Version {
		t.Errorf("stat %s: %+v, open gave %+v", key, st2, info)
	}
}

// ExpectMissing checks that nothing is stored under key.
func ExpectMissing(t *testing.T, st objstore.Store, key string) {
	t.Helper()
	if info, err := st.Stat(t.Context(), key); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("stat %s: %+v, %v; want ErrNotFound", key, info, err)
	}
	rc, _, err := st.Open(t.Context(), key)
	if err == nil {
		rc.Close()
	}
	if !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("open %s: %v; want ErrNotFound", key, err)
	}
}

// Keys lists the keys under prefix, failing the test on an error.
func Keys(t *testing.T, st objstore.Store, prefix string) []string {
	t.Helper()
	var keys []string
	for info, err := range st.List(t.Context(), prefix) {
		if err != nil {
			t.Fatalf("list %q: %v", prefix, err)
		}
		keys = append(keys, info.Key)
	}
	return keys
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return fmt.Sprintf("sha256:%x", sum[:6])
}

func gzipped(t *testing.T, text string) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := io.WriteString(zw, text); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func (s Suite) createThenOpen(t *testing.T, st objstore.Store) {
	cases := []struct {
		key  string
		body Body
	}{
		// Stored as sent: no store may gunzip on the way out.
		{"2026/01/02/acc-1/events-0-99.json.gz", newBody(gzipped(t, strings.Repeat(`{"id":"ev-1","action":"create"}`+"\n", 200)), "application/x-ndjson", "gzip")},
		{"2026/01/02/acc-1/manifest.json", newBody([]byte(`{"objects":1}`), "application/json", "")},
		{"empty", newBody(nil, "application/json", "")},
		{"no-checksum", Body{Data: []byte("no sha256 given")}},
		{"random", NewBody(300<<10+7, 1)},
	}
	for _, c := range cases {
		info := MustCreate(t, st, c.key, c.body)
		Expect(t, st, c.key, c.body.Data, info.Version)
	}
}

func (s Suite) secondCreate(t *testing.T, st objstore.Store) {
	const key = "day/objects-1.json"
	first := NewBody(1000, 2)
	info := MustCreate(t, st, key, first)
	for _, again := range []struct {
		name string
		body Body
	}{
		{"same bytes", first},
		{"different bytes", NewBody(1000, 3)},
		{"different size", NewBody(77, 4)},
		{"empty", newBody(nil, "", "")},
		{"large", NewBody(s.LargeSize, 5)},
	} {
		got, err := Create(t.Context(), st, key, again.body)
		if !errors.Is(err, objstore.ErrExists) {
			t.Fatalf("%s: second create gave %+v, %v; want ErrExists", again.name, got, err)
		}
		if !strings.Contains(err.Error(), key) {
			t.Errorf("%s: error %q does not name the key", again.name, err)
		}
		Expect(t, st, key, first.Data, info.Version)
	}
}

func (s Suite) largeBody(t *testing.T, st objstore.Store) {
	const key = "large/body.json.gz"
	b := NewBody(s.LargeSize, 6)
	info := MustCreate(t, st, key, b)
	Expect(t, st, key, b.Data, info.Version)
	for _, again := range []Body{NewBody(s.LargeSize, 7), b, NewBody(10, 8)} {
		if _, err := Create(t.Context(), st, key, again); !errors.Is(err, objstore.ErrExists) {
			t.Fatalf("second create of a large object: %v; want ErrExists", err)
		}
	}
	Expect(t, st, key, b.Data, info.Version)

	// without a checksum too
	noSum := NewBody(s.LargeSize, 9)
	noSum.Opts.SHA256 = nil
	info = MustCreate(t, st, "large/no-checksum", noSum)
	Expect(t, st, "large/no-checksum", noSum.Data, info.Version)
}

func (s Suite) concurrentCreates(t *testing.T, st objstore.Store) {
	for _, c := range []struct {
		name    string
		writers int
		size    int64
	}{
		{"small", 8, 4 << 10},
		{"large", 3, s.LargeSize},
	} {
		t.Run(c.name, func(t *testing.T) {
			key := "race/" + c.name
			bodies := make([]Body, c.writers)
			for i := range bodies {
				bodies[i] = NewBody(c.size, uint64(100+i))
			}
			var (
				wg    sync.WaitGroup
				start = make(chan struct{})
				errs  = make([]error, c.writers)
				infos = make([]objstore.Info, c.writers)
			)
			for i := range c.writers {
				wg.Go(func() {
					<-start
					infos[i], errs[i] = Create(t.Context(), st, key, bodies[i])
				})
			}
			close(start)
			wg.Wait()
			winner := -1
			for i, err := range errs {
				switch {
				case err == nil && winner >= 0:
					t.Fatalf("writers %d and %d both created %s", winner, i, key)
				case err == nil:
					winner = i
				case !errors.Is(err, objstore.ErrExists):
					t.Fatalf("writer %d: %v; want success or ErrExists", i, err)
				}
			}
			if winner < 0 {
				t.Fatalf("no writer created %s", key)
			}
			Expect(t, st, key, bodies[winner].Data, infos[winner].Version)
		})
	}
}

func (s Suite) missing(t *testing.T, st objstore.Store) {
	MustCreate(t, st, "present/a", NewBody(10, 10))
	for _, key := range []string{"absent", "present/b", "present/a/below", "present", "Present/a"} {
		ExpectMissing(t, st, key)
	}
	if keys := Keys(t, st, "absent"); len(keys) != 0 {
		t.Errorf("list absent: %q", keys)
	}
}

func (s Suite) list(t *testing.T, st objstore.Store) {
	// More objects than the page sizes the backends' tests set, sorted
	// around "/" (0x2f): "-" and "." sort before it, letters after.
	var under []string
	for i := range 13 {
		under = append(under, fmt.Sprintf("list/%02d.json", i))
	}
	under = append(under, "list/sub/a", "list/sub/b/c", "list/sub-x", "list/sub.y", "list/z")
	others := []string{"list-x", "list.y", "lista", "other/list/q", "a", "li"}
	all := append(slices.Clone(under), others...)
	// Created in an order that is not the listing order.
	order := slices.Clone(all)
	rand.New(rand.NewPCG(11, 12)).Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	sizes := map[string]int64{}
	for i, key := range order {
		b := NewBody(int64(i+1), uint64(i))
		MustCreate(t, st, key, b)
		sizes[key] = int64(i + 1)
	}
	sorted := func(keys []string, prefix string) []string {
		var out []string
		for _, k := range keys {
			if strings.HasPrefix(k, prefix) {
				out = append(out, k)
			}
		}
		slices.Sort(out)
		return out
	}
	for _, prefix := range []string{"list/", "list", "list/sub", "list/sub/", "list/0", "", "other/", "nothing/", "lis"} {
		got := Keys(t, st, prefix)
		if want := sorted(all, prefix); !slices.Equal(got, want) {
			t.Errorf("list %q:\n got %q\nwant %q", prefix, got, want)
		}
	}
	// Listed infos carry the size and a version.
	for info, err := range st.List(t.Context(), "list/sub") {
		if err != nil {
			t.Fatal(err)
		}
		if info.Size != sizes[info.Key] || info.Version == "" {
			t.Errorf("listed %+v, want size %d and a version", info, sizes[info.Key])
		}
	}
	// Stopping early is allowed.
	n := 0
	for _, err := range st.List(t.Context(), "") {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 3 {
			break
		}
	}
	// A cancelled context ends the listing with an error.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var lastErr error
	for _, err := range st.List(ctx, "list/") {
		lastErr = err
	}
	if lastErr == nil {
		t.Error("list with a cancelled context yielded no error")
	}
}

// blockingReader serves a body and, once more than after bytes have been
// read in all, blocks the read until ctx ends and fails it: an upload
// cancelled at that point of its work.
type blockingReader struct {
	data    []byte
	after   int64
	read    atomic.Int64
	ctx     context.Context
	blocked chan struct{}
	once    sync.Once
}

func (r *blockingReader) ReadAt(p []byte, off int64) (int, error) {
	if n := r.read.Add(int64(len(p))); r.after >= 0 && n > r.after {
		r.once.Do(func() { close(r.blocked) })
		<-r.ctx.Done()
		return 0, r.ctx.Err()
	}
	if off >= int64(len(r.data)) {
		return 0, io.EOF
	}
	n := copy(p, r.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (s Suite) cancelMidUpload(t *testing.T, st objstore.Store) {
	for _, size := range []int64{300 << 10, s.LargeSize} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			b := NewBody(size, 20)
			// How many bytes a create reads, to cancel it at several
			// points of its work: checksums, signing, the transfer.
			probeKey := fmt.Sprintf("probe-%d", size)
			probe := &blockingReader{data: b.Data, after: -1}
			info, err := st.Create(t.Context(), probeKey, probe, size, b.Opts)
			if err != nil {
				t.Fatal(err)
			}
			Expect(t, st, probeKey, b.Data, info.Version)
			total := probe.read.Load()
			for _, frac := range []float64{0.25, 0.5, 0.75, 1} {
				key := fmt.Sprintf("cancelled-%d-%v", size, frac)
				ctx, cancel := context.WithCancel(t.Context())
				r := &blockingReader{data: b.Data, after: int64(float64(total)*frac) - 1, ctx: ctx, blocked: make(chan struct{})}
				done := make(chan error, 1)
				go func() {
					_, err := st.Create(ctx, key, r, size, b.Opts)
					done <- err
				}()
				select {
				case <-r.blocked:
					cancel()
				case err := <-done:
					cancel()
					t.Fatalf("%s: create ended before reading %d of %d bytes: %v", key, r.after+1, total, err)
				case <-time.After(30 * time.Second):
					cancel()
					t.Fatalf("%s: create neither read its body nor ended", key)
				}
				select {
				case err := <-done:
					if err == nil || errors.Is(err, objstore.ErrExists) {
						t.Fatalf("%s: cancelled create: %v", key, err)
					}
				case <-time.After(30 * time.Second):
					t.Fatalf("%s: cancelled create did not end", key)
				}
				ExpectMissing(t, st, key)
				// and nothing half-made stands in the way of a later create
				info := MustCreate(t, st, key, b)
				Expect(t, st, key, b.Data, info.Version)
			}
		})
	}
}

// shortReader ends early: a body that lies about its size.
type shortReader struct{ data []byte }

func (r shortReader) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(r.data)) {
		return 0, io.EOF
	}
	n := copy(p, r.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (s Suite) badBody(t *testing.T, st objstore.Store) {
	for _, size := range []int64{1000, s.LargeSize} {
		b := NewBody(size, 30)
		wrong := b
		wrong.Opts.SHA256 = bytes.Repeat([]byte{0xab}, sha256.Size)
		key := fmt.Sprintf("mismatch-%d", size)
		if _, err := Create(t.Context(), st, key, wrong); !errors.Is(err, objstore.ErrChecksumMismatch) {
			t.Fatalf("create with a wrong sha256: %v; want ErrChecksumMismatch", err)
		}
		ExpectMissing(t, st, key)

		key = fmt.Sprintf("short-%d", size)
		if _, err := st.Create(t.Context(), key, shortReader{b.Data[:size/2]}, size, b.Opts); err == nil {
			t.Fatal("create with a body shorter than its size succeeded")
		}
		ExpectMissing(t, st, key)
		noSum := b
		noSum.Opts.SHA256 = nil
		if _, err := st.Create(t.Context(), key, shortReader{b.Data[:size/2]}, size, noSum.Opts); err == nil {
			t.Fatal("create with a body shorter than its size and no checksum succeeded")
		}
		ExpectMissing(t, st, key)
		info := MustCreate(t, st, key, b)
		Expect(t, st, key, b.Data, info.Version)
	}
	if _, err := st.Create(t.Context(), "bad-option", bytes.NewReader(nil), 0, objstore.CreateOptions{SHA256: []byte{1, 2}}); err == nil {
		t.Fatal("create with a 2-byte sha256 succeeded")
	}
	ExpectMissing(t, st, "bad-option")
}

func (s Suite) unicodeKeys(t *testing.T, st objstore.Store) {
	keys := []string{
		"with space/and more spaces .json",
		"ümlaut/Straße/файл 1.json.gz",
		"emoji/🙂/日本語.txt",
		"symbols/a+b=c&d?e#f%20g;h,i@j:k~l!m$n'o(p)q*r",
		"xml/<tag attr=\"v\">&amp;</tag>",
		"trailing space /x",
		" leading space",
	}
	for i, key := range keys {
		b := NewBody(int64(50+i), uint64(40+i))
		info := MustCreate(t, st, key, b)
		Expect(t, st, key, b.Data, info.Version)
		if _, err := Create(t.Context(), st, key, b); !errors.Is(err, objstore.ErrExists) {
			t.Errorf("second create of %q: %v", key, err)
		}
	}
	want := slices.Sorted(slices.Values(keys))
	if got := Keys(t, st, ""); !slices.Equal(got, want) {
		t.Errorf("list:\n got %q\nwant %q", got, want)
	}
	if got := Keys(t, st, "ümlaut/Straße/"); !slices.Equal(got, []string{keys[1]}) {
		t.Errorf("list by a unicode prefix: %q", got)
	}
}

func (s Suite) invalidKeys(t *testing.T, st objstore.Store) {
	MustCreate(t, st, "inside/a", NewBody(5, 50))
	bad := []string{
		"", "/abs", "../up", "inside/../../up", "a/../b", "a//b", "a/./b", ".", "..", "dir/",
		`back\slash`, "nul\x00byte", "new\nline", "\xff\xfe", strings.Repeat("k", objstore.MaxKeyBytes+1),
	}
	b := NewBody(5, 51)
	for _, key := range bad {
		if _, err := Create(t.Context(), st, key, b); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("create %q: %v; want ErrInvalidKey", key, err)
		}
		if _, err := st.Stat(t.Context(), key); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("stat %q: %v; want ErrInvalidKey", key, err)
		}
		if rc, _, err := st.Open(t.Context(), key); !errors.Is(err, objstore.ErrInvalidKey) {
			if err == nil {
				rc.Close()
			}
			t.Errorf("open %q: %v; want ErrInvalidKey", key, err)
		}
	}
	for _, prefix := range []string{"/abs", "../", "a//", "a/../", "nul\x00"} {
		var errs []error
		for _, err := range st.List(t.Context(), prefix) {
			errs = append(errs, err)
		}
		if len(errs) != 1 || !errors.Is(errs[0], objstore.ErrInvalidKey) {
			t.Errorf("list %q: %v; want one ErrInvalidKey", prefix, errs)
		}
	}
	if got := Keys(t, st, ""); !slices.Equal(got, []string{"inside/a"}) {
		t.Errorf("after hostile keys the store holds %q", got)
	}
}

func (s Suite) describe(t *testing.T, st objstore.Store) {
	d := st.Describe()
	if d == "" || !strings.Contains(d, "://") {
		t.Errorf("describe %q: want a URL-like name", d)
	}
	MustCreate(t, st, "x", NewBody(1, 60))
	_, errExists := Create(t.Context(), st, "x", NewBody(1, 61))
	_, errMissing := st.Stat(t.Context(), "y")
	_, errInvalid := st.Stat(t.Context(), "../y")
	for _, secret := range s.Secrets {
		for _, text := range []string{d, fmt.Sprint(st), fmt.Sprintf("%+v", st), fmt.Sprint(errExists), fmt.Sprint(errMissing), fmt.Sprint(errInvalid)} {
			if secret != "" && strings.Contains(text, secret) {
				t.Errorf("a secret appears in %q", text)
			}
		}
	}
}
