package access

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/berth-registry/berth/internal/auth"
	"github.com/berth-registry/berth/internal/policy"
	"github.com/berth-registry/berth/internal/registry"
)

// State is what the Gate enforces; a configuration reload swaps it whole.
type State struct {
	// Authn resolves credentials; nil when no authentication is configured
	// (every request is anonymous).
	Authn *Authenticator
	// Policy decides; nil allows everything (open mode without policies).
	Policy *policy.Engine
	// Immutable protects tags; nil protects none.
	Immutable *policy.Immutable

	// anon remembers the decisions taken for anonymous requests: the
	// policies see no identity then (not even the address), so a decision
	// is a pure function of the engine and the request. A reload swaps the
	// State, and with it this memo.
	anon credEntry
}

// Gate is the registry.Authorizer: authentication, then access policies. It
// also answers the token service's grants and the catalog's visibility, so
// there is one authorization path.
type Gate struct {
	cur    atomic.Pointer[State]
	Logger *slog.Logger
	// Tracer, when not nil, traces authentication and policy evaluation.
	Tracer Tracer
}

// NewGate returns a gate enforcing s.
func NewGate(s *State, logger *slog.Logger) *Gate {
	g := &Gate{Logger: logger}
	g.cur.Store(s)
	return g
}

// Store replaces what the gate enforces (configuration reload).
func (g *Gate) Store(s *State) { g.cur.Store(s) }

// Load returns what the gate enforces now.
func (g *Gate) Load() *State { return g.cur.Load() }

func (g *Gate) log() *slog.Logger {
	if g.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return g.Logger
}

// Authorize implements registry.Authorizer.
func (g *Gate) Authorize(ctx context.Context, r *http.Request, rt registry.Route) (context.Context, error) {
	st := g.Load()
	a := st.Authn
	var id *auth.Identity
	var cred *credEntry // a remembered credential: decisions are remembered with it
	if a == nil {
		id = auth.Anonymous(ClientIP(r))
	} else {
		var err error
		if id, cred, err = g.authenticate(ctx, a, r); err != nil {
			var limited *auth.RateLimitError
			if errors.As(err, &limited) {
				h := http.Header{}
				h.Set("Retry-After", strconv.Itoa(int((limited.RetryAfter+time.Second-1)/time.Second)))
				return ctx, &registry.Error{Code: registry.CodeTooManyRequests, Message: "too many failed authentication attempts from this address; retry later", Err: err, Header: h}
			}
			if errors.Is(err, auth.ErrUnavailable) {
				g.log().WarnContext(ctx, "credentials cannot be verified now", "err", err)
				return ctx, &registry.Error{Code: registry.CodeUnavailable, Message: "credentials cannot be verified right now; retry later", Err: err}
			}
			g.log().DebugContext(ctx, "credentials refused", "reason", err)
			return ctx, a.challenge(r, rt, "invalid_token", err)
		}
	}
	ctx = registry.WithIdentity(ctx, id.ID)
	ctx = auth.WithIdentity(ctx, id)
	if id.OIDC != nil && g.log().Enabled(ctx, slog.LevelDebug) {
		// The claims, never the token.
		g.log().DebugContext(ctx, "oidc identity", "provider", id.OIDC.ProviderName, "id", id.ID, "claims", auth.LogClaims(id.OIDC.Claims))
	}
	refused := false // asked of the token service, and refused by the policies
	if id.Access != nil && !tokenAllows(id.Access, rt) {
		if !tokenRefused(id, rt) {
			// Never asked for: the client comes back for a wider token.
			return ctx, a.challenge(r, rt, "insufficient_scope", nil)
		}
		// Asked for and refused: decided again below, so that the answer
		// is the policies' 403 DENIED, as without the token service.
		refused = true
	}

	// The API version check is allowed for any authenticated identity; an
	// anonymous caller gets the challenge so clients send credentials.
	if rt.Action == registry.ActionPing {
		if a != nil && id.IsAnonymous() {
			return ctx, a.challenge(r, rt, "", nil)
		}
		return ctx, nil
	}
	d := g.decideFor(ctx, st, id, cred, rt, requestOf(r, rt))
	deniedKind, deniedRoute := rt.Action.Kind(), rt
	if d.Allowed && rt.Action == registry.ActionMountBlob && rt.From != "" {
		// A mount also reads the source repository.
		src := policy.Request{Action: "pull", Operation: string(registry.ActionGetBlob), Repository: rt.From,
			Digest: r.URL.Query().Get("mount"), Method: r.Method}
		deniedRoute = registry.Route{Action: registry.ActionGetBlob, Repo: rt.From}
		deniedKind = registry.KindPull
		d = g.decideFor(ctx, st, id, cred, deniedRoute, src)
	}
	if d.Allowed {
		if refused {
			// The policies changed since the token was issued: a new token
			// grants it; this one never does.
			return ctx, a.challenge(r, rt, "insufficient_scope", nil)
		}
		return ctx, nil
	}
	if id.IsAnonymous() && a != nil {
		return ctx, a.challenge(r, rt, "", nil)
	}
	return ctx, &registry.Error{Code: registry.CodeDenied,
		Message: fmt.Sprintf("%s may not %s %s", describe(id), deniedKind, target(deniedRoute))}
}

