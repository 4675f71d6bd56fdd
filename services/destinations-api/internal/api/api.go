package api

import (
	"bytes"
	"context"
	"crypto/ed25519"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/proto/producer"
	"github.com/auditstream/auditstream/services/internal/bearer"
	"github.com/auditstream/auditstream/services/internal/connstatus"
	"github.com/auditstream/auditstream/services/internal/destinations"
)

// MaxBodyBytes bounds a request body.
const MaxBodyBytes = 64 << 10

//go:embed openapi.json
var openAPIDocument []byte

// API serves /v1. It is safe for concurrent use.
type API struct {
	cfg     Config
	store   *destinations.Store
	status  *connstatus.Reader // the status topic the consumers publish to
	sealer  sealer
	auth    *bearer.Authenticator
	events  *producer.Producer
	file    func() *destinations.Table // the destinations file, if any
	log     *zap.Logger
	metrics apiMetrics
	now     func() time.Time
	tests   testGuard
	// archiveKeys verify the signatures of archive digests and manifests.
	archiveKeys []ed25519.PublicKey
	verifies    testGuard // archive verifications, bounded as tests are
}

type apiMetrics struct {
	requests      *prometheus.CounterVec
	auditFailures prometheus.Counter
}

func newAPIMetrics(reg prometheus.Registerer) apiMetrics {
	m := apiMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditstream_destinations_api_requests_total",
			Help: "Requests to the destinations API, by route and status code.",
		}, []string{"route", "code"}),
		auditFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "auditstream_destinations_api_audit_failures_total",
			Help: "Configuration changes applied whose audit event could not be written (answered 500).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.auditFailures)
	}
	return m
}

// Handler routes the API.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openAPIDocument)
	})
	route := func(pattern string, h func(*request) (int, any, *apiError)) {
		mux.Handle(pattern, a.serve(pattern, h))
	}
	route("GET /v1/accounts", a.listAccounts)
	for _, c := range []string{destinations.CollectionConnections, destinations.CollectionStorageProfiles} {
		base := "/v1/accounts/{account}/" + c
		route("GET "+base, a.listResources)
		route("GET "+base+"/{name}", a.getResource)
		route("PUT "+base+"/{name}", a.putResource)
		route("DELETE "+base+"/{name}", a.deleteResource)
		route("POST "+base+"/{name}/test", a.testResource)
		route("GET "+base+"/{name}/status", a.getStatus)
	}
	route("GET /v1/accounts/{account}/audit-logs", a.getAuditLogs)
	route("PUT /v1/accounts/{account}/audit-logs", a.putAuditLogs)
	route("GET /v1/accounts/{account}/archive/days", a.archiveDays)
	mux.Handle("/v1/", a.serve("unknown", func(*request) (int, any, *apiError) {
		return 0, nil, notFound("route")
	}))
	return mux
}

// Authenticate checks a bearer token as every request's is checked: the
// console's sign-in.
func (a *API) Authenticate(token string) (*bearer.Principal, string) {
	h := http.Header{}
	h.Set("Authorization", "Bearer "+token)
	return a.auth.Authenticate(h)
}

// request is one authenticated call.
type request struct {
	*http.Request
	w          http.ResponseWriter
	p          *bearer.Principal
	account    string
	collection string
	name       string
}

// serve authenticates, checks the account and the principal's access to it
// (another account's resources are answered 404, never 403, so a token
// learns nothing of accounts it does not manage), runs h and writes its
// answer as JSON.
func (a *API) serve(route string, h func(*request) (int, any, *apiError)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		status, body, err := a.handle(w, r, h)
		if err != nil {
			status = err.status
			writeError(w, err)
		} else {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(status)
			if body != nil {
				_ = json.NewEncoder(w).Encode(body)
			}
		}
		a.metrics.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	})
}

