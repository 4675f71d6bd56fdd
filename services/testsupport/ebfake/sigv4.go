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
	"sync"
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

var (
	errNoAuth        = errors.New("missing Authentication Token")
	errBadCredential = errors.New("credential is not of the form <key>/<date>/<region>/<service>/aws4_request")
)

// parseAuth reads a SigV4 Authorization header:
// AWS4-HMAC-SHA256 Credential=AKID/20240216/eu-west-1/events/aws4_request, SignedHeaders=host;x-amz-date, Signature=hex
func parseAuth(h string) (Auth, error) {
	var a Auth
	if !strings.HasPrefix(h, AuthPrefix) {
		return a, errNoAuth
	}
	rest := strings.TrimPrefix(h, "AWS4-HMAC-SHA256 ")
	for more := true; more; {
		var part string
		part, rest, more = strings.Cut(rest, ",")
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return a, errors.New("authorization header is malformed")
		}
		switch k {
		case "Credential":
			if strings.Count(v, "/") != 4 {
				return a, errBadCredential
			}
			id, v, _ := strings.Cut(v, "/")
			date, v, _ := strings.Cut(v, "/")
			region, v, _ := strings.Cut(v, "/")
			service, term, _ := strings.Cut(v, "/")
			if term != "aws4_request" || id == "" {
				return a, errBadCredential
			}
			a.AccessKeyID, a.Date, a.Region, a.Service = id, date, region, service
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
	var payload [2 * sha256.Size]byte
	hex.Encode(payload[:], sum[:])
	if h := r.Header.Get("X-Amz-Content-Sha256"); h != "" && h != string(payload[:]) {
		return "The provided X-Amz-Content-Sha256 header does not match what was computed."
	}
	var space [1024]byte
	canon := append(space[:0], r.Method...)
	canon = append(canon, '\n')
	path := r.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	canon = append(canon, path...)
	canon = append(canon, '\n')
	canon = append(canon, canonicalQuery(r)...)
	canon = append(canon, '\n')
	for _, name := range a.SignedHeaders {
		canon = append(canon, name...)
		canon = append(canon, ':')
		switch name {
		case "host":
			canon = append(canon, r.Host...)
		case "content-length":
			canon = strconv.AppendInt(canon, r.ContentLength, 10)
		default:
			vals := headerValues(r.Header, name)
			for i := range vals {
				vals[i] = squeezeSpace(vals[i])
				if i > 0 {
					canon = append(canon, ',')
				}
				canon = append(canon, vals[i]...)
			}
		}
		canon = append(canon, '\n')
	}
	canon = append(canon, '\n')
	for i, name := range a.SignedHeaders {
		if i > 0 {
			canon = append(canon, ';')
		}
		canon = append(canon, name...)
	}
	canon = append(canon, '\n')
	canon = append(canon, payload[:]...)
	creq := sha256.Sum256(canon)

	// The signature is HMAC-SHA256 (RFC 2104) of the string to sign under
	// the derived key, computed here over buffers of this call.
	key := signingKey(secret, a.Date, a.Region, a.Service)
	inner := appendPadded(canon[:0], key, 0x36)
	inner = append(inner, "AWS4-HMAC-SHA256\n"...)
	inner = append(inner, amzDate...)
	inner = append(inner, '\n')
	inner = append(inner, a.Date...)
	inner = append(inner, '/')
	inner = append(inner, a.Region...)
	inner = append(inner, '/')
	inner = append(inner, a.Service...)
	inner = append(inner, "/aws4_request\n"...)
	inner = hex.AppendEncode(inner, creq[:])
	innerSum := sha256.Sum256(inner)
	var outer [sha256.BlockSize + sha256.Size]byte
	appendPadded(outer[:0], key, 0x5c)
	copy(outer[sha256.BlockSize:], innerSum[:])
	mac := sha256.Sum256(outer[:])
	var want [2 * sha256.Size]byte
	hex.Encode(want[:], mac[:])
	if !hmac.Equal(want[:], []byte(a.Signature)) {
		return "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method."
	}
	return ""
}

// appendPadded appends HMAC's padded key block: key, zeros to SHA-256's
// block size, each byte XORed with pad.
func appendPadded(dst []byte, key [sha256.Size]byte, pad byte) []byte {
	for _, c := range key {
		dst = append(dst, c^pad)
	}
	for range sha256.BlockSize - sha256.Size {
		dst = append(dst, pad)
	}
	return dst
}

// headerValues is h.Values(name) without allocating the canonical form of
// a lower-case name, which is what SignedHeaders holds.
func headerValues(h http.Header, name string) []string {
	var space [64]byte
	if len(name) == 0 || len(name) > len(space) {
		return h.Values(name)
	}
	key := space[:len(name)]
	upper := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z':
			if upper {
				c -= 'a' - 'A'
			}
		case c >= '0' && c <= '9' || c == '-':
		default:
			return h.Values(name)
		}
		key[i] = c
		upper = c == '-'
	}
	return h[string(key)]
}

// squeezeSpace is strings.Join(strings.Fields(v), " "): v itself when it
// is printable ASCII with single spaces between words.
func squeezeSpace(v string) string {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < ' ' || c > '~' || c == ' ' && (i == 0 || i == len(v)-1 || v[i-1] == ' ') {
			return strings.Join(strings.Fields(v), " ")
		}
	}
	return v
}

// signingKey is SigV4's key derived from the secret for a date, region and
// service. Derived keys are kept: a key serves every call of its day.
func signingKey(secret, date, region, service string) [sha256.Size]byte {
	k := scope{secret, date, region, service}
	signingKeys.Lock()
	key, ok := signingKeys.m[k]
	signingKeys.Unlock()
	if ok {
		return key
	}
	b := hmacSHA256([]byte("AWS4"+secret), date)
	b = hmacSHA256(b, region)
	b = hmacSHA256(b, service)
	b = hmacSHA256(b, "aws4_request")
	copy(key[:], b)
	k = scope{strings.Clone(secret), strings.Clone(date), strings.Clone(region), strings.Clone(service)}
	signingKeys.Lock()
	if len(signingKeys.m) >= maxSigningKeys {
		clear(signingKeys.m)
	}
	signingKeys.m[k] = key
	signingKeys.Unlock()
	return key
}

type scope struct{ secret, date, region, service string }

// maxSigningKeys bounds the kept derived keys; past it they are dropped.
const maxSigningKeys = 256

var signingKeys = struct {
	sync.Mutex
	m map[scope][sha256.Size]byte
}{m: map[scope][sha256.Size]byte{}}

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

// CheckAuth authenticates a request: a SigV4 header for service, verified
// when lookup knows the key; unknown keys are refused when lookup says so.
// It returns the parsed header, or the status, error type and message to
// answer. The fakes of other AWS services (kmsfake) check with it too.
func CheckAuth(r *http.Request, body []byte, service string, now time.Time, lookup func(id string) (k Key, known, require bool)) (Auth, int, string, string) {
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
