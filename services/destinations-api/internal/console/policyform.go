package console

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// emptyRules is how many empty rule rows the form offers: filling one adds
// a rule (no script needed).
const emptyRules = 2

// maxRuleRows bounds the rows a submitted form is read for.
const maxRuleRows = 64 + emptyRules

// redactActions are the actions of a redaction rule.
var redactActions = []string{"drop", "mask", "hash"}

// policyForm is a resource's filter, redaction rules and redaction key as
// the form shows them.
type policyForm struct {
	Filter fieldView
	Rules  []ruleRow
	Error  string // of the rules as a whole
	Key    fieldView
}

// ruleRow is one row of the rules table; Row is its number in the form
// (its inputs' names), Number the same from 1 for people.
type ruleRow struct {
	Row, Number                       int
	Path, Action, Keep                string
	Stored, Remove                    bool
	PathError, ActionError, KeepError string
}

// rule is a redaction rule as the API reads it.
type rule struct {
	Path   string `json:"path"`
	Action string `json:"action"`
	Keep   int    `json:"keep,omitempty"`
}

// formRule is a rule read from the form, with its row.
type formRule struct {
	rule
	row int
}

// rulesFromForm reads the rule rows of a submitted form: rows left empty
// or ticked Remove are left out; the others are the rules, in row order,
// so the API's redact[i] is the i-th. keepErrs are Keep values that are
// not whole numbers, by row.
func rulesFromForm(form url.Values) (rules []formRule, keepErrs map[int]string) {
	for row := 0; row < maxRuleRows; row++ {
		p := fmt.Sprintf("redact.%d.", row)
		if _, ok := form[p+"path"]; !ok {
			continue
		}
		path, action, keep := strings.TrimSpace(form.Get(p+"path")), form.Get(p+"action"), strings.TrimSpace(form.Get(p+"keep"))
		if form.Get(p+"remove") == "on" || path == "" && action == "" && keep == "" {
			continue
		}
		r := formRule{rule: rule{Path: path, Action: action}, row: row}
		if keep != "" {
			n, err := strconv.Atoi(keep)
			if err != nil {
				if keepErrs == nil {
					keepErrs = map[int]string{}
				}
				keepErrs[row] = fmt.Sprintf("%q is not a whole number of characters", keep)
			}
			r.Keep = n
		}
		rules = append(rules, r)
	}
	return rules, keepErrs
}

// storedKey is the API's read view of a resource's redaction key.
func storedKey(raw json.RawMessage) (set bool, last4 string) {
	var v struct {
		Set   bool   `json:"set"`
		Last4 string `json:"last4"`
	}
	if len(raw) > 0 && json.Unmarshal(raw, &v) == nil {
		return v.Set, v.Last4
	}
	return false, ""
}

// policyFromForm sets the filter, rules and redaction key of a PUT body
// from a submitted form: an empty filter and no rules unset them; a blank
// key keeps the stored one ({"set": true}) or stays unset.
func policyFromForm(body map[string]any, form url.Values, stored *resource) {
	if f := strings.TrimSpace(form.Get("filter")); f != "" {
		body["filter"] = f
	}
	rules, _ := rulesFromForm(form)
	if len(rules) > 0 {
		out := make([]rule, len(rules))
		for i, r := range rules {
			out[i] = r.rule
		}
		body["redact"] = out
	}
	if k := form.Get("redaction_key"); strings.TrimSpace(k) != "" {
		body["redaction_key"] = k
	} else if stored != nil {
		if set, _ := storedKey(stored.RedactionKey); set {
			body["redaction_key"] = map[string]any{"set": true}
		}
	}
}

var ruleFieldRE = regexp.MustCompile(`^redact\[(\d+)\]\.(path|action|keep)$`)

// policyField places an API error's field on the form: the input's id and
// label. rows are the submitted rules' rows (redact[i] is rows[i]).
func policyField(field string, rows []int) (id, label string, ok bool) {
	switch field {
	case "filter":
		return "filter", "Filter", true
	case "redaction_key":
		return "redaction_key", "Redaction key", true
	case "redact":
		return "redact", "Redaction rules", true
	}
	m := ruleFieldRE.FindStringSubmatch(field)
	if m == nil {
		return "", "", false
	}
	i, _ := strconv.Atoi(m[1])
	if i >= len(rows) {
		return "", "", false
	}
	row := rows[i]
	return fmt.Sprintf("redact.%d.%s", row, m[2]), fmt.Sprintf("Redaction rule %d: %s", row+1, m[2]), true
}

// policyView is the policy part of a resource's form: stored (nil when
// new), or after a refused save the submitted form, with errs by input id.
func policyView(stored *resource, submitted url.Values, errs map[string]string) *policyForm {
	pf := &policyForm{
		Filter: fieldView{field: field{Label: "Filter", Input: "area",
			Help: `A CEL expression over the event; only events it is true for are sent. Empty sends every event. E.g. event.target.type == "runs" && event.outcome.result != "SUCCESS", or event.request.action.startsWith("delete-").`},
			ID: "filter", Error: errs["filter"]},
		Key: fieldView{field: field{Label: "Redaction key", Input: "secret",
			Help: "The key hash rules use (HMAC-SHA256): a value hashes alike within this destination and differently across destinations."},
			ID: "redaction_key", Error: errs["redaction_key"]},
		Error: errs["redact"],
	}
	if stored != nil {
		pf.Key.Set, pf.Key.Last4 = storedKey(stored.RedactionKey)
	}
	if submitted != nil && submitted.Get("policy") == "1" {
		pf.Filter.Value = submitted.Get("filter")
		for row := 0; row < maxRuleRows; row++ {
			p := fmt.Sprintf("redact.%d.", row)
			if _, ok := submitted[p+"path"]; !ok {
				continue
			}
			pf.Rules = append(pf.Rules, ruleRow{Row: row, Path: submitted.Get(p + "path"), Action: submitted.Get(p + "action"),
				Keep: submitted.Get(p + "keep"), Stored: submitted.Get(p+"stored") == "1", Remove: submitted.Get(p+"remove") == "on"})
		}
	} else if stored != nil {
		pf.Filter.Value = stored.Filter
		var rules []rule
		_ = json.Unmarshal(stored.Redact, &rules)
		for i, r := range rules {
			row := ruleRow{Row: i, Path: r.Path, Action: r.Action, Stored: true}
			if r.Keep != 0 {
				row.Keep = strconv.Itoa(r.Keep)
			}
			pf.Rules = append(pf.Rules, row)
		}
	}
	if submitted == nil || submitted.Get("policy") != "1" {
		for range emptyRules {
			pf.Rules = append(pf.Rules, ruleRow{Row: len(pf.Rules)})
		}
	}
	for i := range pf.Rules {
		r := &pf.Rules[i]
		r.Number = r.Row + 1
		p := fmt.Sprintf("redact.%d.", r.Row)
		r.PathError, r.ActionError, r.KeepError = errs[p+"path"], errs[p+"action"], errs[p+"keep"]
	}
	return pf
}
