package token

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/berth-registry/berth/internal/auth"
)

// Grant types and token types (RFC 6749, 7523, 8693).
const (
	GrantPassword      = "password"
	GrantRefreshToken  = "refresh_token"
	GrantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	GrantJWTBearer     = "urn:ietf:params:oauth:grant-type:jwt-bearer"

	TokenTypeJWT         = "urn:ietf:params:oauth:token-type:jwt"
	TokenTypeIDToken     = "urn:ietf:params:oauth:token-type:id_token"
	TokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"
	// TokenTypeSession asks token exchange for a session token: an opaque
	// credential usable as a docker password under the provider's Limits.
	TokenTypeSession = "urn:berth:token-type:session"
)

const maxFormBytes = 64 << 10

// tokenResponse is the answer of every grant: Docker token spec fields
// (token, expires_in, issued_at) and OAuth2 ones (access_token, token_type,
// refresh_token, scope, issued_token_type).
type tokenResponse struct {
	Token           string `json:"token,omitempty"`
	AccessToken     string `json:"access_token"`
	TokenType       string `json:"token_type"`
	ExpiresIn       int64  `json:"expires_in"`
	IssuedAt        string `json:"issued_at"`
	RefreshToken    string `json:"refresh_token,omitempty"`
	IssuedTokenType string `json:"issued_token_type,omitempty"`
	Scope           string `json:"scope,omitempty"`
}

// ServeHTTP serves the token endpoint (GET and POST) and, for paths ending
// in /revoke, the revocation endpoint.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	if strings.HasSuffix(r.URL.Path, "/revoke") {
		s.serveRevoke(w, r)
		return
	}
	switch r.Method {
	case http.MethodGet:
		s.serveGet(w, r)
	case http.MethodPost:
		s.servePost(w, r)
	default:
		h.Set("Allow", "GET, POST")
		s.fail(w, r, "", &reqError{status: http.StatusMethodNotAllowed, code: "invalid_request", desc: "use GET or POST"})
	}
}

// issueRequest is a credential turned into an identity, ready for a token.
type issueRequest struct {
	grant   string
	id      *auth.Identity
	scopes  []auth.Access
	offline bool // a refresh token is wanted
	// fromBerthToken: the credential was a berth refresh/session token; no
	// refresh token may be minted from it.
	fromBerthToken bool
	oauth          bool // POST: include scope in the answer
}

// serveGet is the Docker token protocol: Basic credentials or none.
func (s *Service) serveGet(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if e := s.checkService(q); e != nil {
		s.fail(w, r, "basic", e)
		return
	}
	scopes, e := parseScopes(q)
	if e != nil {
		s.fail(w, r, "basic", e)
		return
	}
	offline, _ := strconv.ParseBool(q.Get("offline_token"))
	req := issueRequest{grant: "basic", scopes: scopes, offline: offline}
	ip := s.o.ClientIP(r)
	if r.Header.Get("Authorization") == "" {
		req.id = auth.Anonymous(ip)
		req.grant = "anonymous"
	} else {
		user, pass, ok := r.BasicAuth()
		switch {
		case !ok:
			s.fail(w, r, "basic", &reqError{status: http.StatusUnauthorized, code: "invalid_client",
				desc: "the token endpoint takes Basic credentials", reason: errors.New("the Authorization header is not Basic")})
			return
		case user == "" && pass == "":
			req.id = auth.Anonymous(ip)
			req.grant = "anonymous"
		default:
			id, e := s.authenticate(r.Context(), user, pass, ip, true)
			if e != nil {
				s.fail(w, r, "basic", e)
				return
			}
			req.id, req.fromBerthToken = id, isOpaque(pass)
		}
	}
	s.issue(w, r, req)
}

