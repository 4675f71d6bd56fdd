package api

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/auditstream/auditstream/services/internal/archive"
	"github.com/auditstream/auditstream/services/internal/destinations"
)

// Day states of GET .../archive/days.
const (
	dayVerified   = "verified"    // a signed digest, everything it lists is in the store and unchanged
	dayQuiet      = "quiet"       // as verified, and the digest says the account had no event that day
	dayMissing    = "missing"     // the day is due a digest and has none
	dayProblem    = "problem"     // verification found something wrong with the day
	dayUnverified = "unverified"  // a digest, nothing found wrong, but no public key to check its signature
	dayNotCovered = "not_covered" // no digest expected: before the chain's start, after it ended, or not due yet
)

// maxDayProblems bounds the problems listed per day; problem_count has them all.
const maxDayProblems = 20

// noKeyNote is what days say when no public key is configured.
const noKeyNote = "unverified: no public key configured (archive.public_keys); signatures were not checked"

type archiveProblem struct {
	Kind    string `json:"kind"`
	Key     string `json:"key"`
	Message string `json:"message"`
}

type archiveDay struct {
	Date         string           `json:"date"`
	State        string           `json:"state"`
	Events       int64            `json:"events"`
	Objects      int              `json:"objects"`
	Addenda      int              `json:"addenda"`
	KeyID        string           `json:"key_id,omitempty"`
	ProblemCount int              `json:"problem_count"`
	Problems     []archiveProblem `json:"problems"`
	// Policy is set when the day's manifests record the storage profile's
	// filter or redaction: the day holds fewer events, or redacted ones,
	// on purpose. It is not a problem.
	Policy *archiveDayPolicy `json:"policy,omitempty"`
}

// archiveDayPolicy is what the storage profile's policies did to a day.
type archiveDayPolicy struct {
	Filtered int64 `json:"filtered"`
	// Partial: some of the day's objects were written without a policy.
	Partial  bool                     `json:"partial"`
	Policies []archive.ManifestPolicy `json:"policies"`
}

// archiveDaysView is the answer of GET .../archive/days (ArchiveDays in
// openapi.json).
type archiveDaysView struct {
	Account           string       `json:"account"`
	StorageProfile    string       `json:"storage_profile"`
	From              string       `json:"from"`
	To                string       `json:"to"`
	SignaturesChecked bool         `json:"signatures_checked"`
	KeyIDs            []string     `json:"key_ids"`
	Note              string       `json:"note,omitempty"`
	Days              []archiveDay `json:"days"`
	OtherProblems     int          `json:"other_problems"`
	VerifiedAt        time.Time    `json:"verified_at"`
	DurationMS        int64        `json:"duration_ms"`
}

// loadArchiveKeys reads the public keys of archive.public_keys.
func loadArchiveKeys(files []string) ([]ed25519.PublicKey, error) {
	var out []ed25519.PublicKey
	for i, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("archive.public_keys[%d]: %w", i, err)
		}
		pub, err := archive.ParsePublicKey(data)
		if err != nil {
			return nil, fmt.Errorf("archive.public_keys[%d] %s: %w", i, f, err)
		}
		out = append(out, pub)
	}
	return out, nil
}

