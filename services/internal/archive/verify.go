package archive

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/auditstream/auditstream/services/internal/objstore"
)

// Problem kinds a verification reports.
const (
	ProblemChanged      = "changed"       // an object's bytes differ from its manifest entry
	ProblemMissing      = "missing"       // a listed object is not in the store
	ProblemExtra        = "extra"         // a data object no manifest lists
	ProblemManifest     = "manifest"      // a manifest does not parse, is not canonical or its signature fails
	ProblemChain        = "chain"         // a gap, fork or broken link in the manifest chain
	ProblemUnsigned     = "unsigned"      // a manifest has no signature but a key was given
	ProblemUnknownKey   = "unknown-key"   // a manifest or digest is signed by a key not among those given
	ProblemConflictCopy = "conflict-copy" // an object the archiver had to write under a conflict key

	ProblemDigest        = "digest"         // a digest does not parse, is not canonical, its signature fails or its content does not match its key
	ProblemDigestChain   = "digest-chain"   // a digest does not link to the digest before it
	ProblemDigestMissing = "digest-missing" // a day (or addendum) of the chain has no digest
	ProblemDigestObjects = "digest-objects" // a digest's objects or manifest head disagree with the store, or a manifest of a digested day is in no digest
	ProblemDigestCount   = "digest-count"   // a digest's event count disagrees with its objects
)

// Problem is one finding.
type Problem struct {
	Kind    string `json:"kind"`
	Key     string `json:"key"`
	Account string `json:"account"`
	Detail  string `json:"detail"`
}

func (p Problem) String() string { return fmt.Sprintf("%s %s: %s", p.Kind, p.Key, p.Detail) }

var problemDayRE = regexp.MustCompile(`^day (\d{4}-\d{2}-\d{2})\b`)

// Day is the UTC day a problem concerns: the day its detail names (every
// digest problem names one), else the day of the digest, object or
// manifest it is about. ok is false for a key of no day (a foreign file).
func (p Problem) Day() (time.Time, bool) {
	if m := problemDayRE.FindStringSubmatch(p.Detail); m != nil {
		if d, err := time.Parse(dayFormat, m[1]); err == nil {
			return d, true
		}
	}
	if ref, ok := ParseDigestKey(p.Key); ok {
		return ref.Day, true
	}
	if ref, ok := ParseObjectKey(p.Key); ok {
		return ref.Group.Window.Start.UTC().Truncate(24 * time.Hour), true
	}
	if ref, ok := ParseManifestKey(p.Key); ok {
		return ref.Group.Window.Start.UTC().Truncate(24 * time.Hour), true
	}
	return time.Time{}, false
}

// VerifyOptions narrow a verification.
type VerifyOptions struct {
	// Accounts limits the check to these accounts; empty checks all.
	Accounts []string
	// From and To limit which days' objects are read and hashed (inclusive
	// UTC dates; zero means unbounded). Chains are always checked whole.
	From, To time.Time
	// PublicKey and PublicKeys verify signatures: each manifest and digest
	// with the key it names, so days before and after a rotation of the
	// signing key verify given both keys. None skips the signature check.
	PublicKey  ed25519.PublicKey
	PublicKeys []ed25519.PublicKey
	// Now, when set, makes the days after an account's newest digest
	// expected once DigestDue has passed since their end: a missing one is
	// reported. Zero expects only the days between the first and the
	// newest digest.
	Now       time.Time
	DigestDue time.Duration
}

func (o VerifyOptions) publicKeys() PublicKeys {
	return NewPublicKeys(append([]ed25519.PublicKey{o.PublicKey}, o.PublicKeys...)...)
}

// Report is the outcome of Verify.
type Report struct {
	Accounts  int       `json:"accounts"`
	Manifests int       `json:"manifests"`
	Digests   int       `json:"digests"`
	Objects   int       `json:"objects"`
	Records   int64     `json:"records"`
	Bytes     int64     `json:"bytes"`
	Problems  []Problem `json:"problems"`
	// Policies are the days of the range whose manifests record a storage
	// profile's filter or redaction, per account: deliberate, not
	// problems. A day whose objects are missing is still a problem.
	Policies []DayPolicy `json:"policies,omitempty"`
	// Days are the digested days of the options' range, per account, as
	// their digests describe them (whether or not they verify): for
	// callers that show days. The CLI's report leaves them out.
	Days []DayDigest `json:"-"`
}

