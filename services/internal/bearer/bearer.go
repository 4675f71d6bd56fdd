// Package bearer authenticates HTTP requests by bearer token. Tokens are
// configured as SHA-256 hashes, never in plain text, each with a name (for
// logs and audit trails) and the accounts it may act for.
package bearer

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"slices"
	"strings"

	"github.com/auditstream/auditstream/services/internal/config"
)

// Wildcard in a token's accounts gives it every account.
const Wildcard = "*"

// Config is bearer-token authentication.
type Config struct {
	// Disabled accepts every request. Only for development: the service logs
	// a warning when it is set.
	Disabled bool `yaml:"disabled"`
	// Tokens are the accepted bearer tokens, stored as SHA-256 hashes
	// (`printf %s "$TOKEN" | sha256sum`).
	Tokens []Token `yaml:"tokens"`
}

// Token is one accepted bearer token.
type Token struct {
	// Name identifies the token's holder in logs, metrics and audit events.
	Name string `yaml:"name"`
	// SHA256 is the hex SHA-256 of the token.
	SHA256 string `yaml:"sha256"`
	// Accounts limits the account ids the token may act for; "*" allows
	// all. Whether an empty list allows all or none is the service's rule
	// (see Validate).
	Accounts []string `yaml:"accounts"`
}

// Validate reports every problem. With explicitAccounts, a token must list
// its accounts (or "*"); otherwise an empty list means every account.
func (c Config) Validate(explicitAccounts bool) error {
	var errs config.Errors
	if !c.Disabled && len(c.Tokens) == 0 {
		errs.Addf("tokens", "at least one token is required unless authentication is disabled (disabled: true)")
	}
	names := map[string]bool{}
	for i, t := range c.Tokens {
		if strings.TrimSpace(t.Name) == "" {
			errs.Addf("tokens", "token %d has no name", i)
		} else if names[t.Name] {
			errs.Addf("tokens", "token name %q is used twice", t.Name)
		}
		names[t.Name] = true
		if b, err := hex.DecodeString(t.SHA256); err != nil || len(b) != sha256.Size {
			errs.Addf("tokens", "token %q: sha256 must be 64 hex characters (the hash, never the token itself)", t.Name)
		}
		if explicitAccounts && len(t.Accounts) == 0 {
			errs.Addf("tokens", "token %q: accounts must list the accounts it may act for, or \"*\" for every account", t.Name)
		}
	}
	return errs.Err()
}

// Principal is who a request authenticated as.
type Principal struct {
	Name     string
	accounts map[string]bool // nil: every account
}

// MayAccess reports whether the principal may act for account.
func (p *Principal) MayAccess(account string) bool {
	return p.accounts == nil || p.accounts[account]
}

// AllAccounts reports whether the principal may act for every account (an
// operator).
func (p *Principal) AllAccounts() bool { return p.accounts == nil }

// Authenticator checks requests against the configured tokens.
type Authenticator struct {
	disabled bool
	tokens   []tokenEntry
}

type tokenEntry struct {
	hash [sha256.Size]byte
	p    *Principal
}

// Anonymous is the principal of every request when authentication is
// disabled.
var Anonymous = &Principal{Name: "anonymous"}

// New builds an Authenticator from a validated Config.
func New(c Config) *Authenticator {
	au := &Authenticator{disabled: c.Disabled}
	for _, t := range c.Tokens {
		var e tokenEntry
		b, _ := hex.DecodeString(t.SHA256) // checked by Validate
		copy(e.hash[:], b)
		e.p = &Principal{Name: t.Name}
		for _, acc := range t.Accounts {
			if acc == Wildcard {
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

// Authenticate returns the principal for a request's headers, or why it is
// not authenticated (to be answered 401). The token is hashed and compared
// in constant time against every configured hash, so timing reveals nothing
// about which one is close.
func (a *Authenticator) Authenticate(h http.Header) (*Principal, string) {
	if a.disabled {
		return Anonymous, ""
	}
	auth := h.Get("Authorization")
	scheme, token, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return nil, "missing bearer token: send Authorization: Bearer <token>"
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
	var found *Principal
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

// Accounts returns the accounts the principal may act for, sorted; nil for
// an operator, who may act for every account.
func (p *Principal) Accounts() []string {
	if p.accounts == nil {
		return nil
	}
	out := make([]string, 0, len(p.accounts))
	for a := range p.accounts {
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}