// dayRange reads from and to (UTC days, inclusive): by default the last 14
// days up to today, at most archive.max_days.
func (a *API) dayRange(r *request) (from, to time.Time, _ *apiError) {
	q := r.URL.Query()
	var f fieldErrors
	parse := func(name string) (time.Time, bool) {
		s := q.Get(name)
		if s == "" {
			return time.Time{}, false
		}
		t, err := time.Parse(time.DateOnly, s)
		if err != nil {
			f.add(name, "%q is not a date: want YYYY-MM-DD (a UTC day)", truncate(s))
			return time.Time{}, false
		}
		return t, true
	}
	from, hasFrom := parse("from")
	to, hasTo := parse("to")
	if f.any() {
		return from, to, f.err().(*apiError)
	}
	const defaultDays = 14
	switch {
	case !hasTo && hasFrom:
		to = from.AddDate(0, 0, defaultDays-1)
		if today := a.now().UTC().Truncate(24 * time.Hour); to.After(today) && !from.After(today) {
			to = today
		}
	case !hasTo:
		to = a.now().UTC().Truncate(24 * time.Hour)
	}
	if !hasFrom {
		from = to.AddDate(0, 0, -(defaultDays - 1))
	}
	maxDays := a.cfg.Archive.MaxDays
	switch days := int(to.Sub(from)/(24*time.Hour)) + 1; {
	case from.After(to):
		f.add("from", "%s is after to (%s)", from.Format(time.DateOnly), to.Format(time.DateOnly))
	case days > maxDays:
		f.add("to", "the range from %s to %s is %d days; at most %d (archive.max_days)", from.Format(time.DateOnly), to.Format(time.DateOnly), days, maxDays)
	}
	if f.any() {
		return from, to, f.err().(*apiError)
	}
	return from, to, nil
}

// archiveDays is GET /v1/accounts/{account}/archive/days: the account's
// days in the bucket of its archive's storage profile, each with the state
// the archive package's verification gives it.
func (a *API) archiveDays(r *request) (int, any, *apiError) {
	from, to, aerr := a.dayRange(r)
	if aerr != nil {
		return 0, nil, aerr
	}
	cfg := a.store.Get(r.account)
	var name string
	var res *destinations.Resource
	if cfg != nil && cfg.AuditLogs.StorageProfile != "" {
		name = cfg.AuditLogs.StorageProfile
		res = cfg.StorageProfiles[name]
	}
	if res == nil {
		return 0, nil, errorf(http.StatusConflict, "no_archive",
			"account %s has no archive: choose a storage profile in its audit-log settings (storage_profile)", r.account)
	}
	release, wait, busy := a.verifies.begin(r.account, r.account+"/archive", time.Now(), a.cfg.API.TestsPerMinute)
	if busy {
		return 0, nil, errorf(http.StatusConflict, "verify_in_progress", "the account's archive is being verified; wait for that answer")
	}
	if release == nil {
		secs := max(1, int((wait+time.Second-1)/time.Second))
		r.w.Header().Set("Retry-After", strconv.Itoa(secs))
		return 0, nil, errorf(http.StatusTooManyRequests, "rate_limited",
			"at most %d archive verifications a minute per account (api.tests_per_minute); retry in %d s", a.cfg.API.TestsPerMinute, secs)
	}
	defer release()

	start := a.now()
	conn := destinations.NewAPIConnection(r.account, destinations.CollectionStorageProfiles, name, res.Type, res.Settings,
		destinations.SecretboxOpener(a.sealer.box))
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.Archive.Timeout)
	defer cancel()
	// The store is opened as a test opens it, which is as the archiver does.
	st, secrets, err := openStorage(ctx, conn)
	if err != nil {
		return 0, nil, a.archiveFailure(ctx, r, name, err, secrets)
	}
	defer func() { _ = st.Close() }()
	rep, err := archive.Verify(ctx, st, archive.VerifyOptions{Accounts: []string{r.account}, From: from, To: to,
		PublicKeys: a.archiveKeys, Now: start, DigestDue: a.cfg.Archive.DigestDue})
	if err != nil {
		return 0, nil, a.archiveFailure(ctx, r, name, err, secrets)
	}
	v := archiveDaysView{Account: r.account, StorageProfile: name, From: from.Format(time.DateOnly), To: to.Format(time.DateOnly),
		SignaturesChecked: len(a.archiveKeys) > 0, KeyIDs: []string{}, Days: []archiveDay{}, VerifiedAt: start.UTC()}
	for _, k := range a.archiveKeys {
		v.KeyIDs = append(v.KeyIDs, archive.KeyID(k))
	}
	if !v.SignaturesChecked {
		v.Note = noKeyNote
	}
	v.Days, v.OtherProblems = dayStates(r.account, from, to, rep, v.SignaturesChecked, secrets)
	v.DurationMS = a.now().Sub(start).Milliseconds()
	a.log.Info("archive days verified", zap.String("account", r.account), zap.String("storage_profile", name),
		zap.String("from", v.From), zap.String("to", v.To), zap.Int("problems", len(rep.Problems)),
		zap.Int("objects", rep.Objects), zap.Int64("duration_ms", v.DurationMS), zap.String("actor", r.p.Name))
	return http.StatusOK, v, nil
}

