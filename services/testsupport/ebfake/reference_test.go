package ebfake

// Plain, byte-at-a-time forms of parseRequest, parseAuth and verify (with
// no kept keys and crypto/hmac): the fast ones must accept, refuse and
// compute exactly what these do, which reference_fuzz_test.go checks.

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

func refParseRequest(b []byte) (req request, ok bool) {
	s := refScanner{b: b}
	if !s.consume('{') {
		return req, false
	}
	if s.consume('}') {
		return req, s.end()
	}
	for {
		key, ok := s.key()
		if !ok {
			return req, false
		}
		switch key {
		case "Entries":
			if !s.consume('[') {
				return req, false
			}
			req.Entries = []entryJSON{}
			if !s.consume(']') {
				for {
					e, ok := s.entry()
					if !ok {
						return req, false
					}
					req.Entries = append(req.Entries, e)
					if s.consume(']') {
						break
					}
					if !s.consume(',') {
						return req, false
					}
				}
			}
		case "EndpointId":
			v, ok := s.str()
			if !ok {
				return req, false
			}
			req.EndpointID = &v
		default:
			return req, false
		}
		if s.consume('}') {
			return req, s.end()
		}
		if !s.consume(',') {
			return req, false
		}
	}
}

type refScanner struct {
	b []byte
	i int
}

func (s *refScanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *refScanner) consume(c byte) bool {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *refScanner) end() bool {
	s.ws()
	return s.i == len(s.b)
}

func (s *refScanner) key() (string, bool) {
	k, ok := s.str()
	if !ok || !s.consume(':') {
		return "", false
	}
	return k, true
}

func (s *refScanner) entry() (entryJSON, bool) {
	var e entryJSON
	if !s.consume('{') {
		return e, false
	}
	if s.consume('}') {
		return e, true
	}
	for {
		key, ok := s.key()
		if !ok {
			return e, false
		}
		var dst **string
		switch key {
		case "Source":
			dst = &e.Source
		case "DetailType":
			dst = &e.DetailType
		case "Detail":
			dst = &e.Detail
		case "EventBusName":
			dst = &e.EventBusName
		case "TraceHeader":
			dst = &e.TraceHeader
		case "Resources":
			if !s.consume('[') {
				return e, false
			}
			e.Resources = []string{}
			if !s.consume(']') {
				for {
					r, ok := s.str()
					if !ok {
						return e, false
					}
					e.Resources = append(e.Resources, r)
					if s.consume(']') {
						break
					}
					if !s.consume(',') {
						return e, false
					}
				}
			}
		case "Time":
			n, ok := s.number()
			if !ok {
				return e, false
			}
			e.Time = &n
		default:
			return e, false
		}
		if dst != nil {
			v, ok := s.str()
			if !ok {
				return e, false
			}
			*dst = &v
		}
		if s.consume('}') {
			return e, true
		}
		if !s.consume(',') {
			return e, false
		}
	}
}

// number reads a JSON number.
func (s *refScanner) number() (json.Number, bool) {
	s.ws()
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		if c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' {
			s.i++
			continue
		}
		break
	}
	n := s.b[start:s.i]
	if !validNumber(n) {
		return "", false
	}
	if _, err := strconv.ParseFloat(string(n), 64); err != nil {
		return "", false
	}
	return json.Number(n), true
}

// str reads a JSON string: valid UTF-8, no control characters, the escapes
// JSON defines (a lone surrogate declines).
func (s *refScanner) str() (string, bool) {
	if !s.consume('"') {
		return "", false
	}
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			v := s.b[start:s.i]
			s.i++
			if !utf8.Valid(v) {
				return "", false
			}
			return string(v), true
		case c == '\\':
			return s.escaped(start)
		case c < 0x20:
			return "", false
		}
		s.i++
	}
	return "", false
}

// escaped finishes a string that holds escapes, from its start.
func (s *refScanner) escaped(start int) (string, bool) {
	out := make([]byte, 0, s.i-start+64)
	out = append(out, s.b[start:s.i]...)
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			if !utf8.Valid(out) {
				return "", false
			}
			// out is this string's own buffer, never written again
			return unsafe.String(unsafe.SliceData(out), len(out)), true
		case c < 0x20:
			return "", false
		case c != '\\':
			// copy the run up to the next quote or backslash
			j := s.i
			for j < len(s.b) && s.b[j] != '"' && s.b[j] != '\\' && s.b[j] >= 0x20 {
				j++
			}
			out = append(out, s.b[s.i:j]...)
			s.i = j
			continue
		}
		if s.i+1 >= len(s.b) {
			return "", false
		}
		e := s.b[s.i+1]
		s.i += 2
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := s.hex4()
			if !ok {
				return "", false
			}
			if utf16.IsSurrogate(r) {
				if s.i+1 >= len(s.b) || s.b[s.i] != '\\' || s.b[s.i+1] != 'u' {
					return "", false
				}
				s.i += 2
				r2, ok := s.hex4()
				if !ok {
					return "", false
				}
				if r = utf16.DecodeRune(r, r2); r == utf8.RuneError {
					return "", false
				}
			}
			out = utf8.AppendRune(out, r)
		default:
			return "", false
		}
	}
	return "", false
}

func (s *refScanner) hex4() (rune, bool) {
	if s.i+4 > len(s.b) {
		return 0, false
	}
	var r rune
	for _, c := range s.b[s.i : s.i+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	s.i += 4
	return r, true
}

func refParseAuth(h string) (Auth, error) {
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

func refVerify(r *http.Request, body []byte, a Auth, secret string, now time.Time) string {
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
	want := refSignature(r, payload, a, secret, amzDate)
	if !hmac.Equal([]byte(want), []byte(a.Signature)) {
		return "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method."
	}
	return ""
}

// refSignature is the signature of r (whose body hashes to payload) that
// refVerify expects.
func refSignature(r *http.Request, payload string, a Auth, secret, amzDate string) string {
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
	key := refHMAC([]byte("AWS4"+secret), a.Date)
	key = refHMAC(key, a.Region)
	key = refHMAC(key, a.Service)
	key = refHMAC(key, "aws4_request")
	return hex.EncodeToString(refHMAC(key, toSign))
}

func refHMAC(key []byte, data string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(data))
	return h.Sum(nil)
}