// servePost is OAuth2: password, refresh_token, token exchange, jwt-bearer.
func (s *Service) servePost(w http.ResponseWriter, r *http.Request) {
	f, e := readForm(w, r)
	if e != nil {
		s.fail(w, r, "", e)
		return
	}
	grant, e := single(f, "grant_type")
	if e == nil && grant == "" {
		e = badRequest("missing grant_type")
	}
	if e != nil {
		s.fail(w, r, "", e)
		return
	}
	if e := s.checkService(f); e != nil {
		s.fail(w, r, grant, e)
		return
	}
	scopes, e := parseScopes(f)
	if e != nil {
		s.fail(w, r, grant, e)
		return
	}
	ctx, ip := r.Context(), s.o.ClientIP(r)
	req := issueRequest{grant: grant, scopes: scopes, offline: f.Get("access_type") == "offline", oauth: true}
	switch grant {
	case GrantPassword:
		var user, pass string
		if user, e = required(f, "username"); e == nil {
			if pass, e = required(f, "password"); e == nil {
				req.id, e = s.authenticate(ctx, user, pass, ip, false)
				req.fromBerthToken = isOpaque(pass)
			}
		}
	case GrantRefreshToken:
		var rt string
		if rt, e = required(f, "refresh_token"); e == nil {
			var rec *record
			if rec, e = s.useOpaque(r.Context(), rt, ip); e == nil {
				req.id, req.fromBerthToken = rec.Identity.identity(ip), true
			}
		}
	case GrantTokenExchange:
		s.tokenExchange(w, r, f, req, ip)
		return
	case GrantJWTBearer:
		var assertion string
		if assertion, e = required(f, "assertion"); e == nil {
			req.id, e = s.verifyIDToken(ctx, assertion, ip)
		}
	default:
		e = &reqError{status: http.StatusBadRequest, code: "unsupported_grant_type", desc: "unsupported grant_type " + clip(grant)}
	}
	if e != nil {
		s.fail(w, r, grant, e)
		return
	}
	s.issue(w, r, req)
}

// tokenExchange is RFC 8693 with an OIDC ID token as the subject token. It
// issues an access token, or a session token when requested_token_type is
// TokenTypeSession.
func (s *Service) tokenExchange(w http.ResponseWriter, r *http.Request, f url.Values, req issueRequest, ip string) {
	fail := func(e *reqError) { s.fail(w, r, req.grant, e) }
	subject, e := required(f, "subject_token")
	if e != nil {
		fail(e)
		return
	}
	switch typ, _ := single(f, "subject_token_type"); typ {
	case TokenTypeJWT, TokenTypeIDToken:
	case "":
		fail(badRequest("missing subject_token_type"))
		return
	default:
		fail(badRequest("unsupported subject_token_type " + clip(typ) + "; want " + TokenTypeIDToken + " or " + TokenTypeJWT))
		return
	}
	if f.Has("actor_token") {
		fail(badRequest("actor_token is not supported"))
		return
	}
	for _, a := range f["audience"] {
		if a != s.o.Service {
			fail(&reqError{status: http.StatusBadRequest, code: "invalid_target", desc: "unknown audience " + clip(a)})
			return
		}
	}
	want, e := single(f, "requested_token_type")
	if e != nil {
		fail(e)
		return
	}
	if want != "" && want != TokenTypeAccessToken && want != TokenTypeSession {
		fail(badRequest("unsupported requested_token_type " + clip(want)))
		return
	}
	id, e := s.verifyIDToken(r.Context(), subject, ip)
	if e != nil {
		fail(e)
		return
	}
	if want != TokenTypeSession {
		req.id = id
		s.issue(w, r, req)
		return
	}
	raw, rec, err := s.store.create(r.Context(), kindSession, id, s.limitsFor(id))
	if err != nil {
		fail(internalError(err))
		return
	}
	now := s.o.Now()
	s.log.DebugContext(r.Context(), "token: session token issued", "grant", req.grant, "identity", id.ID,
		"expires", rec.Expires, "max_expires", rec.MaxExpires, "max_uses", rec.MaxUses)
	writeJSON(w, http.StatusOK, tokenResponse{
		AccessToken: raw, TokenType: "N_A", IssuedTokenType: TokenTypeSession,
		ExpiresIn: max(int64(rec.Expires.Sub(now)/time.Second), 1), IssuedAt: now.UTC().Format(time.RFC3339),
	})
}

