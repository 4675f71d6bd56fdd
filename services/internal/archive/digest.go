package archive

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/auditstream/auditstream/services/internal/objstore"
)

// DigestFormat names the digest schema; a reader refuses others.
const DigestFormat = "auditstream.archive.digest/v1"

// Digest proves an account's UTC day complete: it lists every object of the
// day (from the account's manifests), the head of the manifest chain when it
// was written, the number of events, and links to the previous day's digest.
// A day without events has one too, so a quiet day and a lost day differ.
// Objects of a day that arrive after its digest are listed in addenda
// (Addendum 1, 2, ...), each linking to the day's digest before it. Digests
// are signed like manifests and never rewritten.
type Digest struct {
	Format   string `json:"format"`
	Account  string `json:"account"`
	Day      string `json:"day"` // YYYY-MM-DD
	Addendum int    `json:"addendum"`
	// Previous is the previous day's digest for a day's digest (nil for the
	// first of the chain), the day's previous digest for an addendum.
	Previous *ManifestLink `json:"previous"`
	// Start marks the first digest of the account's chain: days before it
	// are not covered.
	Start bool `json:"start,omitempty"`
	// Final marks the last digest of a chain: archiving was turned off for
	// the account (its route to this store removed). Days after it are not
	// covered, until a digest with Start begins a new chain, linking to it.
	Final bool `json:"final,omitempty"`
	// Empty says the digest lists no object: no event of the account that
	// day (or, for an addendum, none that arrived late).
	Empty  bool  `json:"empty"`
	Events int64 `json:"events"`
	// ManifestHead is the last manifest of the account's chain when the
	// digest was written; nil when the chain was empty.
	ManifestHead *DigestHead    `json:"manifest_head"`
	Objects      []DigestObject `json:"objects"`
	KeyID        string         `json:"key_id,omitempty"`
	Signature    string         `json:"signature,omitempty"`
}

// DigestHead names a manifest of the chain.
type DigestHead struct {
	Sequence uint64 `json:"sequence"`
	Key      string `json:"key"`
	SHA256   string `json:"sha256"`
}

// DigestObject is one object of the day, as its manifest lists it.
type DigestObject struct {
	Manifest string `json:"manifest"`
	ManifestObject
}

const dayFormat = "2006-01-02"

// DayTime is the digest's day as a time.
func (d *Digest) DayTime() (time.Time, error) { return time.Parse(dayFormat, d.Day) }

// DigestPrefix is the folder of an account's digests.
func DigestPrefix(account string) string { return account + "/_digests/" }

// DigestKey is where an account's digest of day (addendum 0) or its n-th
// addendum is stored: <account>/_digests/YYYY/MM/DD[.n].json.
func DigestKey(account string, day time.Time, addendum int) string {
	k := DigestPrefix(account) + day.UTC().Format("2006/01/02")
	if addendum > 0 {
		k += "." + strconv.Itoa(addendum)
	}
	return k + ".json"
}

var digestRE = regexp.MustCompile(`^([^/]+)/_digests/(\d{4})/(\d{2})/(\d{2})(?:\.([1-9]\d{0,8}))?\.json$`)

// DigestRef is what a digest's key says about it.
type DigestRef struct {
	Account  string
	Day      time.Time
	Addendum int
}

// ParseDigestKey reads a digest's key.
func ParseDigestKey(key string) (DigestRef, bool) {
	m := digestRE.FindStringSubmatch(key)
	if m == nil {
		return DigestRef{}, false
	}
	day, err := time.Parse(dayFormat, m[2]+"-"+m[3]+"-"+m[4])
	if err != nil {
		return DigestRef{}, false
	}
	n := 0
	if m[5] != "" {
		n, _ = strconv.Atoi(m[5])
	}
	return DigestRef{Account: m[1], Day: day, Addendum: n}, true
}

func (d *Digest) canonical() ([]byte, error) {
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// SealDigest signs d (when s is not nil) and returns its stored bytes.
func (s *Signer) SealDigest(d *Digest) ([]byte, error) {
	d.Format = DigestFormat
	d.KeyID, d.Signature = "", ""
	if s != nil {
		d.KeyID = s.keyID
		body, err := d.canonical()
		if err != nil {
			return nil, err
		}
		d.Signature = s.sign(body)
	}
	return d.canonical()
}

// OpenDigest parses stored digest bytes and checks their format, canonical
// form and, when pub is given, signature (an unsigned digest is then an
// error wrapping ErrUnsigned).
func OpenDigest(data []byte, pub ed25519.PublicKey) (*Digest, error) {
	return OpenDigestWith(data, NewPublicKeys(pub))
}

// OpenDigestWith is OpenDigest checking the signature with whichever of
// keys signed it (none skips the check); a digest signed by another key is
// an error wrapping ErrUnknownKey.
func OpenDigestWith(data []byte, keys PublicKeys) (*Digest, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var d Digest
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("digest does not parse: %w", err)
	}
	if d.Format != DigestFormat {
		return nil, fmt.Errorf("digest format %q, want %q", d.Format, DigestFormat)
	}
	if _, err := d.DayTime(); err != nil {
		return nil, fmt.Errorf("digest day %q: %w", d.Day, err)
	}
	again, err := d.canonical()
	if err != nil || !bytes.Equal(again, data) {
		return nil, errors.New("digest bytes are not in canonical form (changed after writing)")
	}
	if len(keys) == 0 {
		return &d, nil
	}
	unsigned := d
	unsigned.Signature = ""
	body, err := unsigned.canonical()
	if err != nil {
		return &d, err
	}
	return &d, checkSignature("digest", keys, d.KeyID, d.Signature, body)
}

