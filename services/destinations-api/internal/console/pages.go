package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// home sends an admin of one account to it; an operator, or an admin of
// several accounts, picks one.
func (c *Console) home(x *call) {
	accounts := x.s.principal.Accounts()
	if len(accounts) == 1 {
		http.Redirect(x.w, x.r, Prefix+"accounts/"+url.PathEscape(accounts[0])+"/", http.StatusSeeOther)
		return
	}
	more := false
	if accounts == nil {
		a := c.callAPI(x, http.MethodGet, "/v1/accounts?page_size=100", nil, nil)
		var list struct {
			Items []struct {
				Account string `json:"account"`
			} `json:"items"`
			Next string `json:"next_page_token"`
		}
		if !a.ok() || a.decode(&list) != nil {
			c.apiFailure(x, a)
			return
		}
		for _, it := range list.Items {
			accounts = append(accounts, it.Account)
		}
		more = list.Next != ""
	}
	f := fieldView{field: field{Label: "Account id", Input: "text"}, ID: "account", Value: x.r.URL.Query().Get("account")}
	c.render(x.w, x.s, http.StatusOK, "accounts", page{Title: "Accounts", Data: struct {
		Field    fieldView
		Accounts []string
		More     bool
	}{f, accounts, more}})
}

func (c *Console) goAccount(x *call) {
	acc := strings.TrimSpace(x.r.URL.Query().Get("account"))
	if acc == "" {
		http.Redirect(x.w, x.r, Prefix, http.StatusSeeOther)
		return
	}
	http.Redirect(x.w, x.r, Prefix+"accounts/"+url.PathEscape(acc)+"/", http.StatusSeeOther)
}

// auditLogs is the API's view of the account's settings.
type auditLogs struct {
	Streaming      bool     `json:"streaming"`
	Connections    []string `json:"connections"`
	StorageProfile string   `json:"storage_profile"`
	ETag           string   `json:"etag"`
}

// resource is the API's view of a connection or storage profile.
type resource struct {
	Name     string         `json:"name"`
	Type     string         `json:"type"`
	Enabled  bool           `json:"enabled"`
	Settings map[string]any `json:"settings"`
	ETag     string         `json:"etag"`
	// The filter and redaction (the form's Filter and redaction part; a
	// form without it sends them back as stored, so it never unsets them).
	Filter       string          `json:"filter,omitempty"`
	Redact       json.RawMessage `json:"redact,omitempty"`
	RedactionKey json.RawMessage `json:"redaction_key,omitempty"`
}

// resourceRow is a resource in a list.
type resourceRow struct {
	resource
	TypeTitle string
	Streamed  bool
}

func (c *Console) list(x *call, collection string) ([]resource, *apiAnswer) {
	var out []resource
	q := url.Values{"page_size": {"100"}}
	for {
		a := c.callAPI(x, http.MethodGet, apiPath("accounts", x.account, collection)+"?"+q.Encode(), nil, nil)
		if !a.ok() {
			return nil, &a
		}
		var pg struct {
			Items []resource `json:"items"`
			Next  string     `json:"next_page_token"`
		}
		if err := a.decode(&pg); err != nil {
			return nil, &apiAnswer{status: http.StatusBadGateway}
		}
		out = append(out, pg.Items...)
		if pg.Next == "" {
			return out, nil
		}
		q.Set("page_token", pg.Next)
	}
}

func typeTitle(r resource) string {
	if f := connectionForms[r.Type]; f != nil {
		return f.Title
	}
	if k, _ := r.Settings["kind"].(string); storageForms[k] != nil {
		return storageForms[k].Title
	}
	return r.Type
}

func (c *Console) settingsPage(x *call) {
	c.renderSettings(x, http.StatusOK, nil, nil, flashOf(x.r))
}

func flashOf(r *http.Request) string {
	switch r.URL.Query().Get("done") {
	case "saved":
		return "Saved. The change applies to the next events within seconds."
	case "deleted":
		return "Deleted."
	}
	return ""
}

