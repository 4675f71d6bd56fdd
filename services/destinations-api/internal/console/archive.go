package console

import (
	"net/http"
	"net/url"
)

// archiveDay is a day of the API's GET .../archive/days.
type archiveDay struct {
	Date         string `json:"date"`
	State        string `json:"state"`
	Events       int64  `json:"events"`
	Objects      int    `json:"objects"`
	Addenda      int    `json:"addenda"`
	KeyID        string `json:"key_id"`
	ProblemCount int    `json:"problem_count"`
	Problems     []struct {
		Kind    string `json:"kind"`
		Key     string `json:"key"`
		Message string `json:"message"`
	} `json:"problems"`
	// Policy: the storage profile's filter or redaction applied to the
	// day (deliberate, not a problem).
	Policy *struct {
		Filtered int64 `json:"filtered"`
		Partial  bool  `json:"partial"`
		Policies []struct {
			Version string `json:"version"`
			Filter  string `json:"filter"`
			Redact  []struct {
				Path   string `json:"path"`
				Action string `json:"action"`
				Keep   int    `json:"keep"`
			} `json:"redact"`
			Filtered int64 `json:"filtered"`
		} `json:"policies"`
	} `json:"policy"`
	StateText string `json:"-"`
	Class     string `json:"-"`
}

// archiveDays is the API's answer.
type archiveDays struct {
	StorageProfile    string       `json:"storage_profile"`
	From              string       `json:"from"`
	To                string       `json:"to"`
	SignaturesChecked bool         `json:"signatures_checked"`
	KeyIDs            []string     `json:"key_ids"`
	Note              string       `json:"note"`
	Days              []archiveDay `json:"days"`
	OtherProblems     int          `json:"other_problems"`
}

// dayStates are the words and the look of each day's state.
var dayStates = map[string][2]string{
	"verified":    {"Verified", "healthy"},
	"quiet":       {"Verified: no events", "healthy"},
	"missing":     {"Digest missing", "failed"},
	"problem":     {"Problem", "failed"},
	"unverified":  {"Unverified: no public key configured", "unknown"},
	"not_covered": {"Not archived", "unknown"},
}

// archivePage lists the account's archive days with their digests'
// verification state, as the API verifies them.
func (c *Console) archivePage(x *call) {
	q := url.Values{}
	from, to := x.r.URL.Query().Get("from"), x.r.URL.Query().Get("to")
	if from != "" {
		q.Set("from", from)
	}
	if to != "" {
		q.Set("to", to)
	}
	target := apiPath("accounts", x.account, "archive", "days")
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	a := c.callAPI(x, http.MethodGet, target, nil, nil)
	var v archiveDays
	errs := map[string]string{}
	var problems []problem
	status := http.StatusOK
	noArchive := ""
	switch {
	case a.ok():
		if err := a.decode(&v); err != nil {
			c.apiFailure(x, apiAnswer{status: http.StatusBadGateway})
			return
		}
		from, to = v.From, v.To
	case a.status == http.StatusBadRequest:
		status = a.status
		e := a.err()
		for _, d := range e.Details {
			label := map[string]string{"from": "From", "to": "To"}[d.Field]
			if label == "" {
				problems = append(problems, problem{Message: d.Field + ": " + d.Message})
				continue
			}
			errs[d.Field] = d.Message
			problems = append(problems, problem{ID: d.Field, Label: label, Message: d.Message})
		}
		if len(e.Details) == 0 {
			problems = append(problems, problem{Message: e.Message})
		}
	case a.status == http.StatusConflict && a.err().Code == "no_archive":
		noArchive = a.err().Message
	default:
		status = a.status
		problems = append(problems, problem{Message: a.err().Message})
	}
	for i := range v.Days {
		d := &v.Days[i]
		st, ok := dayStates[d.State]
		if !ok {
			st = [2]string{d.State, "unknown"}
		}
		d.StateText, d.Class = st[0], st[1]
	}
	fromField := fieldView{field: field{Label: "From", Input: "text", Help: "First day, YYYY-MM-DD (UTC)."}, ID: "from", Value: from, Error: errs["from"]}
	toField := fieldView{field: field{Label: "To", Input: "text", Help: "Last day, YYYY-MM-DD (UTC); at most 92 days in all."}, ID: "to", Value: to, Error: errs["to"]}
	c.render(x.w, x.s, status, "archive", page{Title: "Archive", Account: x.account, Problems: problems, Data: struct {
		Days      archiveDays
		Verified  bool
		NoArchive string
		From, To  fieldView
	}{v, a.ok(), noArchive, fromField, toField}})
}
