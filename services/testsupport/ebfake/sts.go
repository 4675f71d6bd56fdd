package ebfake

import (
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// STS is a fake AWS STS answering AssumeRole in the AWS query protocol
// (form-encoded POST, XML answer), on 127.0.0.1. Calls must carry a SigV4
// Authorization header for the service "sts" (verified for keys added with
// AddKey). A role is assumed when AllowRole named it and the call's
// ExternalId is the one the role requires; then the fake issues temporary
// credentials and, when an EventBridge fake was given, adds them to it as
// a known key. Otherwise it answers 403 AccessDenied, as STS does.
type STS struct {
	srv *httptest.Server
	eb  *Server
	now func() time.Time

	mu     sync.Mutex
	keys   keyring
	roles  map[string]string // role ARN → required external id ("" for none)
	calls  []AssumeRoleCall
	issued int
	fail   []scripted
}

// AssumeRoleCall is one AssumeRole call as the fake saw it.
type AssumeRoleCall struct {
	Status          int
	AccessKeyID     string // the caller's
	Region          string
	RoleARN         string
	ExternalID      string
	RoleSessionName string
	DurationSeconds int
	// Issued is the temporary key's id, when the call succeeded.
	Issued string
}

// NewSTS starts a fake STS. Credentials it issues are added to eb (when
// not nil). Close it when done.
func NewSTS(eb *Server) *STS {
	s := &STS{eb: eb, now: time.Now, roles: map[string]string{}}
	s.keys.keys = map[string]Key{}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// URL is the fake's endpoint.
func (s *STS) URL() string { return s.srv.URL }

// Close stops the server.
func (s *STS) Close() {
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// AddKey makes k a known caller key, whose signatures are verified.
func (s *STS) AddKey(k Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys.keys[k.AccessKeyID] = k
}

func (s *STS) lookupKey(id string) (Key, bool, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keys.keys[id]
	return k, ok, s.keys.require
}

// RequireKnownKeys refuses callers whose key AddKey did not add.
func (s *STS) RequireKnownKeys(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys.require = on
}

// AllowRole lets callers assume roleARN when they give externalID ("" for
// a role whose trust policy requires none).
func (s *STS) AllowRole(roleARN, externalID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.roles[roleARN] = externalID
}

// FailNext answers the next n calls with status and an error code.
func (s *STS) FailNext(n, status int, code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.fail = append(s.fail, scripted{status: status, typ: code, msg: code})
	}
}

// Calls returns every call received, in order.
func (s *STS) Calls() []AssumeRoleCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]AssumeRoleCall(nil), s.calls...)
}

const stsNS = "https://sts.amazonaws.com/doc/2011-06-15/"

func (s *STS) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	form, err := url.ParseQuery(string(body))
	call := AssumeRoleCall{RoleARN: form.Get("RoleArn"), ExternalID: form.Get("ExternalId"), RoleSessionName: form.Get("RoleSessionName")}
	call.DurationSeconds, _ = strconv.Atoi(form.Get("DurationSeconds"))
	if err != nil || r.Method != http.MethodPost || form.Get("Action") != "AssumeRole" || form.Get("Version") != "2011-06-15" {
		s.answerError(w, call, http.StatusBadRequest, "InvalidAction", "Could not find operation "+form.Get("Action"))
		return
	}
	auth, status, code, msg := CheckAuth(r, body, "sts", s.now(), s.lookupKey)
	call.AccessKeyID, call.Region = auth.AccessKeyID, auth.Region
	s.mu.Lock()
	var script *scripted
	if status == 0 && len(s.fail) > 0 {
		f := s.fail[0]
		s.fail = s.fail[1:]
		script = &f
	}
	want, known := s.roles[call.RoleARN]
	s.mu.Unlock()
	switch {
	case status != 0:
		s.answerError(w, call, status, code, msg)
		return
	case script != nil:
		s.answerError(w, call, script.status, script.typ, script.msg)
		return
	case !known || want != call.ExternalID:
		s.answerError(w, call, http.StatusForbidden, "AccessDenied",
			"User: arn:aws:iam::"+Account+":user/forwarder is not authorized to perform: sts:AssumeRole on resource: "+call.RoleARN)
		return
	case call.DurationSeconds != 0 && (call.DurationSeconds < 900 || call.DurationSeconds > 43200):
		s.answerError(w, call, http.StatusBadRequest, "ValidationError", "DurationSeconds must be between 900 and 43200")
		return
	}
	dur := time.Duration(call.DurationSeconds) * time.Second
	if dur == 0 {
		dur = time.Hour
	}
	s.mu.Lock()
	s.issued++
	key := Key{
		AccessKeyID:     "ASIAFAKE" + strconv.Itoa(100000+s.issued),
		SecretAccessKey: "fake-secret-" + newID(),
		SessionToken:    "fake-session-" + newID(),
	}
	s.mu.Unlock()
	if s.eb != nil {
		s.eb.AddKey(key)
	}
	call.Status, call.Issued = http.StatusOK, key.AccessKeyID
	s.record(call)
	type creds struct {
		AccessKeyID     string `xml:"AccessKeyId"`
		SecretAccessKey string `xml:"SecretAccessKey"`
		SessionToken    string `xml:"SessionToken"`
		Expiration      string `xml:"Expiration"`
	}
	type user struct {
		Arn           string `xml:"Arn"`
		AssumedRoleID string `xml:"AssumedRoleId"`
	}
	out := struct {
		XMLName xml.Name `xml:"AssumeRoleResponse"`
		NS      string   `xml:"xmlns,attr"`
		Result  struct {
			Credentials     creds `xml:"Credentials"`
			AssumedRoleUser user  `xml:"AssumedRoleUser"`
		} `xml:"AssumeRoleResult"`
		RequestID string `xml:"ResponseMetadata>RequestId"`
	}{NS: stsNS, RequestID: newID()}
	out.Result.Credentials = creds{key.AccessKeyID, key.SecretAccessKey, key.SessionToken, s.now().Add(dur).UTC().Format("2006-01-02T15:04:05Z")}
	out.Result.AssumedRoleUser = user{call.RoleARN + "/" + call.RoleSessionName, "AROAFAKE:" + call.RoleSessionName}
	w.Header().Set("Content-Type", "text/xml")
	_, _ = io.WriteString(w, xml.Header)
	_ = xml.NewEncoder(w).Encode(out)
}

func (s *STS) record(call AssumeRoleCall) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, call)
}

func (s *STS) answerError(w http.ResponseWriter, call AssumeRoleCall, status int, code, msg string) {
	call.Status = status
	s.record(call)
	typ := "Sender"
	if status >= 500 {
		typ = "Receiver"
	}
	out := struct {
		XMLName xml.Name `xml:"ErrorResponse"`
		NS      string   `xml:"xmlns,attr"`
		Error   struct {
			Type    string `xml:"Type"`
			Code    string `xml:"Code"`
			Message string `xml:"Message"`
		} `xml:"Error"`
		RequestID string `xml:"RequestId"`
	}{NS: stsNS, RequestID: newID()}
	out.Error.Type, out.Error.Code, out.Error.Message = typ, code, msg
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, xml.Header)
	_ = xml.NewEncoder(w).Encode(out)
}
