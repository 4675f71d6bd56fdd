package ingest

import (
	"strings"
	"testing"
	"time"
)

func TestSettingsValidate(t *testing.T) {
	good := hashToken("a-token")
	cases := []struct {
		name   string
		mutate func(*Settings)
		want   []string // problems, by text; nil: valid
	}{
		{"one token", func(s *Settings) { s.Auth.Tokens = []Token{{Name: "a", SHA256: good}} }, nil},
		{"auth disabled, no tokens", func(s *Settings) { s.Auth.Disabled = true }, nil},
		{"no tokens", func(*Settings) {}, []string{"auth.tokens: at least one token is required"}},
		{"upper-case hash", func(s *Settings) { s.Auth.Tokens = []Token{{Name: "a", SHA256: strings.ToUpper(good)}} }, nil},
		{"token without a name", func(s *Settings) { s.Auth.Tokens = []Token{{Name: " ", SHA256: good}} }, []string{"token 0 has no name"}},
		{"two tokens with one name", func(s *Settings) {
			s.Auth.Tokens = []Token{{Name: "a", SHA256: good}, {Name: "a", SHA256: hashToken("b")}}
		}, []string{`token name "a" is used twice`}},
		{"hash of the wrong length", func(s *Settings) { s.Auth.Tokens = []Token{{Name: "a", SHA256: good[:63]}} }, []string{`token "a": sha256 must be 64 hex characters`}},
		{"64 characters, not hex", func(s *Settings) { s.Auth.Tokens = []Token{{Name: "a", SHA256: strings.Repeat("z", 64)}} }, []string{`token "a": sha256`}},
		{"plain token", func(s *Settings) { s.Auth.Tokens = []Token{{Name: "a", SHA256: "my-token"}} }, []string{"never the token itself"}},
		{"zero limits", func(s *Settings) {
			s.Auth.Disabled = true
			s.Limits = Limits{}
			s.ProduceTimeout = 0
		}, []string{"limits.max_body_bytes: must be positive", "limits.max_events: must be positive", "limits.max_event_bytes: must be positive", "produce_timeout: must be positive"}},
		{"event limit over body limit", func(s *Settings) { s.Auth.Disabled = true; s.Limits.MaxEventBytes = s.Limits.MaxBodyBytes + 1 }, []string{"limits.max_event_bytes: must not exceed max_body_bytes"}},
		{"in-flight cap under one body", func(s *Settings) { s.Auth.Disabled = true; s.MaxInflightBytes = s.Limits.MaxBodyBytes - 1 }, []string{"max_inflight_bytes: must be at least max_body_bytes"}},
		{"negative produce timeout", func(s *Settings) { s.Auth.Disabled = true; s.ProduceTimeout = -time.Second }, []string{"produce_timeout"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := DefaultConfig().Ingest
			tc.mutate(&s)
			err := s.Validate()
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("valid")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			for _, tok := range s.Auth.Tokens {
				if tok.SHA256 == "my-token" && strings.Contains(err.Error(), "my-token") {
					t.Errorf("the error repeats the token: %v", err)
				}
			}
		})
	}
}
