package oidc

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/berth-registry/berth/internal/auth"
	"github.com/berth-registry/berth/internal/config"
)

// Verifier turns OIDC ID tokens into identities. It is safe for concurrent
// use; build one per configuration and Close it when replaced.
type Verifier struct {
	providers map[string]*provider   // by name
	byIssuer  map[string][]*provider // providers of one issuer have disjoint audiences
	names     []string
	cache     *tokenCache // nil: disabled

	log          *slog.Logger
	now          func() time.Time
	fetchTimeout time.Duration
	cooldown     time.Duration
	shared       SharedCache // nil: none

	// Shared verified tokens (sharedtokens.go): queue holds the writes
	// waiting for the one background writer, writing counts the writes not
	// done yet (tests wait on it), lastWarn is when an unavailable shared
	// cache was last logged as a warning.
	queue    shareQueue
	writing  sync.WaitGroup
	lastWarn atomic.Int64

	// base is the Verifier's own context for key-set fetches and background
	// refresh; Close cancels it. Request contexts only bound waiting.
	base   context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

type provider struct {
	name       string
	preset     string
	issuer     string
	audiences  []string
	algs       map[string]bool
	algList    []string
	skew       time.Duration
	maxAge     time.Duration
	required   []string
	kubernetes bool
	// anyUsername: a Basic login whose username names no provider may use
	// this provider (accept_any_username).
	anyUsername bool
	mapping     *mapping
	keys        *keySet
	// fingerprint is SHA-256 (hex) of the settings verification depends
	// on: part of the key of shared verified-token entries.
	fingerprint string
}

// Providers returns the provider names, sorted.
func (v *Verifier) Providers() []string { return slices.Clone(v.names) }

// Has reports whether a provider of that name is configured.
func (v *Verifier) Has(provider string) bool { return v.providers[provider] != nil }

// Close stops background key refreshes. Cached keys keep verifying tokens;
// keys can no longer be fetched.
func (v *Verifier) Close() {
	v.mu.Lock()
	v.closed = true
	v.mu.Unlock()
	v.cancel()
	v.wg.Wait()
}

// background runs f on the Verifier's context until Close. It reports false,
// and does not run f, once the Verifier is closed.
func (v *Verifier) background(f func(context.Context)) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return false
	}
	v.wg.Add(1)
	go func() {
		defer v.wg.Done()
		f(v.base)
	}()
	return true
}

// Verify checks a raw ID token (a Bearer credential) and returns its
// identity. The token is routed by its unverified iss to the one provider
// with that issuer. Errors wrap auth.ErrInvalidCredentials or
// auth.ErrUnavailable (see Error).
func (v *Verifier) Verify(ctx context.Context, raw string) (*auth.Identity, error) {
	return v.verify(ctx, nil, raw)
}

// VerifyFor checks a token presented with Basic authentication, where the
// username names the provider. A token from another provider's issuer is
// refused.
func (v *Verifier) VerifyFor(ctx context.Context, provider, raw string) (*auth.Identity, error) {
	p := v.providers[provider]
	if p == nil {
		return nil, invalid("", "unknown provider %s", q(provider))
	}
	return v.verify(ctx, p, raw)
}

// LoginProvider picks the provider for a Basic login (docker login) whose
// username names no provider, by the unverified iss and aud of raw, which the
// caller then verifies with VerifyFor. It returns "" and no error when raw is
// no ID token of a configured issuer (it may be a static user's password),
// and an error saying why when the token's provider is not opted in with
// accept_any_username. It checks nothing about the token: only VerifyFor does.
func (v *Verifier) LoginProvider(username, raw string) (string, error) {
	if len(raw) > MaxTokenSize || strings.Count(raw, ".") != 2 || len(v.byIssuer) == 0 {
		return "", nil
	}
	t, err := parseUnverified(raw)
	if err != nil || len(v.byIssuer[t.iss]) == 0 {
		return "", nil
	}
	p, err := v.route(t)
	if err != nil {
		return "", invalid("", "username %s names no provider; %v", q(username), err)
	}
	if !p.anyUsername {
		return "", invalid(p.name, "username %s names no provider; the token's issuer %s belongs to provider %s (log in with -u %s, or set accept_any_username to allow any username)",
			q(username), q(t.iss), p.name, p.name)
	}
	return p.name, nil
}