// renderSettings shows the account's settings page; submitted and errs are
// a refused form's values and the API's errors by field.
func (c *Console) renderSettings(x *call, status int, submitted *auditLogs, a *apiAnswer, flash string) {
	al := c.callAPI(x, http.MethodGet, apiPath("accounts", x.account, "audit-logs"), nil, nil)
	var cur auditLogs
	if !al.ok() || al.decode(&cur) != nil {
		c.apiFailure(x, al)
		return
	}
	conns, failed := c.list(x, collConnections)
	if failed != nil {
		c.apiFailure(x, *failed)
		return
	}
	profiles, failed := c.list(x, collStorageProfiles)
	if failed != nil {
		c.apiFailure(x, *failed)
		return
	}
	shown := cur
	if submitted != nil {
		shown.Streaming, shown.Connections, shown.StorageProfile = submitted.Streaming, submitted.Connections, submitted.StorageProfile
	}
	errs := map[string]string{}
	var problems []problem
	connErr := ""
	if a != nil {
		e := a.err()
		for _, d := range e.Details {
			switch {
			case strings.HasPrefix(d.Field, "connections"):
				connErr = strings.TrimSpace(connErr + " " + d.Message)
				problems = append(problems, problem{ID: "connections", Label: "Connections", Message: d.Message})
			case d.Field == "storage_profile":
				errs[d.Field] = d.Message
				problems = append(problems, problem{ID: "storage_profile", Label: "Daily archive", Message: d.Message})
			default:
				problems = append(problems, problem{Message: d.Field + ": " + d.Message})
			}
		}
		if len(e.Details) == 0 {
			problems = append(problems, problem{Message: e.Message})
		}
	}
	rows := func(rs []resource) []resourceRow {
		out := make([]resourceRow, 0, len(rs))
		for _, r := range rs {
			out = append(out, resourceRow{resource: r, TypeTitle: typeTitle(r), Streamed: slices.Contains(shown.Connections, r.Name)})
		}
		return out
	}
	kinds := func(m map[string]*formKind) []*formKind {
		var out []*formKind
		for _, k := range sortedKeys(m) {
			out = append(out, m[k])
		}
		return out
	}
	c.render(x.w, x.s, status, "settings", page{Title: "Audit logs", Account: x.account, Flash: flash, Problems: problems,
		Data: struct {
			AuditLogs        auditLogs
			Connections      []resourceRow
			StorageProfiles  []resourceRow
			ConnectionKinds  []*formKind
			StorageKinds     []*formKind
			Errors           map[string]string
			ConnectionsError string
		}{shown, rows(conns), rows(profiles), kinds(connectionForms), kinds(storageForms), errs, connErr}})
}

func (c *Console) saveAuditLogs(x *call) {
	f := x.r.PostForm
	body := auditLogs{Streaming: f.Get("streaming") == "on", Connections: f["connections"], StorageProfile: f.Get("storage_profile")}
	if body.Connections == nil {
		body.Connections = []string{}
	}
	hdr := map[string]string{}
	if et := f.Get("etag"); et != "" {
		hdr["If-Match"] = et
	}
	a := c.callAPI(x, http.MethodPut, apiPath("accounts", x.account, "audit-logs"), struct {
		Streaming      bool     `json:"streaming"`
		Connections    []string `json:"connections"`
		StorageProfile string   `json:"storage_profile"`
	}{body.Streaming, body.Connections, body.StorageProfile}, hdr)
	if !a.ok() {
		c.renderSettings(x, a.status, &body, &a, "")
		return
	}
	http.Redirect(x.w, x.r, Prefix+"accounts/"+url.PathEscape(x.account)+"/?done=saved", http.StatusSeeOther)
}

// verdict is the answer of a test.
type verdict struct {
	Result            string `json:"result"`
	Code              string `json:"code"`
	Class             string `json:"class"`
	Message           string `json:"message"`
	DestinationStatus int    `json:"destination_status"`
	Attempts          int    `json:"attempts"`
	Filter            string `json:"filter"`
	FilterError       string `json:"filter_error"`
	DurationMS        int64  `json:"duration_ms"`
}

// resourceForm is what the resource page shows.
type resourceForm struct {
	Collection   string
	Noun         string
	New          bool
	Name         string
	ETag         string
	Kind         *formKind
	NameField    fieldView
	EnabledField *fieldView
	Fields       []fieldView
	Verdict      *verdict
	// Policy is the filter, redaction rules and redaction key.
	Policy  *policyForm
	Actions []string
}

func collectionOf(r *http.Request) string {
	if strings.Contains(r.URL.Path, "/"+collStorageProfiles) {
		return collStorageProfiles
	}
	return collConnections
}

