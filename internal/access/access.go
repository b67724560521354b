// Package access turns a request's credentials into an auth.Identity and gates
// the /v2 API with it.
//
// Credentials, by the Authorization header:
//   - none: the anonymous identity;
//   - Basic <provider name>:<OIDC ID token>: verified by that provider only
//     (`docker login -u github-actions --password-stdin`);
//   - Basic <any other name>:<OIDC ID token>: verified by the provider its
//     iss and aud select, when that provider has accept_any_username
//     (`docker login -u oauth`); refused with the reason otherwise;
//   - Basic <anything>:<berth session token>: a session token from the token service;
//   - Basic <user>:<password>: a static user;
//   - Bearer <berth access token>: verified locally, bounded by its access claim;
//   - Bearer <OIDC ID token>: routed to its provider by its issuer.
//
// The Gate then asks the access policies (internal/policy) what the identity
// may do; a registry access token additionally bounds it to its grants.
//
// NEVER log a credential: log the identity, or why a credential was refused.
package access

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/berth-registry/berth/internal/auth"
	"github.com/berth-registry/berth/internal/registry"
)

// OIDCVerifier verifies OIDC ID tokens (*oidc.Verifier).
type OIDCVerifier interface {
	Verify(ctx context.Context, raw string) (*auth.Identity, error)
	VerifyFor(ctx context.Context, provider, raw string) (*auth.Identity, error)
	Has(provider string) bool
	// LoginProvider is the provider of a login whose username names none:
	// "" when raw is no ID token of a configured issuer, an error saying
	// why when its provider does not accept any username.
	LoginProvider(username, raw string) (string, error)
}

// Users checks static users (*users.Store).
type Users interface {
	Check(ctx context.Context, username, password string) (*auth.Identity, error)
}

// Tokens verifies berth's own tokens (*token.Service).
type Tokens interface {
	VerifyAccessToken(ctx context.Context, raw string) (*auth.Identity, error)
	VerifySessionToken(ctx context.Context, raw, clientIP string) (*auth.Identity, error)
	IsBerthToken(raw string) bool
}

// Authenticator resolves credentials. Any of its sources may be nil.
type Authenticator struct {
	OIDC   OIDCVerifier
	Users  Users
	Tokens Tokens
	// TokenService, when not empty, is the service name advertised in Bearer
	// challenges with the realm <scheme>://<host>/token; empty: Basic challenges.
	TokenService string
	Logger       *slog.Logger
	// Now is the clock for remembered credentials; nil: time.Now.
	Now func() time.Time
	// Limiter, when set, refuses credential checks from a client address
	// with too many refused credentials (429).
	Limiter *Limiter
	// TrustedIPs are the token_trusted_ips of OIDC providers, by provider
	// name: an ID token of such a provider is refused from other client
	// addresses (auth.ErrUntrustedAddress), and so are the registry access
	// tokens issued for it (they carry the list).
	TrustedIPs map[string][]netip.Prefix

	creds credCache
}

// maxCredentialLen bounds an Authorization header value we try to parse.
const maxCredentialLen = 32 << 10

// Basic checks a username and password as sent with Basic authentication or
// to the token service.
func (a *Authenticator) Basic(ctx context.Context, username, password, clientIP string) (*auth.Identity, error) {
	if err := a.Limiter.check(ctx, clientIP); err != nil {
		return nil, err
	}
	id, err := a.basic(ctx, username, password, clientIP)
	a.Limiter.record(ctx, clientIP, err)
	return id, err
}

// LimitCredentials returns a *auth.RateLimitError while clientIP is over its
// failed-authentication limit, for credentials checked elsewhere (the token
// service's refresh tokens and ID tokens).
func (a *Authenticator) LimitCredentials(ctx context.Context, clientIP string) error {
	if a == nil {
		return nil
	}
	return a.Limiter.check(ctx, clientIP)
}

// CountRefusal counts err against clientIP when it refused credentials.
func (a *Authenticator) CountRefusal(ctx context.Context, clientIP string, err error) {
	if a != nil {
		a.Limiter.record(ctx, clientIP, err)
	}
}

func (a *Authenticator) basic(ctx context.Context, username, password, clientIP string) (*auth.Identity, error) {
	var id *auth.Identity
	var err error
	switch {
	case a.OIDC != nil && a.OIDC.Has(username):
		if id, err = a.OIDC.VerifyFor(ctx, username, password); err == nil {
			a.fromProvider(id)
		}
	case a.Tokens != nil && a.Tokens.IsBerthToken(password):
		id, err = a.Tokens.VerifySessionToken(ctx, password, clientIP)
	default:
		id, err = a.otherUsername(ctx, username, password)
	}
	if err != nil {
		return nil, err
	}
	if err := a.trusted(id, clientIP); err != nil {
		return nil, err
	}
	id.ClientIP = clientIP
	return id, nil
}