// DayDigest is what an account's digests of one day say.
type DayDigest struct {
	Account string
	Day     time.Time
	// Digest is false when only addenda of the day are in the store.
	Digest  bool
	Addenda int
	Events  int64
	Objects int
	// Empty: no digest of the day lists an object (a quiet day).
	Empty bool
	Start bool
	Final bool
	// KeyID is the key that signed the day's digest, as the digest names it.
	KeyID string
	// Policy is what the profile's policy did to the day, nil when no
	// manifest of the day records one.
	Policy *DayPolicy
}

// DayPolicy is what a storage profile's filter and redaction did to an
// account's day, as the day's manifests record it: the day's objects hold
// only the events the filter kept, redacted, on purpose.
type DayPolicy struct {
	Account string `json:"account"`
	Day     string `json:"day"`
	// Policies are the distinct policies (by version) of the day's
	// manifests, in the order they first apply; each one's Filtered sums
	// the events it left out.
	Policies []ManifestPolicy `json:"policies"`
	// Filtered is how many events of the day the filters left out.
	Filtered int64 `json:"filtered"`
	// Manifests counts the day's manifests that record a policy; Whole
	// those that record none (the policy was set or removed that day).
	Manifests int `json:"manifests"`
	Whole     int `json:"whole"`
}

// dayPolicies sums the policies the manifests of an account record, per
// day of the options' range; days without one are left out.
func dayPolicies(acct string, manifests map[string]*openedManifest, opts VerifyOptions) []DayPolicy {
	byDay := map[time.Time]*DayPolicy{}
	for _, key := range slices.Sorted(maps.Keys(manifests)) {
		om := manifests[key]
		if om.m == nil || !inRange(om.day, opts) {
			continue
		}
		dp := byDay[om.day]
		if dp == nil {
			dp = &DayPolicy{Account: acct, Day: om.day.Format(dayFormat)}
			byDay[om.day] = dp
		}
		mp := om.m.Policy
		if mp == nil {
			dp.Whole++
			continue
		}
		dp.Manifests++
		dp.Filtered += mp.Filtered
		i := slices.IndexFunc(dp.Policies, func(p ManifestPolicy) bool { return p.Version == mp.Version })
		if i < 0 {
			dp.Policies = append(dp.Policies, ManifestPolicy{Version: mp.Version, Filter: mp.Filter, Redact: mp.Redact})
			i = len(dp.Policies) - 1
		}
		dp.Policies[i].Filtered += mp.Filtered
	}
	var out []DayPolicy
	for _, day := range slices.SortedFunc(maps.Keys(byDay), time.Time.Compare) {
		if dp := byDay[day]; dp.Manifests > 0 {
			out = append(out, *dp)
		}
	}
	return out
}

// OK reports whether nothing was found.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// Verify checks a store's archive: every object against its manifest entry
// (SHA-256 and size), every manifest's canonical form and signature, each
// account's chain (sequence without gaps or forks, each link's hash), and
// that no data object is left out of every manifest.
func Verify(ctx context.Context, s objstore.Store, opts VerifyOptions) (*Report, error) {
	rep := &Report{}
	accounts := opts.Accounts
	if len(accounts) == 0 {
		var err error
		if accounts, err = ListAccounts(ctx, s); err != nil {
			return nil, err
		}
	}
	for _, acct := range accounts {
		if err := verifyAccount(ctx, s, acct, opts, rep); err != nil {
			return rep, err
		}
		rep.Accounts++
	}
	return rep, nil
}