func nounOf(collection string) string {
	if collection == collStorageProfiles {
		return "storage profile"
	}
	return "connection"
}

// formOf is the form of a resource of collection with type typ (a
// connection) or settings kind (a storage profile).
func formOf(collection, key string) *formKind {
	if collection == collStorageProfiles {
		return storageForms[key]
	}
	return connectionForms[key]
}

func (c *Console) newResource(x *call) {
	col := collectionOf(x.r)
	key := x.r.URL.Query().Get("type")
	if col == collStorageProfiles {
		key = x.r.URL.Query().Get("kind")
	}
	k := formOf(col, key)
	if k == nil {
		c.message(x.w, x.r, x.s, http.StatusNotFound, "Not found", "There is no such "+nounOf(col)+" type.")
		return
	}
	c.renderResource(x, http.StatusOK, col, k, nil, nil, nil, nil, "")
}

func (c *Console) resourcePage(x *call) {
	col := collectionOf(x.r)
	r, a := c.get(x, col, x.r.PathValue("name"))
	if r == nil {
		c.apiFailure(x, a)
		return
	}
	c.renderResource(x, http.StatusOK, col, formOfResource(col, r), r, nil, nil, nil, flashOf(x.r))
}

func (c *Console) get(x *call, col, name string) (*resource, apiAnswer) {
	a := c.callAPI(x, http.MethodGet, apiPath("accounts", x.account, col, name), nil, nil)
	if !a.ok() {
		return nil, a
	}
	var r resource
	if err := a.decode(&r); err != nil {
		return nil, apiAnswer{status: http.StatusBadGateway}
	}
	return &r, a
}

func formOfResource(col string, r *resource) *formKind {
	key := r.Type
	if col == collStorageProfiles {
		key, _ = r.Settings["kind"].(string)
	}
	if k := formOf(col, key); k != nil {
		return k
	}
	// A type this console has no form for: its settings stay as they are,
	// and only enabling, testing and deleting apply.
	return &formKind{Key: key, Title: key}
}

// renderResource shows a resource's form: stored (nil when new), after a
// refused save the submitted form and the API's answer, after a test its
// verdict.
func (c *Console) renderResource(x *call, status int, col string, k *formKind, stored *resource, submitted url.Values,
	failed *apiAnswer, v *verdict, flash string) {
	errs := map[string]string{}
	var problems []problem
	ids := map[string]string{"name": "Name", "enabled": "Enabled"}
	for _, f := range k.Fields {
		ids["settings."+f.Path] = f.Label
	}
	// The API names a rule by its place among the rules sent: the form's
	// rows, less the empty and removed ones.
	var rows []int
	if submitted != nil {
		rules, _ := rulesFromForm(submitted)
		for _, r := range rules {
			rows = append(rows, r.row)
		}
	}
	if failed != nil {
		e := failed.err()
		for _, d := range e.Details {
			if label, ok := ids[d.Field]; ok {
				errs[d.Field] = d.Message
				problems = append(problems, problem{ID: d.Field, Label: label, Message: d.Message})
			} else if id, label, ok := policyField(d.Field, rows); ok {
				errs[id] = d.Message
				problems = append(problems, problem{ID: id, Label: label, Message: d.Message})
			} else {
				problems = append(problems, problem{Message: d.Field + ": " + d.Message})
			}
		}
		if len(e.Details) == 0 {
			// Some errors name their field only in the message
			// ("name: ..."): place those by it too.
			field, msg, found := strings.Cut(e.Message, ": ")
			if label, ok := ids[field]; found && ok {
				errs[field] = msg
				problems = append(problems, problem{ID: field, Label: label, Message: msg})
			} else {
				problems = append(problems, problem{Message: e.Message})
			}
		}
	}
	var settings map[string]any
	fd := resourceForm{Collection: col, Noun: nounOf(col), New: stored == nil, Kind: k, Verdict: v}
	enabled := true
	if stored != nil {
		settings, fd.Name, fd.ETag, enabled = stored.Settings, stored.Name, stored.ETag, stored.Enabled
	}
	if submitted != nil {
		enabled = submitted.Get("enabled") == "on"
	}
	fd.Fields = fieldViews(k, settings, submitted, errs)
	fd.Policy, fd.Actions = policyView(stored, submitted, errs), redactActions
	fd.NameField = fieldView{field: field{Label: "Name", Input: "text",
		Help: "Lower-case letters, digits, - _ and ., up to 63 characters; it cannot be changed later."}, ID: "name", Error: errs["name"]}
	if submitted != nil {
		fd.NameField.Value = submitted.Get("name")
	}
	if col == collConnections {
		fd.EnabledField = &fieldView{field: field{Label: "Enabled", Input: "checkbox",
			Help: "A disabled connection keeps its settings but receives nothing."}, ID: "enabled", Checked: enabled, Error: errs["enabled"]}
	}
	title := "New " + fd.Noun
	if stored != nil {
		title = stored.Name
	}
	c.render(x.w, x.s, status, "resource", page{Title: title, Account: x.account, Flash: flash, Problems: problems, Data: fd})
}