// LimitCredentials is the current Authenticator's LimitCredentials (nil
// without authentication): the token service's token.Limiter, across reloads.
func (g *Gate) LimitCredentials(ctx context.Context, clientIP string) error {
	return g.Load().Authn.LimitCredentials(ctx, clientIP)
}

// CountRefusal is the current Authenticator's CountRefusal.
func (g *Gate) CountRefusal(ctx context.Context, clientIP string, err error) {
	g.Load().Authn.CountRefusal(ctx, clientIP, err)
}

// decideFor is decide, remembered with a cached credential: the same
// credential asking the same thing of the same policies gets the same answer
// (policies are pure functions of identity and request), so only the first
// request of a `docker pull` evaluates CEL. Every decision is still audited.
func (g *Gate) decideFor(ctx context.Context, st *State, id *auth.Identity, cred *credEntry, rt registry.Route, req policy.Request) policy.Decision {
	if st.Policy == nil {
		return g.decide(ctx, st, id, rt, req)
	}
	ip := id.ClientIP
	if cred == nil {
		if !id.IsAnonymous() || id.Access != nil {
			return g.decide(ctx, st, id, rt, req)
		}
		cred, ip = &st.anon, "" // the policies do not see an anonymous caller's address
	}
	limit := maxDecisionEntries
	if cred == &st.anon {
		limit = maxAnonDecisions
	}
	k := keyOf(st.Policy, ip, req)
	if d, ok := cred.decision(k); ok {
		g.audit(ctx, id, req, d)
		return d
	}
	d := g.decide(ctx, st, id, rt, req)
	if ctx.Err() == nil { // an interrupted evaluation says nothing about the next request
		cred.remember(k, d, limit)
	}
	return d
}

// decide asks the policy and writes the audit line: denies at info, allows at debug.
func (g *Gate) decide(ctx context.Context, st *State, id *auth.Identity, rt registry.Route, req policy.Request) policy.Decision {
	if st.Policy == nil {
		return policy.Decision{Allowed: true, Rule: -1}
	}
	d := g.evaluate(ctx, st.Policy, policy.Input{Identity: PolicyIdentity(id), Request: req})
	g.audit(ctx, id, req, d)
	return d
}

// audit writes the decision's log line: denies at info, allows at debug.
func (g *Gate) audit(ctx context.Context, id *auth.Identity, req policy.Request, d policy.Decision) {
	level := slog.LevelDebug
	if !d.Allowed {
		level = slog.LevelInfo
	}
	if g.log().Enabled(ctx, level) {
		attrs := []slog.Attr{
			slog.String("identity", id.ID), slog.String("username", id.Username),
			slog.String("repository", req.Repository), slog.String("action", req.Action),
			slog.String("operation", req.Operation), slog.Bool("allowed", d.Allowed),
			slog.String("policy", d.Policy), slog.Int("rule", d.Rule), slog.String("reason", d.Reason),
		}
		if id.OIDC != nil {
			attrs = append(attrs, slog.String("provider", id.OIDC.ProviderName))
			if sub, ok := id.OIDC.Claims["sub"].(string); ok {
				attrs = append(attrs, slog.String("subject", sub))
			}
		}
		g.log().LogAttrs(ctx, level, "access decision", attrs...)
	}
}

// Check reports whether id may perform rt (Method set as the API request
// would have it), deciding as Authorize does once a request is
// authenticated: an access token's grants bound it, then the policies
// decide. The web UI asks it what to show and what to allow.
func (g *Gate) Check(ctx context.Context, id *auth.Identity, rt registry.Route) bool {
	if id == nil {
		id = auth.Anonymous("")
	}
	if id.Access != nil && !tokenAllows(id.Access, rt) {
		return false
	}
	return g.decide(ctx, g.Load(), id, rt, requestFor(rt.Method, nil, rt)).Allowed
}

