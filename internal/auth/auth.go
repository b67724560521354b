// Package auth holds what every authentication path shares: the Identity a
// request acts as, the access a registry token grants, and the sentinel errors
// the HTTP layer maps to 401 / 503.
//
// Authentication paths (each in its own package) turn credentials into an
// Identity:
//   - oidc: an OIDC ID token (Basic with username = provider name, or Bearer);
//   - static users: username and password checked against bcrypt/argon2id hashes;
//   - token: registry access tokens, refresh tokens and session tokens issued by
//     berth's own token service.
//
// Never log a credential. Log the identity, or why a credential was refused.
package auth

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"time"
)

// Sentinel errors.
var (
	// ErrInvalidCredentials: the credentials were presented and are wrong,
	// expired, or not for this registry. Answered with 401 and a challenge.
	ErrInvalidCredentials = errors.New("auth: invalid credentials")
	// ErrUnavailable: the credentials cannot be checked now (an issuer is
	// unreachable and no keys are cached). Answered with 503.
	ErrUnavailable = errors.New("auth: verification unavailable")
	// ErrRateLimited: the client address presented too many refused
	// credentials recently. Answered with 429 and Retry-After; it is wrapped
	// by a *RateLimitError.
	ErrRateLimited = errors.New("auth: too many failed authentication attempts")
	// ErrUntrustedAddress: the credential is refused because the client
	// address is not in the token_trusted_ips of the OIDC provider it came
	// from. It wraps ErrInvalidCredentials.
	ErrUntrustedAddress error = untrustedAddress{}
)

type untrustedAddress struct{}

func (untrustedAddress) Error() string {
	return "auth: client address not in the provider's token_trusted_ips"
}
func (untrustedAddress) Unwrap() error { return ErrInvalidCredentials }

// AddrTrusted reports whether clientIP is in one of prefixes; any address is
// when prefixes is empty, none that does not parse otherwise.
func AddrTrusted(prefixes []netip.Prefix, clientIP string) bool {
	if len(prefixes) == 0 {
		return true
	}
	ip, err := netip.ParseAddr(clientIP)
	if err != nil {
		return false
	}
	ip = ip.Unmap().WithZone("")
	for _, p := range prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// RateLimitError is returned instead of checking credentials while the client
// address is over its failure limit.
type RateLimitError struct {
	RetryAfter time.Duration
}

func (e *RateLimitError) Error() string {
	return ErrRateLimited.Error() + "; retry in " + e.RetryAfter.Round(time.Second).String()
}

// Is makes errors.Is(err, ErrRateLimited) true.
func (e *RateLimitError) Is(target error) bool { return target == ErrRateLimited }

// Identity is who a request acts as. The policy layer sees it as
// `identity.{id, username, groups, client_ip, oidc{provider_name, claims}}`.
type Identity struct {
	// ID is stable and unique: "user:<username>", "oidc:<provider>:<username>", or "anonymous".
	ID string
	// Username is the static user's name, or the OIDC claim mapping's username.
	Username string
	Groups   []string
	// ClientIP is the request's client address (no port).
	ClientIP string
	// OIDC is set when the identity comes from an OIDC ID token (directly or
	// through a berth token issued for one).
	OIDC *OIDC
	// Access, when not nil, bounds what the request may do: the grants of the
	// registry access token it presented. nil means no token bound.
	Access []Access
	// Denied, with Access, lists what the client asked the token service
	// for and the policies refused when the token was issued (the token's
	// denied claim): a request that needs it is answered 403 DENIED, not
	// sent back for a wider token it would not get.
	Denied []Access
	// Expires, when not zero, is when the presented credential stops being
	// valid. Only stateless credentials set it (an OIDC ID token, a registry
	// access token): until then the same credential yields the same identity,
	// so the authenticator may remember it. Credentials checked against state
	// on every use (session tokens with use limits, static users) leave it zero.
	Expires time.Time
	// TrustedIPs, when not empty, are the only client addresses the
	// presented credential may be used from: the token_trusted_ips of the
	// OIDC provider it came from (carried in registry access tokens).
	TrustedIPs []netip.Prefix
}

// OIDC is the OIDC part of an identity.
type OIDC struct {
	ProviderName string
	Claims       map[string]any
}

// Anonymous returns the identity of a request without credentials.
func Anonymous(clientIP string) *Identity {
	return &Identity{ID: "anonymous", ClientIP: clientIP}
}

// IsAnonymous reports whether the identity presented no credentials.
func (id *Identity) IsAnonymous() bool { return id == nil || id.ID == "anonymous" }

// Access is one resource grant, as in the Docker token spec's `access` claim:
// {"type": "repository", "name": "a/b", "actions": ["pull", "push"]}.
type Access struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// Allows reports whether the grants include action on the resource.
func Allows(grants []Access, typ, name, action string) bool {
	for _, g := range grants {
		if g.Type == typ && g.Name == name && (slices.Contains(g.Actions, action) || slices.Contains(g.Actions, "*")) {
			return true
		}
	}
	return false
}

type identityKey struct{}

// WithIdentity returns a context carrying the request's identity.
func WithIdentity(ctx context.Context, id *Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// FromContext returns the request's identity, or nil.
func FromContext(ctx context.Context) *Identity {
	id, _ := ctx.Value(identityKey{}).(*Identity)
	return id
}