func (a *API) handle(w http.ResponseWriter, r *http.Request, h func(*request) (int, any, *apiError)) (int, any, *apiError) {
	p := bearer.FromContext(r.Context())
	why := ""
	if p == nil {
		p, why = a.auth.Authenticate(r.Header)
	}
	if p == nil {
		return 0, nil, errorf(http.StatusUnauthorized, "unauthenticated", "%s", why)
	}
	if err := a.store.IsReady(); err != nil {
		// Before the topic is read, an existing resource would read as
		// missing.
		w.Header().Set("Retry-After", "1")
		return 0, nil, errorf(http.StatusServiceUnavailable, "unavailable", "starting: the destinations topic is not read to its end yet; retry shortly")
	}
	req := &request{Request: r, w: w, p: p, account: r.PathValue("account"), name: r.PathValue("name")}
	if rest, ok := strings.CutPrefix(r.URL.Path, "/v1/accounts/"+req.account+"/"); ok && req.account != "" {
		req.collection, _, _ = strings.Cut(rest, "/")
	}
	if req.account != "" {
		if !destinations.ValidAccountID(req.account) {
			return 0, nil, errorf(http.StatusBadRequest, "invalid_argument", "account: must be 1-%d characters of [A-Za-z0-9._:-]", destinations.MaxAccountIDLength)
		}
		if !p.MayAccess(req.account) {
			return 0, nil, notFound("account " + req.account)
		}
	}
	if req.name != "" && !destinations.ValidName(req.name) {
		return 0, nil, errorf(http.StatusBadRequest, "invalid_argument", "name: must match [a-z0-9][a-z0-9-_.]{0,62}")
	}
	return h(req)
}

// kindOf is the kind a resource of collection with type typ has.
func kindOf(collection, typ string) (*kind, *apiError) {
	if collection == destinations.CollectionStorageProfiles {
		if typ != "" && typ != destinations.TypeStorage {
			return nil, invalid("type", "must be %q for a storage profile (or left out)", destinations.TypeStorage)
		}
		return storageKind, nil
	}
	k := connectionKinds[typ]
	if k == nil {
		if typ == "" {
			return nil, invalid("type", "is required: one of %s", strings.Join(connectionTypes(), ", "))
		}
		return nil, invalid("type", "%q is not a connection type: one of %s", truncate(typ), strings.Join(connectionTypes(), ", "))
	}
	return k, nil
}

