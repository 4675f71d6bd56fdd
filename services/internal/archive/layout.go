package archive

import (
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Window is a span of event time whose events share a date folder. Windows
// are aligned to UTC midnight; their length divides a day.
type Window struct {
	Start  time.Time
	Length time.Duration
}

// WindowOf returns the window of the given length that holds t.
func WindowOf(t time.Time, length time.Duration) Window {
	return Window{Start: t.UTC().Truncate(length), Length: length}
}

// End is the first instant after the window.
func (w Window) End() time.Time { return w.Start.Add(w.Length) }

// Contains reports whether t falls in the window.
func (w Window) Contains(t time.Time) bool {
	return !t.Before(w.Start) && t.Before(w.End())
}

func (w Window) String() string {
	return w.Start.Format("20060102T150405Z") + "-" + strconv.FormatInt(int64(w.Length/time.Second), 10) + "s"
}

// Group is a run of one partition's records of one window: its objects hold
// the window's events found at offsets First..Last (inclusive) of the
// partition, one object per account. The range is the group's cut: it is
// decided once, recorded with the consumer group's commit before any object
// is written, and re-used on every re-run, which is what makes names and
// bytes repeat.
type Group struct {
	Window    Window
	Partition int32
	First     int64
	Last      int64
}

// Name is the group's part of every key it writes, a pure function of the
// window, partition and offsets. Offsets are zero-padded so keys sort in
// offset order.
func (g Group) Name() string {
	return fmt.Sprintf("%s-p%05d-%020d-%020d", g.Window, g.Partition, g.First, g.Last)
}

// DateFolder is the window's date as YYYY/MM/DD.
func (g Group) DateFolder() string { return g.Window.Start.Format("2006/01/02") }

// ObjectKey is where an account's events of the group are stored:
// <account>/YYYY/MM/DD/<group name>.json.gz.
func ObjectKey(account string, g Group) string {
	return path.Join(account, g.DateFolder(), g.Name()+".json.gz")
}

// ConflictKey is where the archive puts its own copy when ObjectKey already
// holds different bytes: the existing object is never replaced.
func ConflictKey(account string, g Group, sha256hex string) string {
	return path.Join(account, g.DateFolder(), g.Name()+".conflict-"+sha256hex[:16]+".json.gz")
}

// ManifestPrefix is the folder of an account's manifest chain.
func ManifestPrefix(account string) string { return account + "/_manifests/" }

// ManifestKey is the key of the seq-th manifest of an account's chain, which
// lists the account's objects of group g. Sequence numbers are zero-padded
// so a listing is in chain order.
func ManifestKey(account string, seq uint64, g Group) string {
	return fmt.Sprintf("%s%010d-%s.json", ManifestPrefix(account), seq, g.Name())
}

var (
	groupNameRE = regexp.MustCompile(`^(\d{8}T\d{6}Z)-(\d+)s-p(\d{5})-(\d{20})-(\d{20})$`)
	objectRE    = regexp.MustCompile(`^([^/]+)/(\d{4})/(\d{2})/(\d{2})/([^/]+?)(\.conflict-[0-9a-f]{16})?\.json\.gz$`)
	manifestRE  = regexp.MustCompile(`^([^/]+)/_manifests/(\d{10})-([^/]+)\.json$`)
)

// ParseGroupName is the inverse of Group.Name.
func ParseGroupName(name string) (Group, error) {
	m := groupNameRE.FindStringSubmatch(name)
	if m == nil {
		return Group{}, fmt.Errorf("%q is not a group name (window-length-partition-first-last)", name)
	}
	start, err := time.Parse("20060102T150405Z", m[1])
	if err != nil {
		return Group{}, fmt.Errorf("group name %q: window start: %w", name, err)
	}
	secs, _ := strconv.ParseInt(m[2], 10, 64)
	part, _ := strconv.ParseInt(m[3], 10, 32)
	first, err1 := strconv.ParseInt(m[4], 10, 64)
	last, err2 := strconv.ParseInt(m[5], 10, 64)
	if err1 != nil || err2 != nil || first > last || secs <= 0 {
		return Group{}, fmt.Errorf("group name %q: bad offsets or length", name)
	}
	return Group{Window: Window{Start: start.UTC(), Length: time.Duration(secs) * time.Second}, Partition: int32(part), First: first, Last: last}, nil
}

// ObjectRef is what a data object's key says about it.
type ObjectRef struct {
	Account  string
	Group    Group
	Conflict bool
}

// ParseObjectKey reads a data object's key; ok is false for keys that are
// not data objects (manifests, foreign files).
func ParseObjectKey(key string) (ObjectRef, bool) {
	m := objectRE.FindStringSubmatch(key)
	if m == nil || strings.HasPrefix(m[1], "_") {
		return ObjectRef{}, false
	}
	g, err := ParseGroupName(m[5])
	if err != nil || g.DateFolder() != m[2]+"/"+m[3]+"/"+m[4] {
		return ObjectRef{}, false
	}
	return ObjectRef{Account: m[1], Group: g, Conflict: m[6] != ""}, true
}

// ManifestRef is what a manifest's key says about it.
type ManifestRef struct {
	Account  string
	Sequence uint64
	Group    Group
}

// ParseManifestKey reads a manifest's key.
func ParseManifestKey(key string) (ManifestRef, bool) {
	m := manifestRE.FindStringSubmatch(key)
	if m == nil {
		return ManifestRef{}, false
	}
	seq, err := strconv.ParseUint(m[2], 10, 64)
	if err != nil {
		return ManifestRef{}, false
	}
	g, err := ParseGroupName(m[3])
	if err != nil {
		return ManifestRef{}, false
	}
	return ManifestRef{Account: m[1], Sequence: seq, Group: g}, true
}