// route selects the provider of a token by its iss and, when several
// providers share that issuer, by its aud (their audiences are disjoint).
// It returns nil and an error saying why when none is selected.
func (v *Verifier) route(t *unverified) (*provider, error) {
	ps := v.byIssuer[t.iss]
	switch len(ps) {
	case 0:
		return nil, fmt.Errorf("unknown issuer %s", q(t.iss))
	case 1:
		return ps[0], nil // the audience is checked with the claims
	}
	auds := audiences(t.claims["aud"])
	for _, p := range ps {
		for _, a := range auds {
			if slices.Contains(p.audiences, a) {
				return p, nil
			}
		}
	}
	want := make([]string, len(ps))
	for i, p := range ps {
		want[i] = p.name + " [" + strings.Join(p.audiences, ", ") + "]"
	}
	got := "none"
	if len(auds) > 0 {
		got = q(strings.Join(auds, ", "))
	}
	return nil, fmt.Errorf("issuer %s has several providers and the token's audience (%s) is none of theirs: %s", q(t.iss), got, strings.Join(want, "; "))
}

// audiences are the strings of an aud claim (unverified; checked later).
func audiences(aud any) []string {
	switch a := aud.(type) {
	case string:
		return []string{a}
	case []any:
		out := make([]string, 0, len(a))
		for _, e := range a {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// MapClaims applies a provider's claim handling — Kubernetes flattening,
// required claims, claim_mapping variables, validations, username and groups —
// to claims that were NOT verified here, for `berth policy explain`. NEVER use
// it to authenticate: nothing about the claims' origin is checked.
func (v *Verifier) MapClaims(ctx context.Context, provider string, claims map[string]any) (*auth.Identity, error) {
	p := v.providers[provider]
	if p == nil {
		return nil, invalid("", "unknown provider %s", q(provider))
	}
	claims = maps.Clone(claims)
	if p.kubernetes {
		flattenKubernetes(claims)
	}
	for _, c := range p.required {
		if claims[c] == nil {
			return nil, invalid(p.name, "missing required claim %s", q(c))
		}
	}
	username, groups, err := p.mapping.eval(ctx, claims)
	if err != nil {
		return nil, invalid(p.name, "%v", err)
	}
	return &auth.Identity{ID: "oidc:" + p.name + ":" + username, Username: username, Groups: groups,
		OIDC: &auth.OIDC{ProviderName: p.name, Claims: claims}}, nil
}

func (v *Verifier) verify(ctx context.Context, want *provider, raw string) (*auth.Identity, error) {
	name := ""
	if want != nil {
		name = want.name
	}
	if len(raw) > MaxTokenSize {
		return nil, invalid(name, "token too large: %d bytes, limit %d", len(raw), MaxTokenSize)
	}
	var key [32]byte
	if v.cache != nil {
		key = sha256.Sum256([]byte(raw))
		if e, ok := v.cache.get(key); ok && (want == nil || want == e.p) {
			if v.now().Before(e.until) {
				return cloneIdentity(e.id), nil
			}
			v.cache.remove(key) // expired: verify again for a precise reason
		}
	}
	t, err := parseUnverified(raw)
	if err != nil {
		return nil, invalid(name, "malformed token: %v", err)
	}
	p, rerr := v.route(t)
	switch {
	case want == nil && p == nil:
		return nil, invalid("", "%v", rerr)
	case want == nil:
	case t.iss == want.issuer && (p == nil || p == want):
		p = want // a token of another audience is refused with the claims
	case t.iss == want.issuer:
		return nil, invalid(name, "the token's issuer %s and audience belong to provider %s", q(t.iss), p.name)
	case len(v.byIssuer[t.iss]) == 0:
		return nil, invalid(name, "issuer %s is not the issuer of this provider (%s)", q(t.iss), want.issuer)
	default:
		owner := v.byIssuer[t.iss][0].name
		if p != nil {
			owner = p.name
		}
		return nil, invalid(name, "issuer %s belongs to provider %s", q(t.iss), owner)
	}
	id, until, shared, err := v.verifyWith(ctx, p, t, raw)
	if err != nil {
		return nil, err
	}
	if !shared && v.sharesTokens() {
		v.share(p, raw, until)
	}
	if v.cache == nil {
		return id, nil // not shared: no copy needed
	}
	v.cache.add(&cacheEntry{key: key, p: p, id: id, until: until})
	return cloneIdentity(id), nil
}

var b64 = base64.RawURLEncoding.Strict()

// anyAlg is every algorithm a provider may allow, for go-jose's parse before
// the token is routed; the provider's own list is checked right after.
var anyAlg = joseAlgorithms(config.OIDCAlgorithms())

// unverified is a compact JWS parsed once, by go-jose, before its signature
// is checked. Until verifyWith has checked the signature, it only routes the
// token and picks its key.
type unverified struct {
	jws      *jose.JSONWebSignature // nil: alg is no provider's (refused once routed)
	alg, kid string
	claims   map[string]any // the JWS payload, decoded (decodeClaims)
	iss      string
}

// parseUnverified parses a compact JWS without checking its signature: go-jose
// parses it (the only parse of the header), and the payload go-jose decoded
// is decoded into claims here, once. The claims only route the token until
// verifyWith has verified the signature of this very jws.
func parseUnverified(raw string) (*unverified, error) {
	hs, rest, ok1 := strings.Cut(raw, ".")
	ps, sig, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.Contains(sig, ".") {
		return nil, fmt.Errorf("not a compact JWS (want three dot-separated parts)")
	}
	// One token has one spelling, so that a verified token cannot be
	// replayed under another one (and another cache key). go-jose decodes
	// base64 leniently (CR and LF skipped, padding bits ignored) and checks
	// the signature over the header and payload re-encoded, so both are
	// refused here.
	if strings.IndexByte(raw, '\n') >= 0 || strings.IndexByte(raw, '\r') >= 0 {
		return nil, fmt.Errorf("line break in token")
	}
	for _, part := range [...]struct{ name, s string }{{"header", hs}, {"payload", ps}, {"signature", sig}} {
		if err := strictTail(part.s); err != nil {
			return nil, fmt.Errorf("%s: %v", part.name, err)
		}
	}
	t := &unverified{}
	var payload []byte
	jws, err := jose.ParseSignedCompact(raw, anyAlg)
	var badAlg *jose.ErrUnexpectedSignatureAlgorithm
	switch {
	case err == nil:
		if len(jws.Signatures) != 1 {
			return nil, fmt.Errorf("want exactly one signature")
		}
		h := jws.Signatures[0].Header
		t.jws, t.alg, t.kid = jws, h.Algorithm, h.KeyID
		payload = jws.UnsafePayloadWithoutVerification()
	case errors.As(err, &badAlg):
		// none, HS256...: decoded only to route the token, so that the
		// refusal names the provider and its algorithms.
		t.alg = string(badAlg.Got)
		if payload, err = b64.DecodeString(ps); err != nil {
			return nil, fmt.Errorf("payload: %v", err)
		}
	default:
		return nil, err
	}
	if t.claims, err = decodeClaims(payload); err != nil {
		return nil, fmt.Errorf("payload: %v", err)
	}
	switch iss := t.claims["iss"].(type) {
	case nil:
		return nil, fmt.Errorf("no iss claim")
	case string:
		t.iss = iss
	default:
		return nil, fmt.Errorf("payload: iss is not a string")
	}
	return t, nil
}

// strictTail refuses a base64url part that go-jose's lenient decoding would
// accept but Strict decoding would not: non-zero padding bits, which live in
// the last, partial quantum. (A bad character anywhere fails either way.)
func strictTail(part string) error {
	tail := part[len(part)-len(part)%4:]
	if tail == "" {
		return nil
	}
	var buf [3]byte
	_, err := b64.Decode(buf[:], []byte(tail))
	return err
}

// verifyWith fully verifies the token raw, parsed as t, for p: algorithm,
// key, signature, registered claim types, issuer, audience, times, required
// claims, then the claim mapping. until is when the identity stops being
// valid. shared reports that the signature was not checked here but taken
// from the shared cache (another replica checked it): only when the keys in
// memory cannot check it without waiting for the issuer.
func (v *Verifier) verifyWith(ctx context.Context, p *provider, t *unverified, raw string) (id *auth.Identity, until time.Time, shared bool, err error) {
	if !p.algs[t.alg] || t.jws == nil {
		return nil, until, false, invalid(p.name, "algorithm %s not allowed (allowed: %s)", q(t.alg), strings.Join(p.algList, ", "))
	}
	if v.sharesTokens() && !p.keys.holds(t.kid) {
		shared = v.sharedVerified(ctx, p, raw)
	}
	if !shared {
		cands, err := p.keys.candidates(ctx, p.name, t.kid, t.alg)
		if err != nil {
			return nil, until, false, err
		}
		if err := p.keys.verifySignature(t.jws, cands); err != nil {
			return nil, until, false, invalid(p.name, "%v", err)
		}
	}
	id, until, err = v.checkClaims(ctx, p, t)
	return id, until, shared, err
}

// checkClaims checks the claims of a token whose signature is verified:
// registered claim types, issuer, times, audience, required claims, then the
// claim mapping.
func (v *Verifier) checkClaims(ctx context.Context, p *provider, t *unverified) (*auth.Identity, time.Time, error) {
	var never time.Time
	// The signature covers the payload t.claims were decoded from: they are
	// now trusted.
	claims := t.claims
	if err := checkRegistered(claims); err != nil {
		return nil, never, invalid(p.name, "%v", err)
	}
	if t.iss != p.issuer { // routing guarantees it; checked where it matters
		return nil, never, invalid(p.name, "id token issued by a different provider, expected %q got %s", p.issuer, q(t.iss))
	}
	until, err := p.checkTimes(claims, v.now())
	if err != nil {
		return nil, never, invalid(p.name, "%v", err)
	}
	if err := p.checkAudience(claims["aud"]); err != nil {
		return nil, never, invalid(p.name, "%v", err)
	}
	if p.kubernetes {
		// Before the required-claims check, so the flat service-account
		// claims can be required too.
		flattenKubernetes(claims)
	}
	for _, c := range p.required {
		if claims[c] == nil {
			return nil, never, invalid(p.name, "missing required claim %s", q(c))
		}
	}
	username, groups, err := p.mapping.eval(ctx, claims)
	if err != nil {
		if ctx.Err() != nil {
			return nil, never, unavailable(p.name, ctx.Err(), "claim mapping interrupted: %v", ctx.Err())
		}
		return nil, never, invalid(p.name, "%v", err)
	}
	b := newIdentity()
	b.id = auth.Identity{ID: "oidc:" + p.name + ":" + username, Username: username, Groups: groups, OIDC: &b.oidc, Expires: until}
	b.oidc = auth.OIDC{ProviderName: p.name, Claims: claims}
	return &b.id, until, nil
}

// checkRegistered refuses what go-oidc's ID token decoding refused: the
// registered claims it reads must have their JSON types (absent or null is
// fine here: checkTimes and checkAudience say what they need), and every
// distributed claim name must name a source.
func checkRegistered(claims map[string]any) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("failed to unmarshal claims: "+format, args...)
	}
	for _, c := range [...]string{"sub", "nonce", "at_hash"} {
		switch claims[c].(type) {
		case nil, string:
		default:
			return bad("%s is not a string", c)
		}
	}
	for _, c := range [...]string{"exp", "iat", "nbf"} {
		switch claims[c].(type) {
		case nil, int64, float64:
		default:
			return bad("%s is not a number", c)
		}
	}
	switch aud := claims["aud"].(type) {
	case nil, string:
	case []any:
		for _, a := range aud {
			if _, ok := a.(string); !ok {
				return bad("aud is not a string or an array of strings")
			}
		}
	default:
		return bad("aud is not a string or an array of strings")
	}
	names, sources := claims["_claim_names"], claims["_claim_sources"]
	if names == nil && sources == nil {
		return nil
	}
	nm, ok := names.(map[string]any)
	if !ok && names != nil {
		return bad("_claim_names is not an object")
	}
	sm, ok := sources.(map[string]any)
	if !ok && sources != nil {
		return bad("_claim_sources is not an object")
	}
	for _, s := range sm {
		src, ok := s.(map[string]any)
		if !ok && s != nil {
			return bad("a _claim_sources entry is not an object")
		}
		for _, f := range [...]string{"endpoint", "access_token"} {
			switch src[f].(type) {
			case nil, string:
			default:
				return bad("a _claim_sources %s is not a string", f)
			}
		}
	}
	for _, n := range nm {
		src, ok := n.(string)
		if !ok && n != nil {
			return bad("a _claim_names entry is not a string")
		}
		if src == "" {
			return fmt.Errorf("failed to obtain source from claim name")
		}
		if _, ok := sm[src]; !ok {
			return fmt.Errorf("source does not exist")
		}
	}
	return nil
}

// checkTimes applies exp, nbf, iat and max_token_age with the clock skew and
// returns when the token stops being acceptable.
func (p *provider) checkTimes(claims map[string]any, now time.Time) (time.Time, error) {
	exp, ok, err := claimTime(claims, "exp")
	if err != nil {
		return time.Time{}, err
	}
	if !ok {
		return time.Time{}, fmt.Errorf("missing exp")
	}
	until := exp.Add(p.skew)
	if !now.Before(until) {
		return time.Time{}, fmt.Errorf("expired %s ago", ago(now.Sub(exp)))
	}
	nbf, ok, err := claimTime(claims, "nbf")
	if err != nil {
		return time.Time{}, err
	}
	if ok && nbf.After(now.Add(p.skew)) {
		return time.Time{}, fmt.Errorf("not valid yet: nbf is %s in the future", ago(nbf.Sub(now)))
	}
	iat, ok, err := claimTime(claims, "iat")
	if err != nil {
		return time.Time{}, err
	}
	if ok && iat.After(now.Add(p.skew)) {
		return time.Time{}, fmt.Errorf("issued in the future: iat is %s ahead", ago(iat.Sub(now)))
	}
	if p.maxAge > 0 {
		if !ok {
			return time.Time{}, fmt.Errorf("missing iat (max_token_age is set)")
		}
		limit := iat.Add(p.maxAge + p.skew)
		if !now.Before(limit) {
			return time.Time{}, fmt.Errorf("token too old: issued %s ago, max_token_age %s", ago(now.Sub(iat)), p.maxAge)
		}
		if limit.Before(until) {
			until = limit
		}
	}
	return until, nil
}

func ago(d time.Duration) time.Duration { return d.Round(time.Second) }

// claimTime reads a NumericDate claim.
func claimTime(claims map[string]any, name string) (time.Time, bool, error) {
	var secs float64
	switch n := claims[name].(type) {
	case nil:
		if _, present := claims[name]; present {
			return time.Time{}, false, fmt.Errorf("%s is null", name)
		}
		return time.Time{}, false, nil
	case int64:
		secs = float64(n)
	case float64:
		secs = n
	default:
		return time.Time{}, false, fmt.Errorf("%s is not a number", name)
	}
	if math.IsNaN(secs) || secs < 0 || secs > 1<<40 {
		return time.Time{}, false, fmt.Errorf("%s is out of range", name)
	}
	whole, frac := math.Modf(secs)
	return time.Unix(int64(whole), int64(frac*1e9)), true, nil
}

func (p *provider) checkAudience(aud any) error {
	var got []string
	switch a := aud.(type) {
	case nil:
	case string:
		got = []string{a}
	case []any:
		for _, e := range a {
			s, ok := e.(string)
			if !ok {
				return fmt.Errorf("aud contains a %T, want strings", e)
			}
			got = append(got, s)
		}
	default:
		return fmt.Errorf("aud is a %T, want a string or an array", aud)
	}
	if len(p.audiences) == 0 {
		return nil // github preset without audiences (New warned)
	}
	for _, g := range got {
		if slices.Contains(p.audiences, g) {
			return nil
		}
	}
	quoted := make([]string, 0, min(len(got), 5))
	for i, g := range got {
		if i == 5 {
			quoted = append(quoted, "...")
			break
		}
		quoted = append(quoted, q(g))
	}
	if len(got) == 0 {
		quoted = append(quoted, "none")
	}
	return fmt.Errorf("audience mismatch: got %s, want one of [%s]", strings.Join(quoted, ", "), strings.Join(p.audiences, ", "))
}

// flattenKubernetes adds the legacy flat service-account claims from a
// projected token's nested "kubernetes.io" claim, without overriding claims
// the token already has.
func flattenKubernetes(claims map[string]any) {
	k8s, _ := claims["kubernetes.io"].(map[string]any)
	if k8s == nil {
		return
	}
	set := func(name string, v any) {
		if _, ok := v.(string); ok {
			if _, exists := claims[name]; !exists {
				claims[name] = v // the string as decoded: not boxed again
			}
		}
	}
	set(k8sNamespace, k8s["namespace"])
	if sa, ok := k8s["serviceaccount"].(map[string]any); ok {
		set(k8sSAName, sa["name"])
		set(k8sSAUID, sa["uid"])
	}
}

// cloneIdentity copies what a caller may change (the struct, e.g. ClientIP,
// and Groups). Claims are shared and MUST be treated as read-only.
func cloneIdentity(id *auth.Identity) *auth.Identity {
	b := newIdentity()
	b.id = *id
	b.id.Groups = slices.Clone(id.Groups)
	if id.OIDC != nil {
		b.oidc = *id.OIDC
		b.id.OIDC = &b.oidc
	}
	return &b.id
}

// identityAlloc is an identity and its OIDC part in one allocation.
type identityAlloc struct {
	id   auth.Identity
	oidc auth.OIDC
}

func newIdentity() *identityAlloc { return new(identityAlloc) }