func invalid(field, format string, args ...any) *apiError {
	var f fieldErrors
	f.add(field, format, args...)
	return f.err().(*apiError)
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

func resourcesOf(cfg *destinations.AccountConfig, collection string) map[string]*destinations.Resource {
	if cfg == nil {
		return nil
	}
	if collection == destinations.CollectionStorageProfiles {
		return cfg.StorageProfiles
	}
	return cfg.Connections
}

func kindLabel(collection string) string {
	if collection == destinations.CollectionStorageProfiles {
		return "storage profile"
	}
	return "connection"
}

// page is a list answer.
type page[T any] struct {
	Items         []T    `json:"items"`
	NextPageToken string `json:"next_page_token,omitempty"`
}

// paginate returns the page of sorted names after the request's page token.
func (a *API) paginate(r *request, names []string) ([]string, string, *apiError) {
	size := 50
	if s := r.URL.Query().Get("page_size"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > a.cfg.API.MaxPageSize {
			return nil, "", invalid("page_size", "must be between 1 and %d", a.cfg.API.MaxPageSize)
		}
		size = n
	}
	slices.Sort(names)
	if tok := r.URL.Query().Get("page_token"); tok != "" {
		after, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil || len(after) == 0 {
			return nil, "", invalid("page_token", "is not a token this API returned")
		}
		i, _ := slices.BinarySearch(names, string(after))
		for i < len(names) && names[i] <= string(after) {
			i++
		}
		names = names[i:]
	}
	next := ""
	if len(names) > size {
		names = names[:size]
		next = base64.RawURLEncoding.EncodeToString([]byte(names[size-1]))
	}
	return names, next, nil
}

func (a *API) listAccounts(r *request) (int, any, *apiError) {
	var names []string
	for account := range a.store.Accounts() {
		if r.p.MayAccess(account) {
			names = append(names, account)
		}
	}
	names, next, err := a.paginate(r, names)
	if err != nil {
		return 0, nil, err
	}
	type accountView struct {
		Account string `json:"account"`
	}
	out := page[accountView]{Items: []accountView{}, NextPageToken: next}
	for _, n := range names {
		out.Items = append(out.Items, accountView{n})
	}
	return http.StatusOK, out, nil
}

func (a *API) listResources(r *request) (int, any, *apiError) {
	res := resourcesOf(a.store.Get(r.account), r.collection)
	names := make([]string, 0, len(res))
	for n := range res {
		names = append(names, n)
	}
	names, next, err := a.paginate(r, names)
	if err != nil {
		return 0, nil, err
	}
	out := page[resourceView]{Items: []resourceView{}, NextPageToken: next}
	for _, n := range names {
		out.Items = append(out.Items, view(r.collection, r.account, n, res[n]))
	}
	return http.StatusOK, out, nil
}

func (a *API) getResource(r *request) (int, any, *apiError) {
	res := resourcesOf(a.store.Get(r.account), r.collection)[r.name]
	if res == nil {
		return 0, nil, notFound(kindLabel(r.collection) + " " + r.name)
	}
	v := view(r.collection, r.account, r.name, res)
	r.w.Header().Set("ETag", v.ETag)
	if match := r.Header.Get("If-None-Match"); match != "" && etagMatches(match, v.ETag) {
		return http.StatusNotModified, nil, nil
	}
	return http.StatusOK, v, nil
}

// errUnchanged ends an update that would write what is in force already.
var errUnchanged = errors.New("unchanged")

func (a *API) putResource(r *request) (int, any, *apiError) {
	var body resourceBody
	if err := decodeBody(r, &body); err != nil {
		return 0, nil, err
	}
	if body.Name != "" && body.Name != r.name {
		return 0, nil, invalid("name", "%q differs from the name in the path", truncate(body.Name))
	}
	k, aerr := kindOf(r.collection, body.Type)
	if aerr != nil {
		return 0, nil, aerr
	}
	// A name means one thing: the file's connections (storage ones too)
	// are the installation's, and an account's resources may not take
	// their names.
	if file := a.file(); file != nil && file.Lookup(r.name) != nil {
		return 0, nil, errorf(http.StatusConflict, "already_exists",
			"name: %q is a connection of the installation's destinations file; choose another name", r.name)
	}
	enabled := body.Enabled == nil || *body.Enabled
	var before *resourceView
	created := false
	cfg, err := a.update(r, func(cur *destinations.AccountConfig, next int64) (*destinations.AccountConfig, error) {
		if cur == nil {
			cur = &destinations.AccountConfig{}
		}
		res := resourcesOf(cur, r.collection)
		old := res[r.name]
		if err := preconditions(r, old != nil, etagOf(r, old)); err != nil {
			return nil, err
		}
		if old == nil && len(res) >= limitOf(r.collection) {
			return nil, errorf(http.StatusConflict, "limit_reached", "an account has at most %d %ss", limitOf(r.collection), kindLabel(r.collection))
		}
		p, err := a.prepare(r.Context(), k, r.account, r.name, body.Settings, old)
		if err != nil {
			return nil, err
		}
		pol, err := a.preparePolicy(r.Context(), r.account, r.collection, r.name, &body, old)
		if err != nil {
			return nil, err
		}
		now := a.now().UTC()
		nr := &destinations.Resource{Type: k.typ, Enabled: enabled, Settings: p.stored, Revision: next, CreatedAt: now, UpdatedAt: now,
			Filter: pol.filter, Redact: pol.redact, RedactionKey: pol.key}
		if old != nil {
			v := view(r.collection, r.account, r.name, old)
			before = &v
			if old.Type == nr.Type && old.Enabled == nr.Enabled && sameJSON(old.Settings, nr.Settings) && samePolicy(old, pol) {
				return nil, errUnchanged
			}
			nr.CreatedAt = old.CreatedAt
		}
		created = old == nil
		if r.collection == destinations.CollectionStorageProfiles {
			if cur.StorageProfiles == nil {
				cur.StorageProfiles = map[string]*destinations.Resource{}
			}
			cur.StorageProfiles[r.name] = nr
		} else {
			if cur.Connections == nil {
				cur.Connections = map[string]*destinations.Resource{}
			}
			cur.Connections[r.name] = nr
		}
		return cur, nil
	})
	if errors.Is(err, errUnchanged) {
		return a.getResource(r)
	}
	if err != nil {
		return 0, nil, toAPIError(err)
	}
	after := view(r.collection, r.account, r.name, resourcesOf(cfg, r.collection)[r.name])
	status, action := http.StatusOK, "update-audit-log-"
	if created {
		status, action = http.StatusCreated, "create-audit-log-"
		r.w.Header().Set("Location", r.URL.Path)
	}
	r.w.Header().Set("ETag", after.ETag)
	c := change{account: r.account, action: action + actionNoun(r.collection), targetType: targetType(r.collection),
		targetID: r.name, status: status, after: after}
	if before != nil {
		c.before = before
	}
	if err := a.record(r.Context(), r.Request, r.p, c); err != nil {
		return 0, nil, a.unrecorded(err)
	}
	return status, after, nil
}

func (a *API) deleteResource(r *request) (int, any, *apiError) {
	var before resourceView
	_, err := a.update(r, func(cur *destinations.AccountConfig, _ int64) (*destinations.AccountConfig, error) {
		old := resourcesOf(cur, r.collection)[r.name]
		if old == nil {
			return nil, notFound(kindLabel(r.collection) + " " + r.name)
		}
		if err := preconditions(r, true, etagOf(r, old)); err != nil {
			return nil, err
		}
		al := cur.AuditLogs
		if r.collection == destinations.CollectionConnections && slices.Contains(al.Connections, r.name) ||
			r.collection == destinations.CollectionStorageProfiles && al.StorageProfile == r.name {
			return nil, errorf(http.StatusConflict, "in_use", "%s %s is in use by the account's audit-log settings; remove it there first", kindLabel(r.collection), r.name)
		}
		before = view(r.collection, r.account, r.name, old)
		delete(resourcesOf(cur, r.collection), r.name)
		return cur, nil
	})
	if err != nil {
		return 0, nil, toAPIError(err)
	}
	c := change{account: r.account, action: "delete-audit-log-" + actionNoun(r.collection), targetType: targetType(r.collection),
		targetID: r.name, status: http.StatusNoContent, before: before}
	if err := a.record(r.Context(), r.Request, r.p, c); err != nil {
		return 0, nil, a.unrecorded(err)
	}
	return http.StatusNoContent, nil, nil
}

// auditLogsView is the account's audit-log settings as the API shows them.
type auditLogsView struct {
	Streaming      bool      `json:"streaming"`
	Connections    []string  `json:"connections"`
	StorageProfile string    `json:"storage_profile"`
	ETag           string    `json:"etag"`
	UpdatedAt      time.Time `json:"updated_at,omitzero"`
}

type auditLogsBody struct {
	Streaming      bool     `json:"streaming"`
	Connections    []string `json:"connections"`
	StorageProfile string   `json:"storage_profile"`
}

func auditLogsOf(account string, cfg *destinations.AccountConfig) auditLogsView {
	v := auditLogsView{Connections: []string{}, ETag: destinations.ETag("audit-logs", account, "", 0)}
	if cfg != nil {
		al := cfg.AuditLogs
		v = auditLogsView{Streaming: al.Streaming, Connections: slices.Clone(al.Connections), StorageProfile: al.StorageProfile,
			ETag: destinations.ETag("audit-logs", account, "", al.Revision), UpdatedAt: al.UpdatedAt}
		if v.Connections == nil {
			v.Connections = []string{}
		}
	}
	return v
}

func (a *API) getAuditLogs(r *request) (int, any, *apiError) {
	v := auditLogsOf(r.account, a.store.Get(r.account))
	r.w.Header().Set("ETag", v.ETag)
	return http.StatusOK, v, nil
}

func (a *API) putAuditLogs(r *request) (int, any, *apiError) {
	var body auditLogsBody
	if err := decodeBody(r, &body); err != nil {
		return 0, nil, err
	}
	var before auditLogsView
	cfg, err := a.update(r, func(cur *destinations.AccountConfig, next int64) (*destinations.AccountConfig, error) {
		before = auditLogsOf(r.account, cur)
		if err := preconditions(r, true, before.ETag); err != nil {
			return nil, err
		}
		if cur == nil {
			cur = &destinations.AccountConfig{}
		}
		var f fieldErrors
		seen := map[string]bool{}
		for i, name := range body.Connections {
			field := fmt.Sprintf("connections[%d]", i)
			switch {
			case seen[name]:
				f.add(field, "%q is listed twice", truncate(name))
			case cur.Connections[name] == nil:
				f.add(field, "%q is not a connection of this account", truncate(name))
			}
			seen[name] = true
		}
		if body.StorageProfile != "" && cur.StorageProfiles[body.StorageProfile] == nil {
			f.add("storage_profile", "%q is not a storage profile of this account", truncate(body.StorageProfile))
		}
		if err := f.err(); err != nil {
			return nil, err
		}
		al := cur.AuditLogs
		if al.Streaming == body.Streaming && slices.Equal(al.Connections, body.Connections) && al.StorageProfile == body.StorageProfile {
			return nil, errUnchanged
		}
		cur.AuditLogs = destinations.AuditLogs{Streaming: body.Streaming, Connections: slices.Clone(body.Connections),
			StorageProfile: body.StorageProfile, Revision: next, UpdatedAt: a.now().UTC()}
		return cur, nil
	})
	if errors.Is(err, errUnchanged) {
		return a.getAuditLogs(r)
	}
	if err != nil {
		return 0, nil, toAPIError(err)
	}
	after := auditLogsOf(r.account, cfg)
	r.w.Header().Set("ETag", after.ETag)
	c := change{account: r.account, action: "update-audit-log-settings", targetType: TargetSettings, targetID: r.account,
		status: http.StatusOK, before: before, after: after}
	if err := a.record(r.Context(), r.Request, r.p, c); err != nil {
		return 0, nil, a.unrecorded(err)
	}
	return http.StatusOK, after, nil
}

// sameJSON reports whether two JSON objects hold the same values, whatever
// their members' order.
func sameJSON(a, b json.RawMessage) bool {
	x, errA := decodeObject(a)
	y, errB := decodeObject(b)
	return errA == nil && errB == nil && reflect.DeepEqual(x, y)
}

// update runs one change of the request's account through the store.
func (a *API) update(r *request, fn func(cur *destinations.AccountConfig, next int64) (*destinations.AccountConfig, error)) (*destinations.AccountConfig, error) {
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.API.WriteTimeout)
	defer cancel()
	return a.store.Update(ctx, r.account, r.p.Name, fn)
}