// issue grants what the policy allows of the request and answers with an
// access token (and a refresh token when asked for and allowed).
func (s *Service) issue(w http.ResponseWriter, r *http.Request, req issueRequest) {
	ctx := r.Context()
	granted := s.grant(ctx, req.id, req.scopes)
	// What was asked for and refused goes into the token, so the registry
	// answers 403 DENIED for it instead of 401 insufficient_scope. It is a
	// hint: a token too large with it is issued without it.
	denied := refused(req.scopes, granted)
	raw, issued, exp, err := s.signAccessDenied(req.id, granted, denied)
	if errors.Is(err, errTooLarge) && len(denied) > 0 {
		denied = nil
		raw, issued, exp, err = s.signAccess(req.id, granted)
	}
	if err != nil {
		s.fail(w, r, req.grant, internalError(err))
		return
	}
	resp := tokenResponse{
		Token: raw, AccessToken: raw, TokenType: "Bearer",
		ExpiresIn: int64(exp.Sub(issued) / time.Second), IssuedAt: issued.Format(time.RFC3339),
	}
	if req.oauth {
		resp.Scope = scopeString(granted)
		if req.grant == GrantTokenExchange {
			resp.IssuedTokenType = TokenTypeAccessToken
		}
	}
	if req.offline && !req.id.IsAnonymous() && !req.fromBerthToken {
		rt, _, err := s.store.create(ctx, kindRefresh, req.id, s.limitsFor(req.id))
		if err != nil {
			s.fail(w, r, req.grant, internalError(err))
			return
		}
		resp.RefreshToken = rt
	}
	s.log.DebugContext(ctx, "token: access token issued", "grant", req.grant, "identity", req.id.ID,
		"client_ip", req.id.ClientIP, "requested", scopeString(req.scopes), "granted", scopeString(granted), "denied", scopeString(denied),
		"refresh_token", resp.RefreshToken != "")
	writeJSON(w, http.StatusOK, resp)
}

