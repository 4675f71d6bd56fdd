package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/auditstream/auditstream/services/internal/config"
	"github.com/auditstream/auditstream/services/internal/destinations"
)

// apiError is every error answer's body:
//
//	{"error": {"code": "invalid_argument", "message": "...", "details": [{"field": "settings.site", "message": "..."}]}}
type apiError struct {
	status  int
	Code    string        `json:"code"`
	Message string        `json:"message"`
	Details []fieldDetail `json:"details,omitempty"`
}

type fieldDetail struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (e *apiError) Error() string { return e.Message }

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func notFound(what string) *apiError {
	return errorf(http.StatusNotFound, "not_found", "%s not found", what)
}

func writeError(w http.ResponseWriter, err *apiError) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if err.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="auditstream"`)
	}
	w.WriteHeader(err.status)
	_ = json.NewEncoder(w).Encode(struct {
		Error *apiError `json:"error"`
	}{err})
}

// fieldErrors collects problems with the fields of a request.
type fieldErrors struct{ details []fieldDetail }

func (f *fieldErrors) add(field, format string, args ...any) {
	f.details = append(f.details, fieldDetail{Field: field, Message: fmt.Sprintf(format, args...)})
}

func (f *fieldErrors) any() bool { return len(f.details) > 0 }

// addConfig adds the problems decoding c's settings found, as settings
// fields. Settings arrive as JSON: a problem the decoder placed by the line
// of the YAML they were turned into is placed by its field instead.
func (f *fieldErrors) addConfig(c *destinations.Connection, err error) {
	prefix := c.SettingsPath()
	for _, one := range config.Flatten(err) {
		msg := one.Error()
		field, text, ok := strings.Cut(msg, ": ")
		if !ok {
			f.add("settings", "%s", msg)
			continue
		}
		field = "settings" + strings.TrimPrefix(field, prefix)
		if m := lineRef.FindStringSubmatch(text); m != nil {
			line, _ := strconv.Atoi(m[1])
			if p := c.SettingsField(line); p != "" && field == "settings" {
				field = "settings." + p
			}
			text = strings.Replace(text, m[0], "", 1)
		}
		f.add(field, "%s", text)
	}
}

var lineRef = regexp.MustCompile(`\bline (\d+): `)

func (f *fieldErrors) err() error {
	if !f.any() {
		return nil
	}
	msgs := make([]string, len(f.details))
	for i, d := range f.details {
		msgs[i] = d.Field + ": " + d.Message
	}
	return &apiError{status: http.StatusBadRequest, Code: "invalid_argument",
		Message: "invalid request: " + strings.Join(msgs, "; "), Details: f.details}
}

// jsonProblem describes a JSON decoding error without quoting the input.
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("syntax error at byte %d", syn.Offset)
	case errors.As(err, &typ):
		if typ.Field != "" {
			return fmt.Sprintf("%s must be %s, not %s", typ.Field, typ.Type, typ.Value)
		}
		return fmt.Sprintf("must be %s, not %s", typ.Type, typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	}
	return err.Error()
}