func toAPIError(err error) *apiError {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, destinations.ErrConflict):
		return errorf(http.StatusConflict, "aborted", "the account's configuration was changed by another request at the same time; read it again and retry")
	case errors.Is(err, context.DeadlineExceeded):
		return errorf(http.StatusServiceUnavailable, "unavailable", "the destinations topic did not confirm the write in time; read the resource to see whether it applied, and retry")
	}
	return errorf(http.StatusServiceUnavailable, "unavailable", "the change could not be written: %v", err)
}

func (a *API) unrecorded(err error) *apiError {
	a.log.Error("configuration changed but its audit event was not written", zap.Error(err))
	return errorf(http.StatusInternalServerError, "internal",
		"the change was applied, but writing its audit event failed; the operator is alerted (auditstream_destinations_api_audit_failures_total)")
}

func actionNoun(collection string) string {
	if collection == destinations.CollectionStorageProfiles {
		return "storage-profile"
	}
	return "connection"
}

func targetType(collection string) string {
	if collection == destinations.CollectionStorageProfiles {
		return TargetStorageProfile
	}
	return TargetConnection
}

func limitOf(collection string) int {
	if collection == destinations.CollectionStorageProfiles {
		return destinations.MaxAccountStorageProfiles
	}
	return destinations.MaxAccountConnections
}

