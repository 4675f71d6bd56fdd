package check

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The bucket layout of docs/archiver.md, with no prefix:
//
//	<account>/YYYY/MM/DD/<window>-<length>s-p<partition>-<first>-<last>.json.gz
//	<account>/_manifests/<sequence>-<window>-<length>s-p<partition>-<first>-<last>.json
//
// and a conflict copy as <name>.conflict-<sha256 prefix>.json.gz.
var (
	objectName   = regexp.MustCompile(`^([A-Za-z0-9._:-]+)/(\d{4})/(\d{2})/(\d{2})/(\d{8}T\d{6}Z)-(\d+)s-p(\d{5})-(\d{20})-(\d{20})(\.conflict-[0-9a-f]+)?\.json\.gz$`)
	manifestName = regexp.MustCompile(`^([A-Za-z0-9._:-]+)/_manifests/(\d{10})-(\d{8}T\d{6}Z)-(\d+)s-p(\d{5})-(\d{20})-(\d{20})\.json$`)
)

// eventTimeLayout is the seed's zone-less UTC form the events are written
// in (docs/record-format.md, Timestamps).
const eventTimeLayout = "2006-01-02T15:04:05.999999999"

type objectInfo struct {
	sha   string
	size  int64
	lines int64
}

type manifestFile struct {
	key     string
	sha     string
	Account string `json:"account"`
	Seq     uint64 `json:"sequence"`
	Prev    *struct {
		Key    string `json:"key"`
		SHA256 string `json:"sha256"`
	} `json:"previous"`
	Objects []struct {
		Key     string `json:"key"`
		SHA256  string `json:"sha256"`
		Size    int64  `json:"size"`
		Records int64  `json:"records"`
	} `json:"objects"`
}

type archiveState struct {
	seen      map[string]bool
	got       map[string]uint32
	objects   map[string]*objectInfo
	manifests map[string][]*manifestFile
	lines     int
	conflicts int

	badName, badLine, crossTenant, wrongAccount, badToken, rawToken, unknownID, outsideWindow, unreadable int
	windowLengths                                                                                         map[int]int
}

func newArchiveState() *archiveState {
	return &archiveState{seen: map[string]bool{}, got: map[string]uint32{}, objects: map[string]*objectInfo{}, manifests: map[string][]*manifestFile{}, windowLengths: map[int]int{}}
}

// ScanArchive reads the objects and manifests in dir it has not read yet.
// Objects are immutable and appear whole (a local store links a complete
// temporary file to its name), so each is read once.
func (c *Checker) ScanArchive(dir string) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) && path == dir {
				return filepath.SkipDir
			}
			return err
		}
		if d.IsDir() || strings.HasPrefix(d.Name(), ".objstore-tmp-") {
			return nil
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		c.mu.Lock()
		seen := c.archive.seen[key]
		c.mu.Unlock()
		if seen {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("read archive object %s: %w", key, err)
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		c.archive.seen[key] = true
		c.archiveFile(key, data)
		return nil
	})
}

