package ebfake

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// AuthPrefix starts every SigV4 Authorization header.
const AuthPrefix = "AWS4-HMAC-SHA256 Credential="

// Auth is a parsed SigV4 Authorization header.
type Auth struct {
	AccessKeyID   string
	Date          string // yyyymmdd of the credential scope
	Region        string
	Service       string
	SignedHeaders []string
	Signature     string
}

// Scope is the credential scope: date/region/service/aws4_request.
func (a Auth) Scope() string { return a.Date + "/" + a.Region + "/" + a.Service + "/aws4_request" }

var errNoAuth = errors.New("missing Authentication Token")

// parseAuth reads a SigV4 Authorization header:
// AWS4-HMAC-SHA256 Credential=AKID/20240216/eu-west-1/events/aws4_request, SignedHeaders=host;x-amz-date, Signature=hex
func parseAuth(h string) (Auth, error) {
	var a Auth
	if !strings.HasPrefix(h, AuthPrefix) {
		return a, errNoAuth
	}
	for _, part := range strings.Split(strings.TrimPrefix(h, "AWS4-HMAC-SHA256 "), ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return a, errors.New("authorization header is malformed")
		}
		switch k {
		case "Credential":
			f := strings.Split(v, "/")
			if len(f) != 5 || f[4] != "aws4_request" || f[0] == "" {
				return a, errors.New("credential is not of the form <key>/<date>/<region>/<service>/aws4_request")
			}
			a.AccessKeyID, a.Date, a.Region, a.Service = f[0], f[1], f[2], f[3]
		case "SignedHeaders":
			a.SignedHeaders = strings.Split(v, ";")
		case "Signature":
			a.Signature = v
		}
	}
	if a.AccessKeyID == "" || len(a.SignedHeaders) == 0 || a.Signature == "" {
		return a, errors.New("authorization header lacks Credential, SignedHeaders or Signature")
	}
	if !slices.Contains(a.SignedHeaders, "host") || !slices.Contains(a.SignedHeaders, "x-amz-date") {
		return a, errors.New("host and x-amz-date must be signed")
	}
	return a, nil
}

// verify checks the request's signature with the key's secret, the way AWS
// does: the canonical request from the signed headers and the body's hash,
// the string to sign with the request's X-Amz-Date, the derived key. It
// returns AWS's message for what is wrong, or "".
func verify(r *http.Request, body []byte, a Auth, secret string, now time.Time) string {
	amzDate := r.Header.Get("X-Amz-Date")
	t, err := time.Parse("20060102T150405Z", amzDate)
	if err != nil {
		return "X-Amz-Date is missing or malformed"
	}
	if d := now.Sub(t); d > 15*time.Minute || d < -15*time.Minute {
		return "Signature expired: " + amzDate + " is now earlier or later than 15 min from now"
	}
	if a.Date != amzDate[:8] {
		return "credential scope date differs from X-Amz-Date"
	}
	sum := sha256.Sum256(body)
	payload := hex.EncodeToString(sum[:])
	if h := r.Header.Get("X-Amz-Content-Sha256"); h != "" && h != payload {
		return "The provided X-Amz-Content-Sha256 header does not match what was computed."
	}
	var canon strings.Builder
	canon.WriteString(r.Method + "\n")
	path := r.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	canon.WriteString(path + "\n")
	canon.WriteString(canonicalQuery(r) + "\n")
	for _, name := range a.SignedHeaders {
		var v string
		switch name {
		case "host":
			v = r.Host
		case "content-length":
			v = strconv.FormatInt(r.ContentLength, 10)
		default:
			vals := r.Header.Values(name)
			for i := range vals {
				vals[i] = strings.Join(strings.Fields(vals[i]), " ")
			}
			v = strings.Join(vals, ",")
		}
		canon.WriteString(name + ":" + v + "\n")
	}
	canon.WriteString("\n" + strings.Join(a.SignedHeaders, ";") + "\n" + payload)
	creq := sha256.Sum256([]byte(canon.String()))
	toSign := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + a.Scope() + "\n" + hex.EncodeToString(creq[:])
	key := hmacSHA256([]byte("AWS4"+secret), a.Date)
	key = hmacSHA256(key, a.Region)
	key = hmacSHA256(key, a.Service)
	key = hmacSHA256(key, "aws4_request")
	want := hex.EncodeToString(hmacSHA256(key, toSign))
	if !hmac.Equal([]byte(want), []byte(a.Signature)) {
		return "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method."
	}
	return ""
}

func canonicalQuery(r *http.Request) string {
	if r.URL.RawQuery == "" {
		return ""
	}
	q := r.URL.Query()
	var parts []string
	for k, vs := range q {
		for _, v := range vs {
			parts = append(parts, uriEncode(k)+"="+uriEncode(v))
		}
	}
	slices.Sort(parts)
	return strings.Join(parts, "&")
}

func uriEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteString("%" + strings.ToUpper(hex.EncodeToString([]byte{c})))
	}
	return b.String()
}

func hmacSHA256(key []byte, data string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(data))
	return h.Sum(nil)
}

// Key is a credential the fakes know: calls signed with it are verified.
type Key struct {
	AccessKeyID, SecretAccessKey, SessionToken string
}

// keyring holds the known keys; the servers guard it with their lock.
type keyring struct {
	keys    map[string]Key
	require bool
}

// checkAuth authenticates a request: a SigV4 header for service, verified
// when lookup knows the key; unknown keys are refused when lookup says so.
// It returns the parsed header, or the status, error type and message to
// answer.
func checkAuth(r *http.Request, body []byte, service string, now time.Time, lookup func(id string) (k Key, known, require bool)) (Auth, int, string, string) {
	a, err := parseAuth(r.Header.Get("Authorization"))
	if errors.Is(err, errNoAuth) {
		return a, http.StatusForbidden, "MissingAuthenticationTokenException", "Missing Authentication Token"
	}
	if err != nil {
		return a, http.StatusForbidden, "IncompleteSignatureException", err.Error()
	}
	if a.Service != service {
		return a, http.StatusForbidden, "InvalidSignatureException", "Credential should be scoped to correct service: '" + service + "'."
	}
	key, known, require := lookup(a.AccessKeyID)
	if !known {
		if require {
			return a, http.StatusBadRequest, "UnrecognizedClientException", "The security token included in the request is invalid."
		}
		return a, 0, "", ""
	}
	if msg := verify(r, body, a, key.SecretAccessKey, now); msg != "" {
		return a, http.StatusForbidden, "InvalidSignatureException", msg
	}
	if key.SessionToken != "" && r.Header.Get("X-Amz-Security-Token") != key.SessionToken {
		return a, http.StatusForbidden, "UnrecognizedClientException", "The security token included in the request is invalid."
	}
	return a, 0, "", ""
}