// otherUsername checks a login whose username names no OIDC provider and
// whose password is no berth token: an ID token of a provider that accepts
// any username, else a static user. A refusal says why (never the password).
func (a *Authenticator) otherUsername(ctx context.Context, username, password string) (*auth.Identity, error) {
	if a.OIDC != nil {
		provider, err := a.OIDC.LoginProvider(username, password)
		if err != nil {
			return nil, err
		}
		if provider != "" {
			id, err := a.OIDC.VerifyFor(ctx, provider, password)
			if err == nil {
				a.fromProvider(id)
			}
			return id, err
		}
	}
	if a.Users != nil {
		id, err := a.Users.Check(ctx, username, password)
		if err != nil && a.OIDC != nil {
			err = fmt.Errorf("%w (username %s names no OIDC provider, and the password is no ID token of a configured issuer)", err, quoteName(username))
		}
		return id, err
	}
	if a.OIDC != nil {
		return nil, fmt.Errorf("%w: username %s names no OIDC provider, and the password is no ID token of a configured issuer", auth.ErrInvalidCredentials, quoteName(username))
	}
	return nil, auth.ErrInvalidCredentials
}

// quoteName quotes a username for a log line, cut to a readable length.
func quoteName(s string) string {
	if len(s) > 64 {
		return strconv.Quote(s[:64]) + "..."
	}
	return strconv.Quote(s)
}

// fromProvider sets the token_trusted_ips of the OIDC provider id's ID token
// came from on id (fresh from a verifier, not shared).
func (a *Authenticator) fromProvider(id *auth.Identity) {
	if id.OIDC != nil {
		id.TrustedIPs = a.TrustedIPs[id.OIDC.ProviderName]
	}
}

// trusted refuses id's credential from clientIP when the client address is
// not among its TrustedIPs.
func (a *Authenticator) trusted(id *auth.Identity, clientIP string) error {
	if auth.AddrTrusted(id.TrustedIPs, clientIP) {
		return nil
	}
	provider := ""
	if id.OIDC != nil {
		provider = id.OIDC.ProviderName
	}
	return fmt.Errorf("%w (identity %s, provider %s, client %s)", auth.ErrUntrustedAddress, id.ID, provider, clientIP)
}

// Authenticate returns the request's identity: anonymous without credentials,
// or an error wrapping auth.ErrInvalidCredentials / auth.ErrUnavailable.
func (a *Authenticator) Authenticate(r *http.Request) (*auth.Identity, error) {
	id, _, err := a.authenticate(r)
	return id, err
}

// authenticate is Authenticate, with the cache entry of a remembered
// credential (nil for others) so the Gate can remember decisions with it.
func (a *Authenticator) authenticate(r *http.Request) (*auth.Identity, *credEntry, error) {
	ip := ClientIP(r)
	h := r.Header.Get("Authorization")
	if h == "" {
		return auth.Anonymous(ip), nil, nil
	}
	if len(h) > maxCredentialLen {
		return nil, nil, errors.Join(auth.ErrInvalidCredentials, errors.New("authorization header too large"))
	}
	now := a.now()
	if e := a.creds.get(h, now); e != nil {
		// Remembered, so not checked again, but still a credentialed
		// request: refused while the address is over its limit.
		if err := a.Limiter.checkRemembered(ip); err != nil {
			return nil, nil, err
		}
		if err := a.trusted(e.id, ip); err != nil {
			a.Limiter.record(r.Context(), ip, err)
			return nil, nil, err
		}
		return e.identity(ip), e, nil
	}
	ctx := r.Context()
	if err := a.Limiter.check(ctx, ip); err != nil {
		return nil, nil, err
	}
	id, err := a.verify(r, h, ip)
	if err != nil {
		a.Limiter.record(ctx, ip, err)
		return nil, nil, err
	}
	return id, a.creds.put(h, id, now), nil
}

