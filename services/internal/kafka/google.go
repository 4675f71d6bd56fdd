package kafka

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"cloud.google.com/go/compute/metadata"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
)

// googleScope is the access token's scope Managed Kafka checks.
const googleScope = "https://www.googleapis.com/auth/cloud-platform"

// googleToken makes OAUTHBEARER tokens for Google Cloud Managed Service
// for Apache Kafka from Application Default Credentials: the broker takes
// base64url(header).base64url(claims).base64url(access token), with the
// header {"typ":"JWT","alg":"GOOG_OAUTH2_TOKEN"} and claims naming the
// service account, as Google's own client libraries build it.
type googleToken struct {
	principal string
	ts        oauth2.TokenSource
	now       func() time.Time
}

func newGoogleToken(principal string) (*googleToken, error) {
	ctx := context.Background()
	creds, err := google.FindDefaultCredentials(ctx, googleScope)
	if err != nil {
		return nil, fmt.Errorf("kafka sasl %s: Google application default credentials: %w", MechanismOAuthBearer, err)
	}
	if principal == "" {
		if principal, err = googlePrincipal(ctx, creds); err != nil {
			return nil, fmt.Errorf("kafka sasl %s: %w", MechanismOAuthBearer, err)
		}
	}
	// The credentials' token source caches the access token and renews it
	// before it expires.
	return &googleToken{principal: principal, ts: creds.TokenSource, now: time.Now}, nil
}

func (g *googleToken) token(context.Context) (string, error) {
	t, err := g.ts.Token()
	if err != nil {
		return "", fmt.Errorf("kafka sasl %s: Google access token for %s: %w", MechanismOAuthBearer, g.principal, err)
	}
	exp := t.Expiry
	if exp.IsZero() {
		exp = g.now().Add(time.Hour)
	}
	claims, err := json.Marshal(map[string]any{
		"exp": exp.Unix(), "iat": g.now().Unix(), "iss": "Google", "scope": "kafka", "sub": g.principal,
	})
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"typ":"JWT","alg":"GOOG_OAUTH2_TOKEN"}`)) + "." +
		enc.EncodeToString(claims) + "." + enc.EncodeToString([]byte(t.AccessToken)), nil
}

// googlePrincipal is the service account the credentials act as: a key
// file's client_email, the account an external account impersonates, or
// on GCE and GKE (Workload Identity) the metadata server's default.
func googlePrincipal(ctx context.Context, creds *google.Credentials) (string, error) {
	var f struct {
		ClientEmail   string `json:"client_email"`
		Impersonation string `json:"service_account_impersonation_url"`
	}
	if len(creds.JSON) > 0 && json.Unmarshal(creds.JSON, &f) == nil {
		if f.ClientEmail != "" {
			return f.ClientEmail, nil
		}
		// .../serviceAccounts/<email>:generateAccessToken
		if _, rest, ok := strings.Cut(f.Impersonation, "/serviceAccounts/"); ok {
			if email, _, ok := strings.Cut(rest, ":"); ok && email != "" {
				return email, nil
			}
		}
	}
	if len(creds.JSON) == 0 && metadata.OnGCEWithContext(ctx) {
		email, err := metadata.EmailWithContext(ctx, "default")
		if err == nil && email != "" {
			return email, nil
		}
	}
	return "", errors.New("cannot tell which service account the Google credentials are: set sasl.oauth.google_principal")
}