// Digester writes the day digests of accounts. It keeps what it learnt of
// each account's digests in memory and reads them again from the store
// when it has none, or when another writer got in first.
type Digester struct {
	signer *Signer
	mu     sync.Mutex
	state  map[headKey]*digestState
}

// NewDigester signs digests with signer (nil leaves them unsigned).
func NewDigester(signer *Signer) *Digester {
	return &Digester{signer: signer, state: map[headKey]*digestState{}}
}

// digestState is an account's digests in one store.
type digestState struct {
	newest     time.Time // day of the newest day digest; zero when none
	newestLink *ManifestLink
	final      bool // the newest day digest ends the chain
	days       map[time.Time]dayDigests
	covered    map[string]bool // manifests listed by some digest
}

type dayDigests struct {
	addenda int
	last    ManifestLink // the day's newest digest (or addendum)
}

// Digest brings an account's digests in t up to day through (a closed
// day): first an addendum for each digested day whose manifests are not
// all listed yet, then a digest for each day after the newest one up to
// through. An account without digests starts its chain at through. It
// returns the keys written. Every digest is created with a conditional
// create: one that another writer created first is read back, never
// replaced.
func (d *Digester) Digest(ctx context.Context, t Target, account string, through time.Time) ([]string, error) {
	return d.digest(ctx, t, account, through, false)
}

// End ends the chain of an account no longer archived to t: once every day
// it has objects of is closed, and a day after its newest digest, it
// writes the digests through day through, the last one final. An account
// without digests, or whose chain has ended, gets none.
func (d *Digester) End(ctx context.Context, t Target, account string, through time.Time) ([]string, error) {
	return d.digest(ctx, t, account, through, true)
}

func (d *Digester) digest(ctx context.Context, t Target, account string, through time.Time, end bool) ([]string, error) {
	through = through.UTC().Truncate(24 * time.Hour)
	hk := headKey{t.Name, account}
	d.mu.Lock()
	st := d.state[hk]
	d.mu.Unlock()
	if st == nil {
		var err error
		if st, err = loadDigests(ctx, t.Store, account); err != nil {
			return nil, err
		}
		d.mu.Lock()
		if len(d.state) >= maxCachedHeads {
			clear(d.state)
		}
		d.state[hk] = st
		d.mu.Unlock()
	}
	// The account's manifests, in chain order.
	var refs []ManifestRef
	var keys []string
	var earliest, latest time.Time
	for info, err := range t.Store.List(ctx, ManifestPrefix(account)) {
		if err != nil {
			return nil, fmt.Errorf("list manifests of %s in %s: %w", account, t.Store.Describe(), err)
		}
		ref, ok := ParseManifestKey(info.Key)
		if !ok {
			continue
		}
		refs, keys = append(refs, ref), append(keys, info.Key)
		day := ref.Group.Window.Start.UTC().Truncate(24 * time.Hour)
		if earliest.IsZero() || day.Before(earliest) {
			earliest = day
		}
		if day.After(latest) {
			latest = day
		}
	}
	if end && (st.newest.IsZero() || st.final || !through.After(st.newest) || latest.After(through)) {
		return nil, nil
	}
	// A routed account whose chain ended was turned on again: a new chain
	// starts on the last closed day, linking to the final digest.
	restart := !end && st.final
	if restart && !through.After(st.newest) {
		return nil, nil
	}
	start, firstDay := st.newest.Add(24*time.Hour), st.first()
	if restart {
		start = through
	}
	if st.newest.IsZero() {
		// The chain starts on the last closed day, or, for an account whose
		// objects all belong to a later day, once that day closes.
		if earliest.After(through) {
			return nil, nil
		}
		start, firstDay = through, through
	}
	// Manifests of the chain's days that no digest lists yet.
	byDay := map[time.Time][]string{}
	var head string
	for i, ref := range refs {
		head = keys[i]
		day := ref.Group.Window.Start.UTC().Truncate(24 * time.Hour)
		if st.covered[keys[i]] || day.Before(firstDay) || day.After(through) {
			continue
		}
		byDay[day] = append(byDay[day], keys[i])
	}
	var dh *DigestHead
	if head != "" {
		sum, _, err := HashObject(ctx, t.Store, head)
		if err != nil {
			return nil, fmt.Errorf("read manifest %s in %s: %w", head, t.Store.Describe(), err)
		}
		ref, _ := ParseManifestKey(head)
		dh = &DigestHead{Sequence: ref.Sequence, Key: head, SHA256: sum}
	}
	var written []string
	// Addenda of days already digested, oldest first.
	for _, day := range slices.SortedFunc(maps.Keys(byDay), time.Time.Compare) {
		if !st.has(day) {
			continue
		}
		dd := st.days[day]
		prev := dd.last
		dg := &Digest{Account: account, Day: day.Format(dayFormat), Addendum: dd.addenda + 1, Previous: &prev, ManifestHead: dh}
		key, err := d.write(ctx, t, hk, st, dg, byDay[day])
		if err != nil {
			return written, err
		}
		written = append(written, key)
	}
	for day := start; !day.After(through); day = day.Add(24 * time.Hour) {
		dg := &Digest{Account: account, Day: day.Format(dayFormat), Previous: st.newestLink, Start: st.newest.IsZero() || st.final,
			Final: end && day.Equal(through), ManifestHead: dh}
		key, err := d.write(ctx, t, hk, st, dg, byDay[day])
		if err != nil {
			return written, err
		}
		written = append(written, key)
	}
	return written, nil
}

