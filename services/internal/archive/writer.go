package archive

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/auditstream/auditstream/services/internal/eventfilter"
	"github.com/auditstream/auditstream/services/internal/objstore"
)

// ErrConflict marks an object that already existed with different bytes.
// The archive never replaces it; its own copy goes to a conflict key.
var ErrConflict = errors.New("object exists with different content")

// Target is one named store an account archives to.
type Target struct {
	Name  string // the destinations connection
	Store objstore.Store
	// Policy is the storage profile's filter and redaction, nil for none
	// (the archive is then complete). Its objects are built with it applied
	// and their manifests record it.
	Policy *eventfilter.Policy
	// PolicyErr is why the profile's policy could not be built: nothing is
	// written to it until it can.
	PolicyErr error
}

// Object is a built data object waiting on local disk.
type Object struct {
	Body  io.ReaderAt
	Stats ObjectStats
}

// PutResult says what Put did.
type PutResult struct {
	Key      string
	Existed  bool // an identical object was already stored (a re-run)
	Conflict bool // the expected key held different bytes; see Key
	Manifest string
	// ManifestExisted is set when the group's manifest was already in the
	// chain (a re-run after the manifest was written).
	ManifestExisted bool
}

// Writer creates data objects and appends their manifests to each
// account's chain. It is safe for concurrent use across accounts; one
// account's chain must only be appended to by one goroutine at a time.
type Writer struct {
	signer *Signer
	mu     sync.Mutex
	heads  map[headKey]chainHead
}

type headKey struct{ target, account string }

type chainHead struct {
	seq uint64
	key string
	sum string
}

// maxCachedHeads bounds the chain-head cache; past it the cache starts over
// and heads are listed again.
const maxCachedHeads = 100_000

// NewWriter returns a Writer that signs manifests with signer (nil leaves
// them unsigned).
func NewWriter(signer *Signer) *Writer {
	return &Writer{signer: signer, heads: map[headKey]chainHead{}}
}

// Put stores an account's object of group g in t and records it in the
// account's manifest chain. It is idempotent: a re-run with the same bytes
// finds the object and manifest in place and changes nothing.
func (w *Writer) Put(ctx context.Context, t Target, account string, g Group, late bool, obj Object) (PutResult, error) {
	sum := hex.EncodeToString(obj.Stats.SHA256[:])
	res := PutResult{Key: ObjectKey(account, g)}
	opts := objectOptions(obj)
	existed, err := createOrCompare(ctx, t.Store, res.Key, obj.Body, obj.Stats.Size, sum, opts)
	switch {
	case errors.Is(err, ErrConflict):
		res.Conflict = true
		conflictErr := err
		res.Key = ConflictKey(account, g, sum)
		existed, err = createOrCompare(ctx, t.Store, res.Key, obj.Body, obj.Stats.Size, sum, opts)
		if err != nil {
			return res, errors.Join(conflictErr, err)
		}
		res.Existed = existed
	case err != nil:
		return res, err
	default:
		res.Existed = existed
	}

	hk := headKey{t.Name, account}
	w.mu.Lock()
	head, cached := w.heads[hk]
	w.mu.Unlock()
	if res.Existed || !cached {
		// A re-run, or the first write of this account here: the group may
		// already be in the chain, and the head must be read from the store.
		found, h, err := findInChain(ctx, t.Store, account, g)
		if err != nil {
			return res, err
		}
		if found != "" {
			res.Manifest, res.ManifestExisted = found, true
			w.setHead(hk, h)
			return res, nil
		}
		head = h
	}
	m := &Manifest{
		Account:     account,
		Sequence:    head.seq + 1,
		Window:      ManifestSpan{Start: g.Window.Start, End: g.Window.End()},
		Partition:   g.Partition,
		FirstOffset: g.First,
		LastOffset:  g.Last,
		Late:        late,
		Objects: []ManifestObject{{
			Key: res.Key, SHA256: sum, Size: obj.Stats.Size, Records: obj.Stats.Records,
			FirstOffset: obj.Stats.FirstOffset, LastOffset: obj.Stats.LastOffset,
			FirstEvent: obj.Stats.FirstEvent, LastEvent: obj.Stats.LastEvent, Conflict: res.Conflict,
		}},
	}
	if head.seq > 0 {
		m.Previous = &ManifestLink{Key: head.key, SHA256: head.sum}
	}
	if p := t.Policy; p != nil {
		m.Policy = &ManifestPolicy{Version: p.Version(), Filter: p.Filter(), Redact: p.Rules(), Filtered: obj.Stats.Filtered}
	}
	data, err := w.signer.Seal(m)
	if err != nil {
		return res, fmt.Errorf("seal manifest of %s: %w", res.Key, err)
	}
	mkey := ManifestKey(account, m.Sequence, g)
	msum := sha256.Sum256(data)
	if _, err := createOrCompare(ctx, t.Store, mkey, bytes.NewReader(data), int64(len(data)), hex.EncodeToString(msum[:]),
		objstore.CreateOptions{ContentType: "application/json", SHA256: msum[:]}); err != nil {
		// Another writer appended this sequence number (a zombie consumer):
		// forget the head so the next attempt reads it again.
		w.mu.Lock()
		delete(w.heads, hk)
		w.mu.Unlock()
		return res, fmt.Errorf("append manifest %s: %w", mkey, err)
	}
	res.Manifest = mkey
	w.setHead(hk, chainHead{seq: m.Sequence, key: mkey, sum: hex.EncodeToString(msum[:])})
	return res, nil
}

