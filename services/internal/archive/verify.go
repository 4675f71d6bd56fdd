package archive

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
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
	ProblemConflictCopy = "conflict-copy" // an object the archiver had to write under a conflict key
)

// Problem is one finding.
type Problem struct {
	Kind    string `json:"kind"`
	Key     string `json:"key"`
	Account string `json:"account"`
	Detail  string `json:"detail"`
}

func (p Problem) String() string { return fmt.Sprintf("%s %s: %s", p.Kind, p.Key, p.Detail) }

// VerifyOptions narrow a verification.
type VerifyOptions struct {
	// Accounts limits the check to these accounts; empty checks all.
	Accounts []string
	// From and To limit which days' objects are read and hashed (inclusive
	// UTC dates; zero means unbounded). Chains are always checked whole.
	From, To time.Time
	// PublicKey verifies signatures; nil skips the signature check.
	PublicKey ed25519.PublicKey
}

// Report is the outcome of Verify.
type Report struct {
	Accounts  int       `json:"accounts"`
	Manifests int       `json:"manifests"`
	Objects   int       `json:"objects"`
	Records   int64     `json:"records"`
	Bytes     int64     `json:"bytes"`
	Problems  []Problem `json:"problems"`
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
	var manifests []string
	data := map[string]objstore.Info{}
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
		if strings.HasPrefix(info.Key, ManifestPrefix(acct)) {
			add(ProblemManifest, info.Key, "not a manifest name")
		}
	}
	listed := map[string]bool{}
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
		m, err := OpenManifest(body, opts.PublicKey)
		switch {
		case errors.Is(err, ErrUnsigned):
			add(ProblemUnsigned, key, "manifest has no signature")
		case err != nil && m == nil:
			add(ProblemManifest, key, "%v", err)
			prev = &chainHead{seq: ref.Sequence, key: key, sum: hexSum}
			continue
		case err != nil:
			add(ProblemManifest, key, "%v", err)
		}
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