// write completes dg with the objects of manifests, seals and creates it.
func (d *Digester) write(ctx context.Context, t Target, hk headKey, st *digestState, dg *Digest, manifests []string) (string, error) {
	dg.Objects = []DigestObject{}
	for _, mk := range manifests {
		body, err := readAll(ctx, t.Store, mk)
		if err != nil {
			return "", fmt.Errorf("read manifest %s in %s: %w", mk, t.Store.Describe(), err)
		}
		m, err := OpenManifest(body, nil)
		if err != nil {
			return "", fmt.Errorf("manifest %s in %s: %w", mk, t.Store.Describe(), err)
		}
		for _, o := range m.Objects {
			dg.Objects = append(dg.Objects, DigestObject{Manifest: mk, ManifestObject: o})
			dg.Events += o.Records
		}
	}
	dg.Empty = len(dg.Objects) == 0
	data, err := d.signer.SealDigest(dg)
	if err != nil {
		return "", err
	}
	day, _ := dg.DayTime()
	key := DigestKey(dg.Account, day, dg.Addendum)
	sum := sha256.Sum256(data)
	hexSum := hex.EncodeToString(sum[:])
	if _, err := createOrCompare(ctx, t.Store, key, bytes.NewReader(data), int64(len(data)), hexSum,
		objstore.CreateOptions{ContentType: "application/json", SHA256: sum[:]}); err != nil {
		// Another writer (a replica during a rebalance) wrote it first:
		// read the account's digests again next time.
		d.mu.Lock()
		delete(d.state, hk)
		d.mu.Unlock()
		return "", fmt.Errorf("create digest %s: %w", key, err)
	}
	link := ManifestLink{Key: key, SHA256: hexSum}
	for _, mk := range manifests {
		st.covered[mk] = true
	}
	dd := st.days[day]
	dd.last = link
	if dg.Addendum > 0 {
		dd.addenda = dg.Addendum
	} else {
		st.newest, st.newestLink, st.final = day, &link, dg.Final
	}
	st.days[day] = dd
	return key, nil
}

func (st *digestState) has(day time.Time) bool {
	_, ok := st.days[day]
	return ok && !st.newest.IsZero()
}

// first is the day of the chain's first digest.
func (st *digestState) first() time.Time {
	var f time.Time
	for day := range st.days {
		if f.IsZero() || day.Before(f) {
			f = day
		}
	}
	return f
}

// loadDigests reads an account's digests from the store.
func loadDigests(ctx context.Context, s objstore.Store, account string) (*digestState, error) {
	st := &digestState{days: map[time.Time]dayDigests{}, covered: map[string]bool{}}
	for info, err := range s.List(ctx, DigestPrefix(account)) {
		if err != nil {
			return nil, fmt.Errorf("list digests of %s in %s: %w", account, s.Describe(), err)
		}
		ref, ok := ParseDigestKey(info.Key)
		if !ok || ref.Account != account {
			continue
		}
		body, err := readAll(ctx, s, info.Key)
		if err != nil {
			return nil, fmt.Errorf("read digest %s in %s: %w", info.Key, s.Describe(), err)
		}
		dg, err := OpenDigest(body, nil)
		if err != nil {
			return nil, fmt.Errorf("digest %s in %s: %w", info.Key, s.Describe(), err)
		}
		for _, o := range dg.Objects {
			st.covered[o.Manifest] = true
		}
		sum := sha256.Sum256(body)
		link := ManifestLink{Key: info.Key, SHA256: hex.EncodeToString(sum[:])}
		dd := st.days[ref.Day]
		if ref.Addendum >= dd.addenda {
			// Listing order puts DD.n.json before DD.json: the main digest
			// is the day's last only when it has no addendum.
			if ref.Addendum > 0 || dd.addenda == 0 {
				dd.last = link
			}
			dd.addenda = ref.Addendum
		}
		st.days[ref.Day] = dd
		if ref.Addendum == 0 && (st.newest.IsZero() || ref.Day.After(st.newest)) {
			st.newest, st.newestLink, st.final = ref.Day, &link, dg.Final
		}
	}
	return st, nil
}