func etagOf(r *request, res *destinations.Resource) string {
	if res == nil {
		return ""
	}
	return destinations.ETag(r.collection, r.account, r.name, res.Revision)
}

// preconditions applies If-Match and If-None-Match to a resource that
// exists (with etag) or not.
func preconditions(r *request, exists bool, etag string) *apiError {
	if m := r.Header.Get("If-Match"); m != "" && (!exists || !etagMatches(m, etag)) {
		return errorf(http.StatusPreconditionFailed, "failed_precondition", "If-Match: the resource changed since it was read (or does not exist); read it again")
	}
	if m := r.Header.Get("If-None-Match"); m != "" && exists && etagMatches(m, etag) {
		return errorf(http.StatusPreconditionFailed, "failed_precondition", "If-None-Match: the resource exists already")
	}
	return nil
}

// etagMatches reports whether a header's list of entity tags names etag;
// "*" names any existing resource.
func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == etag {
			return true
		}
	}
	return false
}

// decodeBody reads a JSON body strictly into v.
func decodeBody(r *request, v any) *apiError {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		return errorf(http.StatusUnsupportedMediaType, "invalid_argument", "Content-Type must be application/json")
	}
	data, err := io.ReadAll(http.MaxBytesReader(r.w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return errorf(http.StatusRequestEntityTooLarge, "invalid_argument", "body is larger than %d bytes", MaxBodyBytes)
		}
		return errorf(http.StatusBadRequest, "invalid_argument", "read body: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errorf(http.StatusBadRequest, "invalid_argument", "body: %s", jsonProblem(err))
	}
	if dec.More() {
		return errorf(http.StatusBadRequest, "invalid_argument", "body: more than one JSON value")
	}
	return nil
}