// ListAccounts returns the account folders of a store, sorted: the first
// path element of every key.
func ListAccounts(ctx context.Context, s objstore.Store) ([]string, error) {
	var out []string
	for info, err := range s.List(ctx, "") {
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", s.Describe(), err)
		}
		acct, _, ok := strings.Cut(info.Key, "/")
		if !ok || acct == "" {
			continue
		}
		if len(out) == 0 || out[len(out)-1] != acct {
			out = append(out, acct)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// inRange reports whether a window starting at start is on a day of the
// options' range. Windows may be shorter than a day.
func inRange(start time.Time, opts VerifyOptions) bool {
	day := start.UTC().Truncate(24 * time.Hour)
	if !opts.From.IsZero() && day.Before(opts.From.UTC().Truncate(24*time.Hour)) {
		return false
	}
	if !opts.To.IsZero() && day.After(opts.To.UTC().Truncate(24*time.Hour)) {
		return false
	}
	return true
}

func verifyAccount(ctx context.Context, s objstore.Store, acct string, opts VerifyOptions, rep *Report) error {
	add := func(kind, key, format string, args ...any) {
		rep.Problems = append(rep.Problems, Problem{Kind: kind, Key: key, Account: acct, Detail: fmt.Sprintf(format, args...)})
	}
	var manifests, digests []string
	data := map[string]objstore.Info{}
	opened := map[string]*openedManifest{}
	for info, err := range s.List(ctx, acct+"/") {
		if err != nil {
			return fmt.Errorf("list %s/ in %s: %w", acct, s.Describe(), err)
		}
		if _, ok := ParseManifestKey(info.Key); ok {
			manifests = append(manifests, info.Key)
			continue
		}
		if ref, ok := ParseObjectKey(info.Key); ok && ref.Account == acct {
			data[info.Key] = info
			continue
		}
		if ref, ok := ParseDigestKey(info.Key); ok && ref.Account == acct {
			digests = append(digests, info.Key)
			continue
		}
		if strings.HasPrefix(info.Key, DigestPrefix(acct)) {
			add(ProblemDigest, info.Key, "not a digest name")
		}
		if strings.HasPrefix(info.Key, ManifestPrefix(acct)) {
			add(ProblemManifest, info.Key, "not a manifest name")
		}
	}
	listed := map[string]bool{}
	pubKeys := opts.publicKeys()
	var prev *chainHead
	for _, key := range manifests {
		ref, _ := ParseManifestKey(key)
		body, err := readAll(ctx, s, key)
		if err != nil {
			return fmt.Errorf("read manifest %s: %w", key, err)
		}
		rep.Manifests++
		sum := sha256.Sum256(body)
		hexSum := hex.EncodeToString(sum[:])
		m, err := OpenManifestWith(body, pubKeys)
		switch {
		case errors.Is(err, ErrUnsigned):
			add(ProblemUnsigned, key, "manifest has no signature")
		case errors.Is(err, ErrUnknownKey):
			add(ProblemUnknownKey, key, "day %s: %v", ref.Group.Window.Start.UTC().Format(dayFormat), err)
		case err != nil && m == nil:
			add(ProblemManifest, key, "%v", err)
			prev = &chainHead{seq: ref.Sequence, key: key, sum: hexSum}
			continue
		case err != nil:
			add(ProblemManifest, key, "%v", err)
		}
		opened[key] = &openedManifest{m: m, sum: hexSum, seq: ref.Sequence, day: ref.Group.Window.Start.UTC().Truncate(24 * time.Hour)}
		switch {
		case m.Account != acct || m.Sequence != ref.Sequence || m.Group() != ref.Group:
			add(ProblemManifest, key, "content (account %q, sequence %d, group %s) does not match its key", m.Account, m.Sequence, m.Group().Name())
		case prev == nil && ref.Sequence != 1:
			add(ProblemChain, key, "chain starts at sequence %d, want 1", ref.Sequence)
		case prev != nil && ref.Sequence == prev.seq:
			add(ProblemChain, key, "fork: two manifests with sequence %d", ref.Sequence)
		case prev != nil && ref.Sequence != prev.seq+1:
			add(ProblemChain, key, "gap: sequence %d follows %d", ref.Sequence, prev.seq)
		}
		switch {
		case prev == nil && m.Previous != nil && ref.Sequence == 1:
			add(ProblemChain, key, "first manifest links to %s", m.Previous.Key)
		case prev != nil && m.Previous == nil:
			add(ProblemChain, key, "does not link to the previous manifest %s", prev.key)
		case prev != nil && (m.Previous.Key != prev.key || m.Previous.SHA256 != prev.sum):
			add(ProblemChain, key, "links to %s (sha256 %s), but the previous manifest is %s (sha256 %s)", m.Previous.Key, m.Previous.SHA256, prev.key, prev.sum)
		}
		prev = &chainHead{seq: ref.Sequence, key: key, sum: hexSum}
		for _, o := range m.Objects {
			listed[o.Key] = true
			if o.Conflict {
				add(ProblemConflictCopy, o.Key, "written beside an object that held different bytes under the expected name")
			}
			ref, ok := ParseObjectKey(o.Key)
			if !ok || ref.Account != acct {
				add(ProblemManifest, key, "lists %q, not an object key of account %s", o.Key, acct)
				continue
			}
			if !inRange(ref.Group.Window.Start, opts) {
				continue
			}
			if _, ok := data[o.Key]; !ok {
				add(ProblemMissing, o.Key, "listed in %s, not in the store", key)
				continue
			}
			got, n, err := HashObject(ctx, s, o.Key)
			if err != nil {
				return fmt.Errorf("read %s: %w", o.Key, err)
			}
			rep.Objects++
			rep.Records += o.Records
			rep.Bytes += n
			if got != o.SHA256 || n != o.Size {
				add(ProblemChanged, o.Key, "sha256 %s and size %d, manifest %s says %s and %d", got, n, key, o.SHA256, o.Size)
			}
		}
	}
	for key := range data {
		ref, _ := ParseObjectKey(key)
		if !listed[key] && inRange(ref.Group.Window.Start, opts) {
			add(ProblemExtra, key, "no manifest lists this object")
		}
	}
	days := len(rep.Days)
	if err := verifyDigests(ctx, s, acct, digests, opened, data, opts, rep, add); err != nil {
		return err
	}
	policies := dayPolicies(acct, opened, opts)
	rep.Policies = append(rep.Policies, policies...)
	for i := range rep.Days[days:] {
		d := &rep.Days[days+i]
		for j := range policies {
			if policies[j].Day == d.Day.Format(dayFormat) {
				d.Policy = &policies[j]
			}
		}
	}
	slices.SortFunc(rep.Problems, func(a, b Problem) int { return strings.Compare(a.Key, b.Key) })
	return nil
}

func readAll(ctx context.Context, s objstore.Store, key string) ([]byte, error) {
	rc, _, err := s.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, 64<<20))
}

