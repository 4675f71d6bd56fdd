package ingest

import "github.com/auditstream/auditstream/services/internal/bearer"

// Auth is bearer-token authentication; a token with no accounts may write
// for every account.
type Auth = bearer.Config

// Token is one accepted bearer token.
type Token = bearer.Token
