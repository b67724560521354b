package token

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/berth-registry/berth/internal/auth"
)

const (
	// accessTokenTyp is the JWS typ of access tokens (RFC 9068), so no other
	// JWT signed with the same key can pass for one.
	accessTokenTyp = "at+jwt"
	// maxTokenBytes caps a serialised access token: clients and proxies
	// choke on larger Authorization headers.
	maxTokenBytes = 8 << 10
	// clockSkew is tolerated on exp/nbf/iat between berth replicas.
	clockSkew = 30 * time.Second
)

var errTooLarge = errors.New("token: the token would exceed 8 KiB; request fewer scopes or map fewer OIDC claims")

// accessClaims are the claims of an access token.
type accessClaims struct {
	jwt.Claims
	Access []auth.Access `json:"access"`
	// Denied is what was asked for and refused by the policies (actions
	// only: the reason is decided again, and worded, by the registry).
	Denied       []auth.Access  `json:"denied,omitempty"`
	Username     string         `json:"username,omitempty"`
	Groups       []string       `json:"groups,omitempty"`
	OIDCProvider string         `json:"oidc_provider,omitempty"`
	OIDCClaims   map[string]any `json:"oidc_claims,omitempty"`
	// TrustedIPs are the CIDRs of the OIDC provider's token_trusted_ips:
	// the token is refused from other client addresses.
	TrustedIPs []string `json:"trusted_ips,omitempty"`

	trusted []netip.Prefix // TrustedIPs, parsed once per verification
}

// signAccess issues an access token for id granting access.
func (s *Service) signAccess(id *auth.Identity, access []auth.Access) (raw string, issued, exp time.Time, err error) {
	return s.signAccessDenied(id, access, nil)
}

// signAccessDenied is signAccess recording the refused requests denied.
func (s *Service) signAccessDenied(id *auth.Identity, access, denied []auth.Access) (raw string, issued, exp time.Time, err error) {
	now := s.o.Now().UTC().Truncate(time.Second)
	exp = now.Add(s.o.AccessTTL)
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", now, exp, fmt.Errorf("token: random: %w", err)
	}
	if access == nil {
		access = []auth.Access{}
	}
	sn := snapshotOf(id)
	c := accessClaims{
		Claims: jwt.Claims{
			Issuer: s.o.Issuer, Subject: id.ID, Audience: jwt.Audience{s.o.Service},
			Expiry: jwt.NewNumericDate(exp), NotBefore: jwt.NewNumericDate(now), IssuedAt: jwt.NewNumericDate(now),
			ID: base64.RawURLEncoding.EncodeToString(jti),
		},
		Access: access, Denied: denied, Username: sn.Username, Groups: sn.Groups,
		OIDCProvider: sn.OIDCProvider, OIDCClaims: sn.OIDCClaims,
	}
	ips := id.TrustedIPs
	if len(ips) == 0 && id.OIDC != nil {
		ips = s.limitsFor(id).TrustedIPs
	}
	for _, p := range ips {
		c.TrustedIPs = append(c.TrustedIPs, p.String())
	}
	payload, err := json.Marshal(c)
	if err != nil {
		// OIDC claims that do not encode (NaN, channels) are the caller's bug.
		return "", now, exp, fmt.Errorf("token: encode claims: %w", err)
	}
	// Base64 grows the payload by 4/3; refuse before paying for a signature.
	if base64.RawURLEncoding.EncodedLen(len(payload)) > maxTokenBytes {
		return "", now, exp, errTooLarge
	}
	sig, err := s.active.Load().current.signer.Sign(payload)
	if err != nil {
		return "", now, exp, fmt.Errorf("token: sign: %w", err)
	}
	raw, err = sig.CompactSerialize()
	if err != nil {
		return "", now, exp, fmt.Errorf("token: serialise: %w", err)
	}
	if len(raw) > maxTokenBytes {
		return "", now, exp, errTooLarge
	}
	return raw, now, exp, nil
}