// Ensure makes sure key in s holds obj: it creates the object when none is
// stored there, and otherwise compares the stored bytes with obj's. An
// identical object is left as it is (existed is true); a different one is
// left as it is too and reported with an error wrapping ErrConflict. Unlike
// Put it writes nothing else: no conflict copy and no manifest. It is how a
// rebuild puts back objects its manifests already list.
func Ensure(ctx context.Context, s objstore.Store, key string, obj Object) (existed bool, err error) {
	return createOrCompare(ctx, s, key, obj.Body, obj.Stats.Size, hex.EncodeToString(obj.Stats.SHA256[:]), objectOptions(obj))
}

// objectOptions are a data object's create options.
func objectOptions(obj Object) objstore.CreateOptions {
	return objstore.CreateOptions{ContentType: "application/x-ndjson", ContentEncoding: "gzip", SHA256: obj.Stats.SHA256[:]}
}

func (w *Writer) setHead(k headKey, h chainHead) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.heads) >= maxCachedHeads {
		clear(w.heads)
	}
	w.heads[k] = h
}

// createOrCompare creates key, or, when it exists, compares the stored bytes
// with the ones about to be written: equal is a re-run (existed = true),
// different is ErrConflict.
func createOrCompare(ctx context.Context, s objstore.Store, key string, body io.ReaderAt, size int64, sum string, opts objstore.CreateOptions) (existed bool, err error) {
	_, err = s.Create(ctx, key, body, size, opts)
	if err == nil {
		return false, nil
	}
	if !errors.Is(err, objstore.ErrExists) {
		return false, fmt.Errorf("create %s in %s: %w", key, s.Describe(), err)
	}
	stored, _, err := HashObject(ctx, s, key)
	if err != nil {
		return false, fmt.Errorf("read existing %s in %s: %w", key, s.Describe(), err)
	}
	if stored != sum {
		return false, fmt.Errorf("%s in %s: stored sha256 %s, new %s: %w", key, s.Describe(), stored, sum, ErrConflict)
	}
	return true, nil
}

// HashObject returns the hex SHA-256 and size of a stored object.
func HashObject(ctx context.Context, s objstore.Store, key string) (string, int64, error) {
	rc, _, err := s.Open(ctx, key)
	if err != nil {
		return "", 0, err
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// findInChain lists an account's manifests: found is the key of the one for
// group g, if any; head is the chain's last manifest.
func findInChain(ctx context.Context, s objstore.Store, account string, g Group) (found string, head chainHead, err error) {
	suffix := "-" + g.Name() + ".json"
	var last string
	for info, err := range s.List(ctx, ManifestPrefix(account)) {
		if err != nil {
			return "", chainHead{}, fmt.Errorf("list manifests of %s in %s: %w", account, s.Describe(), err)
		}
		if _, ok := ParseManifestKey(info.Key); !ok {
			continue
		}
		if strings.HasSuffix(info.Key, suffix) {
			found = info.Key
		}
		last = info.Key
	}
	if last == "" {
		return found, chainHead{}, nil
	}
	ref, _ := ParseManifestKey(last)
	sum, _, err := HashObject(ctx, s, last)
	if err != nil {
		return "", chainHead{}, fmt.Errorf("read manifest %s in %s: %w", last, s.Describe(), err)
	}
	return found, chainHead{seq: ref.Sequence, key: last, sum: sum}, nil
}