func (c *Checker) archiveFile(key string, data []byte) {
	a := c.archive
	sum := sha256.Sum256(data)
	sha := hex.EncodeToString(sum[:])
	if m := manifestName.FindStringSubmatch(key); m != nil {
		mf := &manifestFile{key: key, sha: sha}
		if err := json.Unmarshal(data, mf); err != nil {
			a.unreadable++
			c.problem("archive: manifest %s does not decode: %v", key, err)
			return
		}
		if mf.Account != m[1] {
			a.crossTenant++
			c.problem("archive: manifest %s names account %q", key, mf.Account)
		}
		if seq, _ := strconv.ParseUint(m[2], 10, 64); seq != mf.Seq {
			a.badName++
			c.problem("archive: manifest %s holds sequence %d", key, mf.Seq)
		}
		a.manifests[m[1]] = append(a.manifests[m[1]], mf)
		return
	}
	m := objectName.FindStringSubmatch(key)
	if m == nil {
		a.badName++
		c.problem("archive: %s is neither an object nor a manifest of the documented layout", key)
		return
	}
	account, conflict := m[1], m[10] != ""
	if conflict {
		a.conflicts++
		c.problem("archive: conflict copy %s", key)
	}
	start, err := time.Parse("20060102T150405Z", m[5])
	length, _ := strconv.Atoi(m[6])
	if err != nil || start.Format("2006/01/02") != m[2]+"/"+m[3]+"/"+m[4] {
		a.badName++
		c.problem("archive: %s is filed under another day than its window", key)
	}
	a.windowLengths[length]++
	info := &objectInfo{sha: sha, size: int64(len(data))}
	a.objects[key] = info

	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		a.unreadable++
		c.problem("archive: %s is not gzip: %v", key, err)
		return
	}
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	end := start.Add(time.Duration(length) * time.Second)
	for sc.Scan() {
		line := sc.Bytes()
		info.lines++
		a.lines++
		if bytes.Contains(line, []byte(RawTokenMarker)) {
			a.rawToken++
			c.problem("archive: a raw access token in %s", key)
		}
		var e struct {
			ID        *string `json:"id"`
			Timestamp string  `json:"timestamp"`
			delivered
		}
		if err := json.Unmarshal(line, &e); err != nil || e.ID == nil {
			a.badLine++
			c.problem("archive: %s line %d is not an event with an id (%v)", key, info.lines, err)
			continue
		}
		acc := e.Target.Context.Account.ID
		if acc != account {
			a.crossTenant++
			c.problem("archive: event %s of account %s in %s", *e.ID, acc, key)
		}
		if ts, err := time.Parse(eventTimeLayout, e.Timestamp); err != nil || ts.Before(start) || !ts.Before(end) {
			a.outsideWindow++
			c.problem("archive: event %s stamped %q in the window of %s", *e.ID, e.Timestamp, key)
		}
		ev := c.events[*e.ID]
		if ev == nil {
			a.unknownID++
			c.problem("archive: event %s in %s was never posted", *e.ID, key)
			continue
		}
		if acc != ev.account {
			a.wrongAccount++
			c.problem("archive: event %s carries account %q, posted as %q", *e.ID, acc, ev.account)
		}
		if tok := e.Actor.AccessToken.Token; tok == nil || *tok != ev.masked {
			a.badToken++
			c.problem("archive: event %s token not masked as %q", *e.ID, ev.masked)
		}
		a.got[*e.ID]++
	}
	if err := sc.Err(); err != nil {
		a.unreadable++
		c.problem("archive: %s does not read to its end: %v", key, err)
	}
}