// VerifyAccessToken verifies an access token issued by this Service: its
// signature (this key, its algorithm only), typ, iss, aud = Service, exp and
// nbf (30s skew). It does no I/O. The identity is rebuilt from the claims;
// its Access is the token's grants and never nil. ClientIP is left for the
// caller to set. Errors wrap auth.ErrInvalidCredentials.
//
// Tokens that verified are remembered (by SHA-256, until they expire) so a
// token presented on every request of a push costs one signature check.
func (s *Service) VerifyAccessToken(ctx context.Context, raw string) (*auth.Identity, error) {
	if len(raw) > maxTokenBytes {
		return nil, fmt.Errorf("token: access token too large: %w", auth.ErrInvalidCredentials)
	}
	key := sha256.Sum256([]byte(raw))
	now := s.o.Now()
	c := s.verified.get(key, now)
	if c == nil {
		var err error
		if c, err = s.verifyAccess(raw, now); err != nil {
			return nil, fmt.Errorf("%w: %w", err, auth.ErrInvalidCredentials)
		}
		s.verified.put(key, c, now)
	}
	// A fresh Identity each time (callers set ClientIP); its groups, claims
	// and access lists are shared with the cache and MUST NOT be modified.
	id := snapshot{ID: c.Subject, Username: c.Username, Groups: c.Groups, OIDCProvider: c.OIDCProvider, OIDCClaims: c.OIDCClaims}.identity("")
	id.Access, id.Denied = c.Access, c.Denied
	id.Expires = c.Expiry.Time().Add(clockSkew)
	id.TrustedIPs = c.trusted
	if id.Access == nil {
		id.Access = []auth.Access{} // bound to its (empty) grants, never unbounded
	}
	return id, nil
}

// verifiedCache remembers verified access-token claims by token hash.
type verifiedCache struct {
	mu sync.RWMutex
	m  map[[sha256.Size]byte]*accessClaims
}

const maxVerifiedCache = 4096

// get returns cached claims still within their validity window at now.
func (vc *verifiedCache) get(key [sha256.Size]byte, now time.Time) *accessClaims {
	vc.mu.RLock()
	c := vc.m[key]
	vc.mu.RUnlock()
	if c == nil || !now.Before(c.Expiry.Time().Add(clockSkew)) || (c.NotBefore != nil && now.Before(c.NotBefore.Time().Add(-clockSkew))) {
		return nil
	}
	return c
}

// reset forgets every verified token.
func (vc *verifiedCache) reset() {
	vc.mu.Lock()
	vc.m = nil
	vc.mu.Unlock()
}

func (vc *verifiedCache) put(key [sha256.Size]byte, c *accessClaims, now time.Time) {
	vc.mu.Lock()
	defer vc.mu.Unlock()
	if vc.m == nil {
		vc.m = map[[sha256.Size]byte]*accessClaims{}
	}
	if len(vc.m) >= maxVerifiedCache {
		for k, e := range vc.m {
			if !now.Before(e.Expiry.Time().Add(clockSkew)) {
				delete(vc.m, k)
			}
		}
		for k := range vc.m { // still full: drop an arbitrary eighth
			if len(vc.m) < maxVerifiedCache-maxVerifiedCache/8 {
				break
			}
			delete(vc.m, k)
		}
	}
	vc.m[key] = c
}

func (s *Service) verifyAccess(raw string, now time.Time) (*accessClaims, error) {
	sig, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA})
	if err != nil {
		return nil, errors.New("token: malformed access token")
	}
	if len(sig.Signatures) != 1 {
		return nil, errors.New("token: malformed access token")
	}
	h := sig.Signatures[0].Header
	k, ok := s.active.Load().byKid[h.KeyID]
	if !ok {
		return nil, errors.New("token: access token signed with an unknown key")
	}
	if !k.until.IsZero() && !now.Before(k.until) {
		return nil, errors.New("token: access token signed with a key retired too long ago")
	}
	if jose.SignatureAlgorithm(h.Algorithm) != k.alg {
		return nil, errors.New("token: access token algorithm does not match its key")
	}
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != accessTokenTyp {
		return nil, errors.New("token: not an access token (typ)")
	}
	payload, err := sig.Verify(k.pub)
	if err != nil {
		return nil, errors.New("token: bad access token signature")
	}
	var c accessClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, errors.New("token: malformed access token claims")
	}
	if c.Expiry == nil || c.Subject == "" {
		return nil, errors.New("token: access token without exp or sub")
	}
	for _, t := range c.TrustedIPs {
		p, err := netip.ParsePrefix(t)
		if err != nil {
			return nil, errors.New("token: malformed trusted_ips claim")
		}
		c.trusted = append(c.trusted, p)
	}
	err = c.Claims.ValidateWithLeeway(jwt.Expected{
		Issuer: s.o.Issuer, AnyAudience: jwt.Audience{s.o.Service}, Time: now,
	}, clockSkew)
	if err != nil {
		return nil, fmt.Errorf("token: access token: %w", err)
	}
	if !k.until.IsZero() && c.Expiry.Time().Add(clockSkew).After(k.until) {
		// Signed by a retired key after its retirement (a lagging replica):
		// the cached verification ends with the key's window.
		c.Expiry = jwt.NewNumericDate(k.until.Add(-clockSkew))
	}
	return &c, nil
}
