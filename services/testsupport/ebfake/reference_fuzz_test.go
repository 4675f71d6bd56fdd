package ebfake

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

// stringBodies are JSON strings that put each byte that matters to the
// eight-byte scan at each place of its first two words and at the very
// end, with and without escapes before it.
func stringBodies() []string {
	var out []string
	specials := []string{`"`, `\"`, `\\`, `\/`, `\n`, `\u00e9`, `\ud83d\ude80`, `\ud83d`, `\u12`, `\x`, "\x00", "\x1f", " ", "~", "\x7f",
		"\x80", "\xbf", "\xc3\xa9", "\xc3", "\xe6\x97\xa5", "\xe6\x97", "\xed\xa0\x80", "\xef\xbf\xbd", "\xf0\x9f\x9a\x80", "\xf4\x90\x80\x80", "\xff"}
	for _, sp := range specials {
		for n := 0; n <= 17; n++ {
			for _, pre := range []string{"", `\t`} {
				s := `"` + pre + strings.Repeat("a", n) + sp + strings.Repeat("b", 17-n) + `"`
				out = append(out, s, s+` "x"`, s[:len(s)-1])
			}
		}
	}
	return out
}

// str reads what the byte-at-a-time reader reads, to the same place, also
// for the strings after the first (which reuse the scratch buffer).
func FuzzStrMatchesReference(f *testing.F) {
	for _, s := range stringBodies() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s := scanner{b: b}
		r := refScanner{b: b}
		for range 4 {
			v, ok := s.str()
			rv, rok := r.str()
			if ok != rok || v != rv || ok && s.i != r.i {
				t.Fatalf("%q: str %q %v at %d, byte-at-a-time %q %v at %d", b, v, ok, s.i, rv, rok, r.i)
			}
			if !ok {
				return
			}
		}
	})
}

// parseRequest accepts exactly the bodies the byte-at-a-time reader
// accepts, with the same request.
func FuzzParseRequestMatchesReference(f *testing.F) {
	for _, body := range requestBodies {
		f.Add([]byte(body))
	}
	f.Add(benchBody(f))
	for _, s := range stringBodies()[:200] {
		f.Add([]byte(`{"Entries":[{"Source":"s","Detail":` + s + `,"DetailType":` + s + `}]}`))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := parseRequest(b)
		want, wok := refParseRequest(b)
		if ok != wok {
			t.Fatalf("%q: parseRequest ok %v, byte-at-a-time %v", b, ok, wok)
		}
		if ok && !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: parseRequest %+v, byte-at-a-time %+v", b, got, want)
		}
	})
}

func TestParseRequestMatchesReference(t *testing.T) {
	for _, s := range stringBodies() {
		for _, body := range []string{
			`{"Entries":[{"Detail":` + s + `}]}`,
			`{"Entries":[{"Source":"s","Detail":` + s + `,"DetailType":"d"},{"Source":"s","Detail":` + s + `,"DetailType":"d"}]}`,
			`{"Entries":[{` + s + `:"x"}]}`,
		} {
			got, ok := parseRequest([]byte(body))
			want, wok := refParseRequest([]byte(body))
			if ok != wok || ok && !reflect.DeepEqual(got, want) {
				t.Fatalf("%q: parseRequest %+v %v, byte-at-a-time %+v %v", body, got, ok, want, wok)
			}
		}
	}
}

// validObject agrees with encoding/json wherever the eight-byte scan's
// special bytes fall.
func TestValidObjectStrings(t *testing.T) {
	for _, s := range stringBodies() {
		checkValid(t, `{"k":`+s+`}`)
		checkValid(t, `{`+s+`:1}`)
		checkValid(t, `{"k":[`+s+`,`+s+`]}`)
	}
}

func FuzzParseAuthMatchesReference(f *testing.F) {
	for _, h := range []string{
		AuthPrefix + keyID + "/20240216/eu-west-1/events/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=0123abcd",
		AuthPrefix + keyID + "/20240216/eu-west-1/events/aws4_request,SignedHeaders=host;x-amz-date,Signature=00",
		AuthPrefix + "/20240216/eu-west-1/events/aws4_request, SignedHeaders=host;x-amz-date, Signature=00",
		AuthPrefix + "A/B/C/D/aws4_request/x, SignedHeaders=host;x-amz-date, Signature=00",
		AuthPrefix + "A/B/C/D/aws4_requesT, SignedHeaders=host;x-amz-date, Signature=00",
		AuthPrefix + "A//// , SignedHeaders=host, Signature=00",
		AuthPrefix + "A/B/C/D/aws4_request, SignedHeaders=host;x-amz-date, Signature=00,,",
		AuthPrefix + "A/B/C/D/aws4_request, Credential=E/F/G/H/aws4_request, SignedHeaders=;host;x-amz-date, Signature=",
		"AWS4-HMAC-SHA256 Credential", "Bearer x", "",
	} {
		f.Add(h)
	}
	f.Fuzz(func(t *testing.T, h string) {
		a, err := parseAuth(h)
		ra, rerr := refParseAuth(h)
		if (err == nil) != (rerr == nil) || err != nil && err.Error() != rerr.Error() || !reflect.DeepEqual(a, ra) {
			t.Fatalf("%q: parseAuth %+v %v, byte-at-a-time %+v %v", h, a, err, ra, rerr)
		}
	})
}