// dayStates gives each day from to to (newest first) its state, counts and
// problems; problems of other days, or of none, are only counted.
func dayStates(account string, from, to time.Time, rep *archive.Report, checked bool, secrets []string) ([]archiveDay, int) {
	byDay := map[time.Time]archive.DayDigest{}
	for _, d := range rep.Days {
		byDay[d.Day] = d
	}
	policies := map[string]archive.DayPolicy{}
	for _, p := range rep.Policies {
		policies[p.Day] = p
	}
	problems := map[time.Time][]archive.Problem{}
	other := 0
	for _, p := range rep.Problems {
		day, ok := p.Day()
		if !ok || day.Before(from) || day.After(to) {
			other++
			continue
		}
		problems[day] = append(problems[day], p)
	}
	var out []archiveDay
	for day := to; !day.Before(from); day = day.AddDate(0, 0, -1) {
		d, digested := byDay[day]
		ad := archiveDay{Date: day.Format(time.DateOnly), Events: d.Events, Objects: d.Objects, Addenda: d.Addenda,
			KeyID: d.KeyID, Problems: []archiveProblem{}}
		// A digested day carries its policy; others are looked up.
		p, ok := d.Policy, d.Policy != nil
		if !digested {
			var dp archive.DayPolicy
			dp, ok = policies[ad.Date]
			p = &dp
		}
		if ok {
			ad.Policy = &archiveDayPolicy{Filtered: p.Filtered, Partial: p.Whole > 0, Policies: p.Policies}
		}
		missing := false
		for _, p := range problems[day] {
			missing = missing || p.Kind == archive.ProblemDigestMissing && p.Key == archive.DigestKey(account, day, 0)
			ad.ProblemCount++
			if len(ad.Problems) < maxDayProblems {
				ad.Problems = append(ad.Problems, archiveProblem{Kind: p.Kind, Key: cleanMessage(p.Key, secrets),
					Message: cleanMessage(p.Detail, secrets)})
			}
		}
		switch {
		case missing:
			ad.State = dayMissing
		case ad.ProblemCount > 0:
			ad.State = dayProblem
		case !digested || !d.Digest:
			ad.State = dayNotCovered
		case !checked:
			ad.State = dayUnverified
		case d.Empty:
			ad.State = dayQuiet
		default:
			ad.State = dayVerified
		}
		out = append(out, ad)
	}
	return out, other
}

// archiveFailure is the answer when the bucket could not be read: the
// code and message a test of the profile would give (no secret, no key
// ring detail), or the time limit.
func (a *API) archiveFailure(ctx context.Context, r *request, profile string, err error, secrets []string) *apiError {
	timedOut := ctx.Err() != nil && r.Context().Err() == nil
	v := judge(err, destinations.TypeStorage, timedOut, a.cfg.Archive.Timeout, secrets)
	a.log.Warn("archive days not verified", zap.String("account", r.account), zap.String("storage_profile", profile),
		zap.String("code", v.Code), zap.String("error", cleanMessage(err.Error(), secrets)))
	if timedOut {
		return errorf(http.StatusGatewayTimeout, "timeout",
			"the verification did not finish within %s (archive.timeout); ask for fewer days", a.cfg.Archive.Timeout)
	}
	return errorf(http.StatusBadGateway, "storage_error", "the bucket of storage profile %s could not be read (%s): %s", profile, v.Code, v.Message)
}