func (c *Console) saveResource(x *call) {
	col := collectionOf(x.r)
	f := x.r.PostForm
	name := strings.TrimSpace(f.Get("name"))
	etag := f.Get("etag")
	var stored *resource
	var k *formKind
	if etag != "" {
		var a apiAnswer
		if stored, a = c.get(x, col, name); stored == nil {
			c.apiFailure(x, a)
			return
		}
		k = formOfResource(col, stored)
	} else if k = formOf(col, f.Get("kind")); k == nil {
		c.message(x.w, x.r, x.s, http.StatusBadRequest, "Bad request", "There is no such "+nounOf(col)+" type.")
		return
	}
	if name == "" {
		a := apiAnswer{status: http.StatusBadRequest, body: []byte(`{"error":{"code":"invalid_argument","message":"name: is required"}}`)}
		c.renderResource(x, a.status, col, k, nil, f, &a, nil, "")
		return
	}
	var storedSettings map[string]any
	if stored != nil {
		storedSettings = stored.Settings
	}
	settings := settingsFrom(k, storedSettings, f)
	body := map[string]any{"settings": settings}
	if col == collConnections {
		body["type"] = k.Key
		body["enabled"] = f.Get("enabled") == "on"
		if stored != nil {
			body["type"] = stored.Type
		}
	} else if stored == nil {
		settings["kind"] = k.Key
	}
	switch {
	case f.Get("policy") == "1":
		if _, keepErrs := rulesFromForm(f); len(keepErrs) > 0 {
			a := keepFailure(f, keepErrs)
			c.renderResource(x, a.status, col, k, stored, f, &a, nil, "")
			return
		}
		policyFromForm(body, f, stored)
	case stored != nil:
		// A form without the policy's inputs keeps it as stored.
		keepPolicy(body, stored)
	}
	hdr := map[string]string{"If-None-Match": "*"}
	if stored != nil {
		hdr = map[string]string{"If-Match": etag}
	}
	a := c.callAPI(x, http.MethodPut, apiPath("accounts", x.account, col, name), body, hdr)
	if !a.ok() {
		c.renderResource(x, a.status, col, k, stored, f, &a, nil, "")
		return
	}
	http.Redirect(x.w, x.r, Prefix+"accounts/"+url.PathEscape(x.account)+"/"+col+"/"+url.PathEscape(name)+"?done=saved", http.StatusSeeOther)
}

// keepFailure is the answer to a form whose Keep values are not numbers,
// in the API's form, naming each rule as the API would.
func keepFailure(form url.Values, keepErrs map[int]string) apiAnswer {
	rules, _ := rulesFromForm(form)
	var e apiError
	e.Code, e.Message = "invalid_argument", "the redaction rules are not valid"
	for i, r := range rules {
		if msg, ok := keepErrs[r.row]; ok {
			e.Details = append(e.Details, struct {
				Field   string `json:"field"`
				Message string `json:"message"`
			}{fmt.Sprintf("redact[%d].keep", i), msg})
		}
	}
	body, _ := json.Marshal(map[string]any{"error": e})
	return apiAnswer{status: http.StatusBadRequest, body: body}
}

// keepPolicy has a save keep the resource's filter, redaction rules and
// redaction key as stored (the key by {"set": true}: it is write-only).
func keepPolicy(body map[string]any, stored *resource) {
	if stored.Filter != "" {
		body["filter"] = stored.Filter
	}
	if len(stored.Redact) > 0 {
		body["redact"] = stored.Redact
	}
	if len(stored.RedactionKey) > 0 && string(stored.RedactionKey) != "null" {
		body["redaction_key"] = map[string]any{"set": true}
	}
}