// verify gives the plain form's verdict, signature right or wrong, for any
// signed headers and values, and leaves the request's headers as it does.
func FuzzVerifyMatchesReference(f *testing.F) {
	f.Add("POST", "/", "", "host;x-amz-date", "X-Amz-Target", Target, "", "", "secret", true, []byte(`{}`))
	f.Add("POST", "/", "", "content-length;content-type;host;x-amz-date;x-amz-target", "Content-Type", ContentType, "", "", secret, true, []byte(`{"Entries":[]}`))
	f.Add("POST", "/a%20b/c", "b=2&a=1&a=0", "host;x-amz-date;x-custom", "X-Custom", "  two  words\there ", " \u00a0x\u0085 ", "", "s2", true, []byte(`x`))
	f.Add("POST", "/", "", "host;x-amz-date;X-Custom;x_custom;", "X-Custom", "v", "w", "", "s3", true, []byte(``))
	f.Add("PUT", "/", "", "host;x-amz-date;x-amz-content-sha256", "X-Amz-Content-Sha256", "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", "", "", "s4", true, []byte(`{}`))
	f.Add("POST", "/", "", "host;x-amz-date", "X-Amz-Target", Target, "", "20240216T125838Z", "s5", true, []byte(`{}`))
	f.Add("POST", "/", "", "host;x-amz-date", "X-Amz-Target", Target, "", "", "s6", false, []byte(`{}`))
	for _, v := range []string{"a\tb", "a\vb", "a\fb", "a\rb", "a\nb", "a\x7fb", "a\x01b", "a\u00a0b", "a\u0085b", "a\u3000b", "a b", "a  b", " a", "a ", " ", "\xff", "a,b"} {
		f.Add("POST", "/", "", "host;x-amz-date;x-v", "X-V", v, "x", "", "s7", true, []byte(`{}`))
	}
	f.Fuzz(func(t *testing.T, method, path, query, signed, name, v1, v2, amzDate, secret string, sign bool, body []byte) {
		now := time.Date(2024, 2, 16, 12, 58, 38, 0, time.UTC)
		if amzDate == "" {
			amzDate = now.Format("20060102T150405Z")
		}
		u := "http://events.eu-west-1.amazonaws.com" + path
		if query != "" {
			u += "?" + query
		}
		build := func() *http.Request {
			r, err := http.NewRequest(method, u, bytes.NewReader(body))
			if err != nil {
				return nil
			}
			r.Header.Set("X-Amz-Date", amzDate)
			r.Header[http.CanonicalHeaderKey(name)] = append(r.Header[http.CanonicalHeaderKey(name)], v1, v2)
			return r
		}
		r1, r2, r3 := build(), build(), build()
		if r1 == nil {
			return
		}
		date := amzDate
		if len(date) >= 8 {
			date = date[:8]
		}
		a := Auth{AccessKeyID: keyID, Date: date, Region: "eu-west-1", Service: "events", SignedHeaders: strings.Split(signed, ";"), Signature: "00"}
		if sign && len(amzDate) >= 8 {
			sum := sha256.Sum256(body)
			a.Signature = refSignature(r3, hex.EncodeToString(sum[:]), a, secret, amzDate)
		}
		got := verify(r1, body, a, secret, now)
		want := refVerify(r2, body, a, secret, now)
		if got != want {
			t.Fatalf("verify %q, plain form %q", got, want)
		}
		if sign && got != "" && !strings.HasPrefix(got, "X-Amz-Date") && !strings.HasPrefix(got, "Signature expired") &&
			!strings.HasPrefix(got, "credential scope") && !strings.HasPrefix(got, "The provided X-Amz-Content-Sha256") {
			t.Fatalf("correctly signed request refused: %s", got)
		}
		if !reflect.DeepEqual(r1.Header, r2.Header) {
			t.Fatalf("headers after verify %q, after the plain form %q", r1.Header, r2.Header)
		}
	})
}

// The signature check takes SDK-signed calls and refuses any other secret,
// each time, with derived keys kept.
func TestVerifySDKSigned(t *testing.T) {
	body := benchBody(t)
	now := time.Now().UTC()
	for range 3 {
		for _, sec := range []string{secret, "other-secret"} {
			r := benchRequest(t, body, now)
			a, err := parseAuth(r.Header.Get("Authorization"))
			if err != nil {
				t.Fatal(err)
			}
			if msg := verify(r, body, a, sec, now); (msg == "") != (sec == secret) {
				t.Fatalf("secret %q: verify says %q", sec, msg)
			}
			if msg := verify(r, append(bytes.Clone(body), ' '), a, secret, now); msg == "" {
				t.Fatal("another body verified")
			}
		}
	}
}