// openedManifest is a manifest as verification read it.
type openedManifest struct {
	m   *Manifest
	sum string
	seq uint64
	day time.Time
}

// verifyDigests checks an account's day digests: each one's form and
// signature, the chain of days (no day missing between the first and the
// newest, nor after it once due; each linking to the one before), each
// day's addenda, every listed object against its manifest and the store,
// the event counts, the manifest heads, and that every manifest of a
// digested day is listed by a digest.
func verifyDigests(ctx context.Context, s objstore.Store, acct string, keys []string, manifests map[string]*openedManifest,
	data map[string]objstore.Info, opts VerifyOptions, rep *Report, add func(kind, key, format string, args ...any)) error {
	if len(keys) == 0 {
		return nil
	}
	type opened struct {
		ref  DigestRef
		d    *Digest
		link ManifestLink
	}
	byDay := map[time.Time]map[int]*opened{}
	pubKeys := opts.publicKeys()
	var maxHead uint64
	covered := map[string]string{} // manifest key → digest listing it
	for _, key := range keys {
		ref, _ := ParseDigestKey(key)
		day := ref.Day.Format(dayFormat)
		body, err := readAll(ctx, s, key)
		if err != nil {
			return fmt.Errorf("read digest %s: %w", key, err)
		}
		rep.Digests++
		sum := sha256.Sum256(body)
		d, err := OpenDigestWith(body, pubKeys)
		switch {
		case errors.Is(err, ErrUnsigned):
			add(ProblemUnsigned, key, "digest of %s has no signature", day)
		case errors.Is(err, ErrUnknownKey):
			add(ProblemUnknownKey, key, "day %s: %v", day, err)
		case err != nil && d == nil:
			add(ProblemDigest, key, "day %s: %v", day, err)
			continue
		case err != nil:
			add(ProblemDigest, key, "day %s: %v", day, err)
		}
		if d.Account != acct || d.Day != day || d.Addendum != ref.Addendum {
			add(ProblemDigest, key, "content (account %q, day %s, addendum %d) does not match its key", d.Account, d.Day, d.Addendum)
		}
		if byDay[ref.Day] == nil {
			byDay[ref.Day] = map[int]*opened{}
		}
		byDay[ref.Day][ref.Addendum] = &opened{ref: ref, d: d, link: ManifestLink{Key: key, SHA256: hex.EncodeToString(sum[:])}}

		var events int64
		for _, o := range d.Objects {
			events += o.Records
			if other, ok := covered[o.Manifest]; ok && other != key {
				add(ProblemDigestObjects, o.Key, "day %s: listed by digests %s and %s", day, other, key)
			}
			covered[o.Manifest] = key
			m := manifests[o.Manifest]
			var entry *ManifestObject
			if m != nil && m.m != nil {
				for i := range m.m.Objects {
					if m.m.Objects[i].Key == o.Key {
						entry = &m.m.Objects[i]
					}
				}
			}
			switch {
			case m == nil:
				if _, ok := data[o.Key]; !ok {
					add(ProblemDigestObjects, o.Key, "day %s: listed by digest %s with manifest %s; neither the object nor the manifest is in the store", day, key, o.Manifest)
					continue
				}
				add(ProblemDigestObjects, o.Manifest, "day %s: digest %s lists this manifest, which is not in the store", day, key)
				if ref, ok := ParseObjectKey(o.Key); ok && inRange(ref.Group.Window.Start, opts) {
					got, n, err := HashObject(ctx, s, o.Key)
					if err != nil {
						return fmt.Errorf("read %s: %w", o.Key, err)
					}
					if got != o.SHA256 || n != o.Size {
						add(ProblemDigestObjects, o.Key, "day %s: sha256 %s and size %d, digest %s says %s and %d", day, got, n, key, o.SHA256, o.Size)
					}
				}
			case entry == nil:
				add(ProblemDigestObjects, o.Key, "day %s: digest %s lists it under manifest %s, which does not", day, key, o.Manifest)
			case *entry != o.ManifestObject:
				add(ProblemDigestObjects, o.Key, "day %s: digest %s and manifest %s describe it differently", day, key, o.Manifest)
			}
		}
		if events != d.Events {
			add(ProblemDigestCount, key, "day %s: digest says %d events, its %d objects hold %d", day, d.Events, len(d.Objects), events)
		}
		if d.Empty != (len(d.Objects) == 0) {
			add(ProblemDigestCount, key, "day %s: digest says empty=%v with %d objects", day, d.Empty, len(d.Objects))
		}
		if h := d.ManifestHead; h != nil {
			maxHead = max(maxHead, h.Sequence)
			switch m := manifests[h.Key]; {
			case m == nil:
				add(ProblemDigestObjects, h.Key, "day %s: digest %s names manifest %d as the chain's head, and it is not in the store (manifests removed after the digest)", day, key, h.Sequence)
			case m.sum != h.SHA256:
				add(ProblemDigestObjects, h.Key, "day %s: digest %s names this manifest as the chain's head with sha256 %s; it has %s", day, key, h.SHA256, m.sum)
			}
		}
	}

	days := slices.SortedFunc(maps.Keys(byDay), time.Time.Compare)
	for _, day := range days {
		if !inRange(day, opts) {
			continue
		}
		dd := DayDigest{Account: acct, Day: day, Empty: true}
		for a, o := range byDay[day] {
			if a == 0 {
				dd.Digest, dd.KeyID, dd.Start, dd.Final = true, o.d.KeyID, o.d.Start, o.d.Final
			}
			dd.Addenda = max(dd.Addenda, a)
			dd.Events += o.d.Events
			dd.Objects += len(o.d.Objects)
			dd.Empty = dd.Empty && len(o.d.Objects) == 0
		}
		rep.Days = append(rep.Days, dd)
	}
	first, newest := days[0], days[len(days)-1]
	for _, day := range slices.Backward(days) {
		if byDay[day][0] != nil {
			newest = day
			break
		}
	}
	last := newest
	// newest has no day's digest when only addenda are left (the day's
	// digests removed): it cannot be final
	if !opts.Now.IsZero() && (byDay[newest][0] == nil || !byDay[newest][0].d.Final) {
		for day := newest.Add(24 * time.Hour); !day.Add(24 * time.Hour).Add(opts.DigestDue).After(opts.Now); day = day.Add(24 * time.Hour) {
			last = day
		}
	}
	var prev *ManifestLink
	ended := false // after a final digest, until a new chain starts
	for day := first; !day.After(last); day = day.Add(24 * time.Hour) {
		ds := byDay[day]
		main := ds[0]
		dayText := day.Format(dayFormat)
		restart := ended && main != nil && main.d.Start
		switch {
		case main == nil && ended:
		case main == nil && day.After(newest):
			add(ProblemDigestMissing, DigestKey(acct, day, 0), "day %s has no digest, due %s after its end; the newest is of %s", dayText, opts.DigestDue, newest.Format(dayFormat))
		case main == nil:
			add(ProblemDigestMissing, DigestKey(acct, day, 0), "day %s has no digest; the chain runs from %s to %s", dayText, first.Format(dayFormat), newest.Format(dayFormat))
		case ended && !main.d.Start:
			add(ProblemDigestChain, main.link.Key, "day %s: follows the final digest %s without starting a new chain", dayText, prev.Key)
		case day.Equal(first) && (main.d.Previous != nil || !main.d.Start):
			add(ProblemDigestChain, main.link.Key, "day %s: the chain's first digest links to %v and start=%v", dayText, main.d.Previous, main.d.Start)
		case !day.Equal(first) && prev != nil && (main.d.Previous == nil || *main.d.Previous != *prev):
			add(ProblemDigestChain, main.link.Key, "day %s: links to %v, but the previous digest is %s (sha256 %s)", dayText, main.d.Previous, prev.Key, prev.SHA256)
		case !day.Equal(first) && main.d.Start && !restart:
			add(ProblemDigestChain, main.link.Key, "day %s: says a chain starts here, after digests of %s and no final digest", dayText, first.Format(dayFormat))
		}
		if main != nil {
			ended = main.d.Final
		}
		if main == nil && ended {
			continue // prev stays the final digest, which a new chain links to
		}
		prev = nil
		if main != nil {
			prev = &main.link
		}
		// The day's addenda: 1..n, each linking to the day's digest before.
		n := 0
		for a := range ds {
			n = max(n, a)
		}
		dayPrev := prev
		for a := 1; a <= n; a++ {
			ad := ds[a]
			switch {
			case ad == nil:
				add(ProblemDigestMissing, DigestKey(acct, day, a), "day %s: addendum %d is missing, addendum %d exists", dayText, a, n)
			case dayPrev != nil && (ad.d.Previous == nil || *ad.d.Previous != *dayPrev):
				add(ProblemDigestChain, ad.link.Key, "day %s: addendum %d links to %v, but the day's digest before it is %s (sha256 %s)", dayText, a, ad.d.Previous, dayPrev.Key, dayPrev.SHA256)
			}
			dayPrev = nil
			if ad != nil {
				dayPrev = &ad.link
			}
		}
	}
	// Every manifest of a digested day is listed, unless it was written
	// after the newest digest (its addendum is still to come).
	for key, m := range manifests {
		if _, ok := covered[key]; ok || m.day.Before(first) || m.day.After(newest) || m.seq > maxHead {
			continue
		}
		add(ProblemDigestObjects, key, "day %s: this manifest is listed by no digest of its day", m.day.Format(dayFormat))
	}
	return nil
}