// CanList reports whether the request's identity may pull from repo: the
// catalog lists only those.
func (g *Gate) CanList(ctx context.Context, repo string) bool {
	st := g.Load()
	if st.Policy == nil {
		return true
	}
	id := auth.FromContext(ctx)
	if id == nil {
		id = auth.Anonymous("")
	}
	if id.Access != nil && !auth.Allows(id.Access, "repository", repo, "pull") && !auth.Allows(id.Access, "registry", "catalog", "*") {
		return false
	}
	d := st.Policy.Decide(ctx, policy.Input{Identity: PolicyIdentity(id),
		Request: policy.Request{Action: "pull", Operation: string(registry.ActionListTags), Repository: repo, Method: http.MethodGet}})
	return d.Allowed
}

// Grant returns what of requested the identity may have, for the token
// service: each repository action is decided by the policies.
func (g *Gate) Grant(ctx context.Context, id *auth.Identity, requested []auth.Access) []auth.Access {
	st := g.Load()
	var out []auth.Access
	for _, req := range requested {
		var ok []string
		if req.Type == "registry" {
			if g.grants(ctx, st, id, req.Type, req.Name, "*") {
				ok = req.Actions
			}
		} else {
			all := expand(req.Actions)
			for _, action := range all {
				if g.grants(ctx, st, id, req.Type, req.Name, action) {
					ok = append(ok, action)
				}
			}
			if len(ok) == 3 && len(all) == 3 && slices.Contains(req.Actions, "*") {
				ok = []string{"*"} // everything "*" asked for
			}
		}
		if len(ok) > 0 {
			out = append(out, auth.Access{Type: req.Type, Name: req.Name, Actions: ok})
		}
	}
	return out
}

func (g *Gate) grants(ctx context.Context, st *State, id *auth.Identity, typ, name, action string) bool {
	switch {
	case typ == "registry" && name == "catalog":
		// The catalog is filtered per repository: any identity the
		// registry serves may ask for it.
		return !id.IsAnonymous() || st.Authn == nil
	case typ != "repository":
		return false
	}
	op := map[string]registry.Action{"pull": registry.ActionGetManifest, "push": registry.ActionPutManifest, "delete": registry.ActionDeleteManifest}[action]
	if op == "" {
		return false
	}
	if st.Policy == nil {
		return !id.IsAnonymous() || st.Authn == nil
	}
	d := g.decide(ctx, st, id, registry.Route{Action: op, Repo: name},
		policy.Request{Action: action, Operation: string(op), Repository: name})
	return d.Allowed
}

func expand(actions []string) []string {
	for _, a := range actions {
		if a == "*" {
			return []string{"pull", "push", "delete"}
		}
	}
	return actions
}

// PolicyIdentity converts an identity for the policy engine (nil for anonymous).
func PolicyIdentity(id *auth.Identity) *policy.Identity {
	if id == nil || id.IsAnonymous() {
		return nil
	}
	p := &policy.Identity{ID: id.ID, Username: id.Username, Groups: id.Groups, ClientIP: id.ClientIP}
	if id.OIDC != nil {
		p.OIDC = &policy.OIDC{ProviderName: id.OIDC.ProviderName, Claims: id.OIDC.Claims}
	}
	return p
}

// requestOf is the policy's view of a resolved request.
func requestOf(r *http.Request, rt registry.Route) policy.Request {
	var q url.Values
	if r.URL.RawQuery != "" {
		q = r.URL.Query() // only when there is one: the hot GETs have none
	}
	return requestFor(r.Method, q, rt)
}

// requestFor is requestOf from the method and query alone.
func requestFor(method string, q url.Values, rt registry.Route) policy.Request {
	req := policy.Request{
		Action:     string(rt.Action.Kind()),
		Operation:  string(rt.Action),
		Repository: rt.Repo,
		Reference:  rt.Reference,
		From:       rt.From,
		Method:     method,
	}
	switch rt.Action {
	case registry.ActionPutManifest, registry.ActionGetManifest, registry.ActionDeleteManifest:
		if strings.Contains(rt.Reference, ":") {
			req.Digest = rt.Reference
		} else if rt.Reference != "" {
			req.Tags = []string{rt.Reference}
		}
		if rt.Action == registry.ActionPutManifest {
			req.Tags = append(req.Tags, q["tag"]...)
		}
	case registry.ActionGetBlob, registry.ActionDeleteBlob, registry.ActionGetReferrers:
		req.Digest = rt.Reference
		if rt.Action == registry.ActionGetReferrers {
			req.ArtifactType = q.Get("artifactType")
		}
	case registry.ActionMountBlob:
		req.Digest = q.Get("mount")
	case registry.ActionStartUpload, registry.ActionFinishUpload:
		req.Digest = q.Get("digest")
	}
	return req
}

func describe(id *auth.Identity) string {
	if id.Username != "" {
		return id.Username
	}
	return id.ID
}

func target(rt registry.Route) string {
	if rt.Repo == "" {
		return "the registry catalog"
	}
	return rt.Repo
}
