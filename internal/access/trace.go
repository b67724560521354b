package access

import (
	"context"
	"net/http"

	"github.com/berth-registry/berth/internal/auth"
	"github.com/berth-registry/berth/internal/policy"
)

// Tracer starts the spans of the gate's two steps (internal/tracing). The
// gate's Tracer is nil when tracing is off: then neither step calls it.
type Tracer interface {
	// Authenticate starts the authentication span; done ends it with the
	// identity (nil when refused) and the refusal.
	Authenticate(ctx context.Context) (_ context.Context, done func(*auth.Identity, error))
	// Evaluate starts the policy evaluation span of req; done ends it.
	Evaluate(ctx context.Context, req policy.Request) (_ context.Context, done func(policy.Decision))
}

// authenticate is a.authenticate, traced when the gate has a Tracer.
func (g *Gate) authenticate(ctx context.Context, a *Authenticator, r *http.Request) (*auth.Identity, *credEntry, error) {
	if g.Tracer == nil {
		return a.authenticate(r)
	}
	ctx, done := g.Tracer.Authenticate(ctx)
	id, cred, err := a.authenticate(r.WithContext(ctx))
	done(id, err)
	return id, cred, err
}

// evaluate is e.Decide, traced when the gate has a Tracer.
func (g *Gate) evaluate(ctx context.Context, e *policy.Engine, in policy.Input) policy.Decision {
	if g.Tracer == nil {
		return e.Decide(ctx, in)
	}
	ctx, done := g.Tracer.Evaluate(ctx, in.Request)
	d := e.Decide(ctx, in)
	done(d)
	return d
}
