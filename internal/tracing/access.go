package tracing

import (
	"context"
	"errors"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/berth-registry/berth/internal/access"
	"github.com/berth-registry/berth/internal/auth"
	"github.com/berth-registry/berth/internal/policy"
	"github.com/berth-registry/berth/internal/registry"
)

// Authorizer returns a with an "authorize" span around each decision; it
// also names the request's span by the route's action and records its
// repository. Off (nil t): a itself.
func (t *Tracer) Authorizer(a registry.Authorizer) registry.Authorizer {
	if t == nil || a == nil {
		return a
	}
	return &authorizer{t: t, next: a}
}

type authorizer struct {
	t    *Tracer
	next registry.Authorizer
}

func (z *authorizer) Authorize(ctx context.Context, r *http.Request, rt registry.Route) (context.Context, error) {
	req := trace.SpanFromContext(ctx)
	attrs := []attribute.KeyValue{attribute.String("berth.action", string(rt.Action))}
	if rt.Repo != "" {
		attrs = append(attrs, attribute.String("berth.repository", rt.Repo))
	}
	if rt.Reference != "" {
		attrs = append(attrs, attribute.String("berth.reference", rt.Reference))
	}
	if rt.From != "" {
		attrs = append(attrs, attribute.String("berth.mount_from", rt.From))
	}
	req.SetName(r.Method + " " + string(rt.Action))
	req.SetAttributes(attrs...)

	sctx, span := z.t.start(ctx, "authorize", trace.WithAttributes(attrs[0]))
	actx, err := z.next.Authorize(sctx, r, rt)
	if err != nil {
		var re *registry.Error
		if errors.As(err, &re) {
			span.SetAttributes(attribute.String("berth.refusal", string(re.Code)))
		}
		span.SetStatus(codes.Error, "refused")
	}
	span.End()
	if actx == nil {
		return nil, err
	}
	// The handler's spans are the request's children, not authorize's.
	return trace.ContextWithSpan(actx, req), err
}

// Access returns the gate's hook, nil (an untyped nil interface) when off.
func (t *Tracer) Access() access.Tracer {
	if t == nil {
		return nil
	}
	return gateTracer{t}
}

type gateTracer struct{ t *Tracer }

func (g gateTracer) Authenticate(ctx context.Context) (context.Context, func(*auth.Identity, error)) {
	ctx, span := g.t.start(ctx, "authenticate")
	return ctx, func(id *auth.Identity, err error) {
		switch {
		case err != nil:
			// Never the error's text: it may quote what the client sent.
			reason := "invalid credentials"
			if errors.Is(err, auth.ErrUnavailable) {
				reason = "unavailable"
			}
			var limited *auth.RateLimitError
			if errors.As(err, &limited) {
				reason = "rate limited"
			}
			span.SetAttributes(attribute.String("berth.auth.refused", reason))
			span.SetStatus(codes.Error, reason)
		case id != nil:
			span.SetAttributes(attribute.String("berth.identity", id.ID), attribute.String("berth.auth.method", method(id)))
			if id.OIDC != nil {
				span.SetAttributes(attribute.String("berth.oidc.provider", id.OIDC.ProviderName))
			}
		}
		span.End()
	}
}

// method is how the identity authenticated, as an attribute value.
func method(id *auth.Identity) string {
	switch {
	case id.IsAnonymous():
		return "anonymous"
	case id.Access != nil:
		return "access-token"
	case id.OIDC != nil:
		return "oidc"
	}
	return "user"
}

func (g gateTracer) Evaluate(ctx context.Context, req policy.Request) (context.Context, func(policy.Decision)) {
	ctx, span := g.t.start(ctx, "policy.evaluate", trace.WithAttributes(
		attribute.String("berth.policy.action", req.Action),
		attribute.String("berth.repository", req.Repository),
	))
	return ctx, func(d policy.Decision) {
		span.SetAttributes(attribute.Bool("berth.policy.allowed", d.Allowed),
			attribute.String("berth.policy.name", d.Policy), attribute.Int("berth.policy.rule", d.Rule))
		span.End()
	}
}
