package ingest

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"strings"
)

// principal is the producer a request authenticated as.
type principal struct {
	name     string
	accounts map[string]bool // nil: every account
}

func (p *principal) mayWrite(account string) bool {
	return p.accounts == nil || p.accounts[account]
}

type authenticator struct {
	disabled bool
	tokens   []tokenEntry
}

type tokenEntry struct {
	hash [32]byte
	p    *principal
}

var anonymous = &principal{name: "anonymous"}

func newAuthenticator(a Auth) *authenticator {
	au := &authenticator{disabled: a.Disabled}
	for _, t := range a.Tokens {
		var e tokenEntry
		b, _ := hex.DecodeString(t.SHA256) // checked by Validate
		copy(e.hash[:], b)
		e.p = &principal{name: t.Name}
		for _, acc := range t.Accounts {
			if acc == "*" {
				e.p.accounts = nil
				break
			}
			if e.p.accounts == nil {
				e.p.accounts = map[string]bool{}
			}
			e.p.accounts[acc] = true
		}
		au.tokens = append(au.tokens, e)
	}
	return au
}

// authenticate returns the principal for a request's headers, or why it is
// not authenticated (answered 401). The token is hashed and compared in constant time against
// every configured hash, so timing reveals nothing about which one is close.
func (a *authenticator) authenticate(h http.Header) (*principal, string) {
	if a.disabled {
		return anonymous, ""
	}
	auth := h.Get("Authorization")
	scheme, token, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return nil, "missing bearer token: send Authorization: Bearer <token>"
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
	var found *principal
	for _, e := range a.tokens {
		if subtle.ConstantTimeCompare(sum[:], e.hash[:]) == 1 {
			found = e.p
		}
	}
	if found == nil {
		return nil, "bearer token is not valid"
	}
	return found, ""
}