func (c *Console) testResource(x *call) {
	col, name := collectionOf(x.r), x.r.PathValue("name")
	a := c.callAPI(x, http.MethodPost, apiPath("accounts", x.account, col, name, "test"), nil, nil)
	stored, ga := c.get(x, col, name)
	if stored == nil {
		c.apiFailure(x, ga)
		return
	}
	if !a.ok() {
		c.renderResource(x, a.status, col, formOfResource(col, stored), stored, nil, &a, nil, "")
		return
	}
	var v verdict
	if err := a.decode(&v); err != nil {
		c.apiFailure(x, apiAnswer{status: http.StatusBadGateway})
		return
	}
	c.renderResource(x, http.StatusOK, col, formOfResource(col, stored), stored, nil, nil, &v, "")
}

func (c *Console) deleteResource(x *call) {
	col, name := collectionOf(x.r), x.r.PathValue("name")
	hdr := map[string]string{}
	if et := x.r.PostForm.Get("etag"); et != "" {
		hdr["If-Match"] = et
	}
	a := c.callAPI(x, http.MethodDelete, apiPath("accounts", x.account, col, name), nil, hdr)
	if !a.ok() {
		stored, ga := c.get(x, col, name)
		if stored == nil {
			c.apiFailure(x, ga)
			return
		}
		c.renderResource(x, a.status, col, formOfResource(col, stored), stored, nil, &a, nil, "")
		return
	}
	http.Redirect(x.w, x.r, Prefix+"accounts/"+url.PathEscape(x.account)+"/?done=deleted", http.StatusSeeOther)
}

// statusItem is one destination on the status page.
type statusItem struct {
	ID, Name, Collection, TypeTitle string
	Enabled, Routed                 bool
	State, StateText                string
	FailedSince, LastSuccess        string
	LastError, LastErrorAt          string
	OldestUndelivered               string
	DeliveredToday, Parked          int64
	DeadLettered                    int64
}

func (c *Console) statusPage(x *call) {
	var items []statusItem
	for _, col := range []string{collConnections, collStorageProfiles} {
		rs, failed := c.list(x, col)
		if failed != nil {
			c.apiFailure(x, *failed)
			return
		}
		for i, r := range rs {
			a := c.callAPI(x, http.MethodGet, apiPath("accounts", x.account, col, r.Name, "status"), nil, nil)
			if !a.ok() {
				continue // deleted meanwhile
			}
			var st struct {
				Enabled           bool       `json:"enabled"`
				Routed            bool       `json:"routed"`
				State             string     `json:"state"`
				FailedSince       *time.Time `json:"failed_since"`
				LastSuccess       *time.Time `json:"last_success"`
				LastError         string     `json:"last_error"`
				LastErrorAt       *time.Time `json:"last_error_at"`
				DeliveredToday    int64      `json:"delivered_today"`
				Parked            int64      `json:"parked"`
				DeadLettered      int64      `json:"dead_lettered"`
				OldestUndelivered *time.Time `json:"oldest_undelivered"`
			}
			if err := json.Unmarshal(a.body, &st); err != nil {
				continue
			}
			it := statusItem{ID: col + "-" + strconv.Itoa(i), Name: r.Name, Collection: col, TypeTitle: typeTitle(r),
				Enabled: st.Enabled, Routed: st.Routed, State: st.State, LastError: st.LastError,
				DeliveredToday: st.DeliveredToday, Parked: st.Parked, DeadLettered: st.DeadLettered,
				FailedSince: stamp(st.FailedSince), LastSuccess: stamp(st.LastSuccess), LastErrorAt: stamp(st.LastErrorAt),
				OldestUndelivered: stamp(st.OldestUndelivered)}
			switch st.State {
			case "healthy":
				it.StateText = "Healthy"
			case "failed":
				it.StateText = "Failed"
			default:
				it.State, it.StateText = "unknown", "No report yet"
			}
			items = append(items, it)
		}
	}
	c.render(x.w, x.s, http.StatusOK, "status", page{Title: "Status", Account: x.account,
		Refresh: int(c.cfg.StatusRefresh / time.Second), Data: struct {
			Items  []statusItem
			ReadAt string
		}{items, c.now().UTC().Format("15:04:05 UTC")}})
}

func stamp(t *time.Time) string {
	if t == nil || t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}
