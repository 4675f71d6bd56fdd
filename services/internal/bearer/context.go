package bearer

import "context"

type principalKey struct{}

// WithPrincipal returns ctx carrying p, for a request made in process on
// behalf of a principal already authenticated (the destinations console
// calling the API for its signed-in admin). Nothing an HTTP client sends can
// set it.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the principal WithPrincipal put in ctx, or nil.
func FromContext(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}