// serveRevoke is RFC 7009: POST token=... → 200, whether or not the token
// was known, so the endpoint cannot be used to probe tokens.
func (s *Service) serveRevoke(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		s.fail(w, r, "revoke", &reqError{status: http.StatusMethodNotAllowed, code: "invalid_request", desc: "use POST"})
		return
	}
	f, e := readForm(w, r)
	if e == nil {
		var raw string
		if raw, e = required(f, "token"); e == nil {
			known, err := s.store.revoke(r.Context(), raw)
			if err != nil {
				e = internalError(err)
			} else {
				s.log.DebugContext(r.Context(), "token: revocation", "known", known)
			}
		}
	}
	if e != nil {
		s.fail(w, r, "revoke", e)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// authenticate runs Options.Authenticate. basic selects the error shape:
// 401 for the GET protocol, 400 invalid_grant for the password grant.
func (s *Service) authenticate(ctx context.Context, user, pass, ip string, basic bool) (*auth.Identity, *reqError) {
	var id *auth.Identity
	err := errors.New("token: no authenticator configured")
	if s.o.Authenticate != nil {
		id, err = s.o.Authenticate(ctx, user, pass, ip)
	}
	if err == nil && (id == nil || id.ID == "" || id.IsAnonymous()) {
		err = errors.New("token: authenticator returned no identity")
	}
	if err != nil {
		if errors.Is(err, auth.ErrUnavailable) {
			return nil, unavailable(err)
		}
		if limited := (*auth.RateLimitError)(nil); errors.As(err, &limited) {
			return nil, rateLimited(err, limited.RetryAfter)
		}
		desc := "invalid credentials"
		if errors.Is(err, auth.ErrUntrustedAddress) {
			desc = untrustedDesc
		}
		if basic {
			return nil, &reqError{status: http.StatusUnauthorized, code: "invalid_client", desc: desc, reason: err}
		}
		if desc != untrustedDesc {
			desc = "invalid username or password"
		}
		return nil, &reqError{status: http.StatusBadRequest, code: "invalid_grant", desc: desc, reason: err}
	}
	// An ID token (not a berth token, whose record holds its own list)
	// from outside its provider's token_trusted_ips; Authenticate
	// normally refuses it itself (access.Authenticator).
	if id.OIDC != nil && !isOpaque(pass) && !auth.AddrTrusted(s.limitsFor(id).TrustedIPs, ip) {
		err := fmt.Errorf("%w (identity %s, client %s)", auth.ErrUntrustedAddress, id.ID, ip)
		s.countRefusal(ctx, ip, err)
		if basic {
			return nil, &reqError{status: http.StatusUnauthorized, code: "invalid_client", desc: untrustedDesc, reason: err}
		}
		return nil, &reqError{status: http.StatusBadRequest, code: "invalid_grant", desc: untrustedDesc, reason: err}
	}
	cp := *id
	if cp.ClientIP == "" {
		cp.ClientIP = ip
	}
	return &cp, nil
}

func (s *Service) verifyIDToken(ctx context.Context, raw, ip string) (*auth.Identity, *reqError) {
	if s.o.VerifyIDToken == nil {
		return nil, &reqError{status: http.StatusBadRequest, code: "unsupported_grant_type", desc: "no OIDC providers are configured"}
	}
	if e := s.limit(ctx, ip); e != nil {
		return nil, e
	}
	id, err := s.o.VerifyIDToken(ctx, raw)
	if err == nil && (id == nil || id.ID == "" || id.IsAnonymous()) {
		err = errors.New("token: ID token verifier returned no identity")
	}
	if err != nil {
		s.countRefusal(ctx, ip, err)
		if errors.Is(err, auth.ErrUnavailable) {
			return nil, unavailable(err)
		}
		return nil, &reqError{status: http.StatusBadRequest, code: "invalid_grant", desc: "invalid ID token", reason: err}
	}
	if !auth.AddrTrusted(s.limitsFor(id).TrustedIPs, ip) {
		err := fmt.Errorf("%w (identity %s, client %s)", auth.ErrUntrustedAddress, id.ID, ip)
		s.countRefusal(ctx, ip, err)
		return nil, &reqError{status: http.StatusBadRequest, code: "invalid_grant", desc: untrustedDesc, reason: err}
	}
	cp := *id
	cp.ClientIP = ip
	return &cp, nil
}

// untrustedDesc answers an ID token presented from outside its provider's
// token_trusted_ips.
const untrustedDesc = "client address not in the provider's token_trusted_ips"

func (s *Service) useOpaque(ctx context.Context, raw, ip string) (*record, *reqError) {
	if e := s.limit(ctx, ip); e != nil {
		return nil, e
	}
	rec, err := s.store.use(ctx, raw, ip)
	if err == nil {
		return rec, nil
	}
	s.countRefusal(ctx, ip, err)
	var ref refusal
	if errors.As(err, &ref) {
		return nil, &reqError{status: http.StatusBadRequest, code: "invalid_grant", desc: string(ref), reason: err}
	}
	return nil, internalError(err)
}

// limit refuses a credential check from ip while it is over Options.Limiter's
// limit: 429 with Retry-After, even for good credentials.
func (s *Service) limit(ctx context.Context, ip string) *reqError {
	if s.o.Limiter == nil {
		return nil
	}
	err := s.o.Limiter.LimitCredentials(ctx, ip)
	if limited := (*auth.RateLimitError)(nil); errors.As(err, &limited) {
		return rateLimited(err, limited.RetryAfter)
	}
	return nil
}

// countRefusal counts a credential the service refused against ip.
func (s *Service) countRefusal(ctx context.Context, ip string, err error) {
	if s.o.Limiter != nil {
		s.o.Limiter.CountRefusal(ctx, ip, err)
	}
}

// checkService refuses a service parameter naming another service. An
// empty one is accepted: go-containerregistry sends service= when the
// challenge had none.
func (s *Service) checkService(v url.Values) *reqError {
	for _, svc := range v["service"] {
		if svc != "" && svc != s.o.Service {
			return badRequest("unknown service " + clip(svc))
		}
	}
	return nil
}

// parseScopes reads every scope parameter: docker repeats the parameter,
// OAuth2 clients space-separate scopes in one.
func parseScopes(v url.Values) ([]auth.Access, *reqError) {
	a, err := ParseScope(strings.Join(v["scope"], " "))
	if err != nil {
		return nil, &reqError{status: http.StatusBadRequest, code: "invalid_scope", desc: strings.TrimPrefix(err.Error(), "token: ")}
	}
	return a, nil
}

func readForm(w http.ResponseWriter, r *http.Request) (url.Values, *reqError) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, badRequest("want a form body (application/x-www-form-urlencoded)")
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return nil, badRequest("malformed or oversized form body")
	}
	return r.PostForm, nil
}

// single returns a parameter that may appear at most once (RFC 6749 §3.1).
func single(f url.Values, name string) (string, *reqError) {
	if len(f[name]) > 1 {
		return "", badRequest("parameter " + name + " repeated")
	}
	return f.Get(name), nil
}

func required(f url.Values, name string) (string, *reqError) {
	v, e := single(f, name)
	if e == nil && v == "" {
		e = badRequest("missing " + name)
	}
	return v, e
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // cannot happen for our types
		status, b = http.StatusInternalServerError, []byte(`{"error":"server_error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