func (a *Authenticator) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// verify checks the credentials in the Authorization header h.
func (a *Authenticator) verify(r *http.Request, h, ip string) (*auth.Identity, error) {
	scheme, cred, _ := strings.Cut(h, " ")
	cred = strings.TrimSpace(cred)
	ctx := r.Context()
	switch strings.ToLower(scheme) {
	case "basic":
		raw, err := base64.StdEncoding.DecodeString(cred)
		if err != nil {
			return nil, errors.Join(auth.ErrInvalidCredentials, errors.New("malformed basic credentials"))
		}
		user, pass, ok := strings.Cut(string(raw), ":")
		if !ok {
			return nil, errors.Join(auth.ErrInvalidCredentials, errors.New("malformed basic credentials"))
		}
		return a.basic(ctx, user, pass, ip)
	case "bearer":
		var id *auth.Identity
		var err error
		switch {
		case a.Tokens != nil && a.Tokens.IsBerthToken(cred):
			id, err = a.Tokens.VerifyAccessToken(ctx, cred)
			if err != nil {
				// a session token may be presented as a bearer token too
				if sid, serr := a.Tokens.VerifySessionToken(ctx, cred, ip); serr == nil {
					id, err = sid, nil
				}
			}
		case a.OIDC != nil:
			if id, err = a.OIDC.Verify(ctx, cred); err == nil {
				a.fromProvider(id)
			}
		default:
			err = auth.ErrInvalidCredentials
		}
		if err != nil {
			return nil, err
		}
		if err := a.trusted(id, ip); err != nil {
			return nil, err
		}
		id.ClientIP = ip
		return id, nil
	}
	return nil, errors.Join(auth.ErrInvalidCredentials, errors.New("unsupported authorization scheme"))
}

// tokenAllows reports whether a registry access token's grants cover the route.
func tokenAllows(grants []auth.Access, rt registry.Route) bool {
	switch rt.Action {
	case registry.ActionPing:
		return true
	case registry.ActionListCatalog:
		return auth.Allows(grants, "registry", "catalog", "*")
	}
	if !auth.Allows(grants, "repository", rt.Repo, string(rt.Action.Kind())) {
		return false
	}
	// A mount also reads the source repository.
	if rt.Action == registry.ActionMountBlob {
		if from := rt.From; from != "" && !auth.Allows(grants, "repository", from, "pull") {
			return false
		}
	}
	return true
}

// tokenRefused reports whether everything the route needs that a registry
// access token does not grant was asked for and refused when it was issued
// (Identity.Denied).
func tokenRefused(id *auth.Identity, rt registry.Route) bool {
	if len(id.Denied) == 0 {
		return false
	}
	has := func(typ, name, action string) bool {
		return auth.Allows(id.Access, typ, name, action) || auth.Allows(id.Denied, typ, name, action)
	}
	switch rt.Action {
	case registry.ActionPing:
		return false
	case registry.ActionListCatalog:
		return has("registry", "catalog", "*")
	}
	if !has("repository", rt.Repo, string(rt.Action.Kind())) {
		return false
	}
	if rt.Action == registry.ActionMountBlob && rt.From != "" && !has("repository", rt.From, "pull") {
		return false
	}
	return true
}

// Scope is the token scope a route needs, as advertised in challenges.
func Scope(rt registry.Route) string {
	switch rt.Action {
	case registry.ActionPing, "":
		return ""
	case registry.ActionListCatalog:
		return "registry:catalog:*"
	}
	kind := rt.Action.Kind()
	actions := string(kind)
	if kind == registry.KindPush {
		actions = "pull,push"
	}
	s := "repository:" + rt.Repo + ":" + actions
	if rt.Action == registry.ActionMountBlob && rt.From != "" {
		s += " repository:" + rt.From + ":pull"
	}
	return s
}

func (a *Authenticator) challenge(r *http.Request, rt registry.Route, errCode string, cause error) *registry.Error {
	h := http.Header{}
	h.Set("WWW-Authenticate", a.Challenge(r, Scope(rt), errCode))
	msg := "authentication required"
	if errCode == "insufficient_scope" {
		msg = "the token does not grant " + string(rt.Action.Kind()) + " access to " + rt.Repo
	} else if errors.Is(cause, auth.ErrUntrustedAddress) {
		msg = "client address not in the provider's token_trusted_ips"
	} else if cause != nil {
		msg = "invalid credentials"
	}
	return &registry.Error{Code: registry.CodeUnauthorized, Message: msg, Err: cause, Header: h}
}

// Challenge is the WWW-Authenticate value for a request.
func (a *Authenticator) Challenge(r *http.Request, scope, errCode string) string {
	if a.TokenService == "" {
		return `Basic realm="berth"`
	}
	var b strings.Builder
	b.WriteString(`Bearer realm="` + Scheme(r) + "://" + r.Host + `/token",service="` + a.TokenService + `"`)
	if scope != "" {
		b.WriteString(`,scope="` + scope + `"`)
	}
	if errCode != "" {
		b.WriteString(`,error="` + errCode + `"`)
	}
	return b.String()
}