// judgeArchive checks exactly one copy of each accepted event, the layout,
// and each account's manifest chain against the objects.
func (c *Checker) judgeArchive(line, fail func(string, ...any)) {
	a := c.archive
	expected, missing, twice, unconfirmedTwice, rejectedSeen := 0, 0, 0, 0, 0
	var missingIDs []string
	for id, e := range c.events {
		n := a.got[id]
		switch e.state {
		case Rejected:
			if n > 0 {
				rejectedSeen++
				c.problem("archive: event %s was answered as not written, yet archived", id)
			}
		case Accepted:
			expected++
			if n == 0 {
				missing++
				if len(missingIDs) < 5 {
					missingIDs = append(missingIDs, id+" ("+e.account+")")
				}
			}
			if n > 1 {
				twice++
			}
		case Unconfirmed:
			if n > 1 {
				unconfirmedTwice++
			}
		}
	}
	// The manifest chains.
	chainBreaks, unlisted, listedTwice, mismatched, manifests := 0, 0, 0, 0, 0
	listed := map[string]int{}
	for _, acc := range sortedKeys(a.manifests) {
		ms := a.manifests[acc]
		manifests += len(ms)
		sort.Slice(ms, func(i, j int) bool { return ms[i].Seq < ms[j].Seq })
		for i, m := range ms {
			switch {
			case i == 0 && m.Prev != nil:
				chainBreaks++
				c.problem("archive: the first manifest of %s (%s) names a previous one", acc, m.key)
			case i > 0 && m.Seq != ms[i-1].Seq+1:
				chainBreaks++
				c.problem("archive: %s's manifests jump from %d to %d", acc, ms[i-1].Seq, m.Seq)
			case i > 0 && (m.Prev == nil || m.Prev.Key != ms[i-1].key || m.Prev.SHA256 != ms[i-1].sha):
				chainBreaks++
				c.problem("archive: manifest %s does not link to %s and its SHA-256", m.key, ms[i-1].key)
			}
			for _, o := range m.Objects {
				info := a.objects[o.Key]
				if info == nil {
					mismatched++
					c.problem("archive: manifest %s lists %s, which is not there", m.key, o.Key)
					continue
				}
				listed[o.Key]++
				if info.sha != o.SHA256 || info.size != o.Size || info.lines != o.Records {
					mismatched++
					c.problem("archive: %s is not what manifest %s lists (sha256, size or records)", o.Key, m.key)
				}
			}
		}
	}
	for _, key := range sortedKeys(a.objects) {
		switch n := listed[key]; {
		case n == 0:
			unlisted++
			c.problem("archive: %s is in no manifest", key)
		case n > 1:
			listedTwice++
			c.problem("archive: %s is listed by %d manifests", key, n)
		}
	}
	var lengths []string
	for _, l := range sortedIntKeys(a.windowLengths) {
		lengths = append(lengths, fmt.Sprintf("%ds×%d", l, a.windowLengths[l]))
	}
	line("archive: %d objects (windows %s), %d manifests, %d lines; %d accepted events, %d archived, %d missing, %d more than once; unconfirmed archived twice %d",
		len(a.objects), strings.Join(lengths, " "), manifests, a.lines, expected, expected-missing, missing, twice, unconfirmedTwice)
	line("archive: cross-tenant %d, wrong account %d, unknown ids %d, rejected-but-archived %d, masked-token mismatches %d, raw tokens %d, outside their window %d, bad names %d, unreadable %d, bad lines %d, conflicts %d",
		a.crossTenant, a.wrongAccount, a.unknownID, rejectedSeen, a.badToken, a.rawToken, a.outsideWindow, a.badName, a.unreadable, a.badLine, a.conflicts)
	line("archive: manifest chains: breaks %d, objects in no manifest %d, in two %d, not as listed %d", chainBreaks, unlisted, listedTwice, mismatched)
	if expected > 0 && len(a.objects) == 0 {
		fail("archive: no object at all")
	}
	if missing > 0 {
		fail("archive: %d accepted events not archived, e.g. %s", missing, strings.Join(missingIDs, ", "))
	}
	for _, bad := range []struct {
		n    int
		what string
	}{{twice, "accepted events archived more than once"}, {unconfirmedTwice, "unconfirmed events archived more than once"},
		{a.crossTenant, "events in another account's folder or manifest"}, {a.wrongAccount, "events with another account than posted"},
		{a.unknownID, "events never posted"}, {rejectedSeen, "rejected events archived"}, {a.badToken, "tokens not masked as documented"},
		{a.rawToken, "raw tokens"}, {a.outsideWindow, "events outside their object's window"}, {a.badName, "names off the documented layout"},
		{a.unreadable, "unreadable objects or manifests"}, {a.badLine, "lines that are not events"}, {a.conflicts, "conflict copies"},
		{chainBreaks, "breaks in a manifest chain"}, {unlisted, "objects in no manifest"}, {listedTwice, "objects in two manifests"},
		{mismatched, "manifest entries that do not match their object"}} {
		if bad.n > 0 {
			fail("archive: %d %s", bad.n, bad.what)
		}
	}
}

func sortedIntKeys(m map[int]int) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Ints(out)
	return out
}
