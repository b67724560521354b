package token

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/berth-registry/berth/internal/auth"
)

// Defaults.
const (
	DefaultAccessTTL = 5 * time.Minute
	// Refresh and session tokens, when LimitsFor leaves TTL/MaxTTL zero.
	// Deliberately short: a CI identity's ID token lives minutes; longer
	// bounds are a per-provider decision.
	DefaultTokenTTL    = time.Hour
	DefaultTokenMaxTTL = 24 * time.Hour

	minAccessTTL = 60 * time.Second // docker treats expires_in < 60 as 60
)

// Limits bound a refresh or session token (Infisical's access-token bounds).
type Limits struct {
	// TTL is how long the token lives after issuance or its last use
	// (DefaultTokenTTL when zero).
	TTL time.Duration
	// MaxTTL is how long after issuance it dies however often it is used
	// (DefaultTokenMaxTTL when zero). TTL is capped at MaxTTL.
	MaxTTL time.Duration
	// MaxUses is how many times it may be used; 0 means unlimited.
	MaxUses int
	// TrustedIPs restricts the client addresses it may be used from; empty
	// means any. For an OIDC identity it also bounds the ID token on every
	// grant that takes one, and the access tokens issued (trusted_ips claim).
	TrustedIPs []netip.Prefix
}

func (l Limits) withDefaults() Limits {
	if l.TTL <= 0 {
		l.TTL = DefaultTokenTTL
	}
	if l.MaxTTL <= 0 {
		l.MaxTTL = DefaultTokenMaxTTL
	}
	if l.TTL > l.MaxTTL {
		l.TTL = l.MaxTTL
	}
	if l.MaxUses < 0 {
		l.MaxUses = 0
	}
	return l
}

// Options configure a Service.
type Options struct {
	// Service is the expected audience of access tokens and the `service`
	// parameter clients send, e.g. "berth". Required.
	Service string
	// Issuer is the iss of tokens berth signs; Service when empty.
	Issuer string
	// KeyFile is a PEM private key (ES256 P-256 or Ed25519). When the file
	// does not exist a P-256 key is generated and written there (0600). It
	// is never rotated by berth (see PreviousKeyFiles and ReloadKeys). When
	// empty, keys are generated, kept in Keyring and rotated every
	// KeyRotationInterval.
	KeyFile string
	// KeyPEM, when not empty, is the PEM private key itself; KeyFile is then
	// ignored.
	KeyPEM []byte
	// PreviousKeyFiles are PEM keys (private, or "PUBLIC KEY") that verify
	// access tokens but never sign: the keys a KeyFile replaced, as long as
	// tokens they signed may live.
	PreviousKeyFiles []string
	// Keyring keeps the generated keys (no KeyFile or KeyPEM) where all
	// replicas see them: Redis, or NewFileKeyring. nil: process memory
	// (tokens die with the process).
	Keyring KeyringStore
	// LegacyKey, when set, returns the key berth signed with before it kept
	// a keyring (nil when there is none): an empty keyring starts with it as
	// its current key, so tokens signed before an upgrade stay valid.
	LegacyKey func(ctx context.Context) ([]byte, error)
	// KeyRotationInterval is how long a generated key signs before the next
	// one takes over: DefaultKeyRotationInterval when zero, never when
	// negative.
	KeyRotationInterval time.Duration
	// StateDir holds refresh/session token records. Required unless Store is set.
	StateDir string
	// Store keeps refresh/session token records; a file store in StateDir
	// when nil. Replicas that share a Store share use counts and revocations.
	Store Store
	// AccessTTL is the lifetime of access tokens: DefaultAccessTTL when zero,
	// at least 60s.
	AccessTTL time.Duration
	Now       func() time.Time
	Logger    *slog.Logger

	// Authenticate checks Basic credentials (a static user, provider name +
	// ID token, or a berth session token). It returns an error wrapping
	// auth.ErrInvalidCredentials or auth.ErrUnavailable. nil refuses all.
	Authenticate func(ctx context.Context, username, password, clientIP string) (*auth.Identity, error)
	// VerifyIDToken verifies an OIDC ID token for the token-exchange and
	// jwt-bearer grants. nil disables those grants.
	VerifyIDToken func(ctx context.Context, raw string) (*auth.Identity, error)
	// Grant returns what of requested the identity may have. The answer is
	// intersected with requested. nil grants nothing.
	Grant func(ctx context.Context, id *auth.Identity, requested []auth.Access) []auth.Access
	// Limiter, when set, limits refused credentials per client address for
	// the credentials the service checks itself: refresh tokens and the ID
	// tokens of token exchange and jwt-bearer. Authenticate applies its own
	// (access.Authenticator.Basic), so every grant is limited once.
	Limiter Limiter
	// LimitsFor returns the bounds of refresh/session tokens issued to id.
	// Zero fields take the defaults. nil means defaults for everyone.
	LimitsFor func(id *auth.Identity) Limits
	// ClientIP extracts the client address (no port) from a request; the
	// host of RemoteAddr when nil. Set it when berth is behind a proxy.
	ClientIP func(r *http.Request) string
}

// Limiter counts refused credentials per client address (*access.Gate).
type Limiter interface {
	// LimitCredentials returns an error wrapping auth.ErrRateLimited (a
	// *auth.RateLimitError) while clientIP is over its limit: the
	// credential is then not checked at all.
	LimitCredentials(ctx context.Context, clientIP string) error
	// CountRefusal counts err against clientIP when it refused credentials
	// (wraps auth.ErrInvalidCredentials).
	CountRefusal(ctx context.Context, clientIP string, err error)
}

// Service issues and verifies berth's tokens. It is safe for concurrent use.
type Service struct {
	o        Options
	log      *slog.Logger
	active   atomic.Pointer[keySet]
	keys     keyState
	store    *tokens
	pruner   pruner // nil when the store expires records itself
	verified verifiedCache
}

// New validates o, loads or creates the signing key, prepares StateDir and
// prunes dead token records from it.
func New(o Options) (*Service, error) {
	var errs []error
	if o.Service == "" {
		errs = append(errs, errors.New("token: Service is required"))
	}
	if o.StateDir == "" && o.Store == nil {
		errs = append(errs, errors.New("token: StateDir or Store is required"))
	}
	if o.AccessTTL == 0 {
		o.AccessTTL = DefaultAccessTTL
	}
	if o.AccessTTL < minAccessTTL {
		errs = append(errs, fmt.Errorf("token: AccessTTL %s is shorter than %s", o.AccessTTL, minAccessTTL))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if o.Issuer == "" {
		o.Issuer = o.Service
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.ClientIP == nil {
		o.ClientIP = remoteIP
	}
	s := &Service{o: o, log: o.Logger}
	if err := s.loadKeys(); err != nil {
		return nil, err
	}
	st := o.Store
	if st == nil {
		fst, err := newFileStore(o.StateDir, o.Now)
		if err != nil {
			return nil, err
		}
		st = fst
	}
	s.store = &tokens{st: st, now: o.Now}
	s.pruner, _ = st.(pruner)
	if n, err := s.Prune(); err != nil {
		s.log.Warn("token: pruning token records failed", "err", err)
	} else if n > 0 {
		s.log.Info("token: pruned dead refresh/session tokens", "count", n)
	}
	return s, nil
}

// Prune deletes refresh/session token records that can no longer be used.
// New runs it once; long-running servers may call it periodically. Stores
// that expire records themselves (Redis) have nothing to prune.
func (s *Service) Prune() (int, error) {
	if s.pruner == nil {
		return 0, nil
	}
	return s.pruner.prune()
}

// loadKeys sets up the signing and verification keys (keyring.go).
func (s *Service) loadKeys() error {
	o := s.o
	prev, err := loadPreviousKeys(o.PreviousKeyFiles)
	if err != nil {
		return err
	}
	s.keys.previous = prev
	switch {
	case len(o.KeyPEM) > 0:
		priv, err := parseKeyPEM(o.KeyPEM)
		if err != nil {
			return fmt.Errorf("token: key: %w", err)
		}
		if s.keys.fixed, err = newSigningKey(priv); err != nil {
			return err
		}
	case o.KeyFile != "":
		if s.keys.fixed, err = loadOrCreateKey(o.KeyFile, s.log); err != nil {
			return err
		}
	}
	if k := s.keys.fixed; k != nil {
		ks := &keySet{byKid: map[string]verifyKey{}, current: k}
		ks.add(k, time.Time{})
		s.install(ks)
		return nil
	}
	s.keys.ring = o.Keyring
	if s.keys.ring == nil {
		s.log.Warn("token: no key file and no shared keyring; access tokens will not survive a restart")
		s.keys.ring = &memKeyring{}
	}
	switch {
	case o.KeyRotationInterval == 0:
		s.keys.interval = DefaultKeyRotationInterval
	case o.KeyRotationInterval > 0:
		s.keys.interval = o.KeyRotationInterval
	}
	// Startup, not a request: the keyring must be readable within 10s.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return s.RefreshKeys(ctx)
}

// KeyID is the kid of the key signing access tokens now (its RFC 7638
// thumbprint).
func (s *Service) KeyID() string { return s.active.Load().current.kid }

// VerifySessionToken checks a refresh or session token presented as a
// password (or identity token) from clientIP, and counts one use. The
// returned identity has ClientIP set and a nil Access. Errors wrap
// auth.ErrInvalidCredentials, or auth.ErrUnavailable when the state cannot be
// read or written (the use is then refused, never let through uncounted).
func (s *Service) VerifySessionToken(ctx context.Context, raw, clientIP string) (*auth.Identity, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rec, err := s.store.use(ctx, raw, clientIP)
	if err != nil {
		s.log.DebugContext(ctx, "token: refresh/session token refused", "reason", err.Error(), "client_ip", clientIP)
		return nil, err
	}
	return rec.Identity.identity(clientIP), nil
}

// IsBerthToken reports, cheaply and without verifying anything, whether raw
// looks like a token berth issued: a refresh/session token prefix, or a JWT
// with the protected header of this service's key. Use it to route Bearer
// tokens; never as a check.
func (s *Service) IsBerthToken(raw string) bool {
	if isOpaque(raw) {
		return true
	}
	// Every access token a key signs starts with the same protected header
	// (alg, kid, typ): a prefix check per key that verifies (a few), with no
	// decoding on the hot path.
	for _, h := range s.active.Load().headers {
		if len(raw) > len(h) && raw[len(h)] == '.' && strings.HasPrefix(raw, h) {
			return true
		}
	}
	return false
}

// IsOpaqueToken reports whether raw has a refresh/session token prefix.
func IsOpaqueToken(raw string) bool { return isOpaque(raw) }

func isOpaque(raw string) bool {
	return len(raw) > len(RefreshPrefix) && (raw[:len(RefreshPrefix)] == RefreshPrefix || raw[:len(SessionPrefix)] == SessionPrefix)
}

func (s *Service) limitsFor(id *auth.Identity) Limits {
	if s.o.LimitsFor == nil {
		return Limits{}.withDefaults()
	}
	return s.o.LimitsFor(id).withDefaults()
}

func (s *Service) grant(ctx context.Context, id *auth.Identity, requested []auth.Access) []auth.Access {
	if len(requested) == 0 || s.o.Grant == nil {
		return []auth.Access{}
	}
	// Grant gets a copy: what it does to its argument cannot widen the request.
	cp := make([]auth.Access, len(requested))
	for i, a := range requested {
		cp[i] = auth.Access{Type: a.Type, Name: a.Name, Actions: slices.Clone(a.Actions)}
	}
	return intersect(requested, s.o.Grant(ctx, id, cp))
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// IssueSession issues a session token (berth_st_…) for id under the limits
// LimitsFor gives it, for callers that authenticated id themselves (the web
// UI's sign-in). It returns the token and when it expires unless used.
// Callers MUST NOT issue one for an identity that itself came from a berth
// refresh/session token: that would escape its MaxUses and MaxTTL.
func (s *Service) IssueSession(ctx context.Context, id *auth.Identity) (string, time.Time, error) {
	if err := ctx.Err(); err != nil {
		return "", time.Time{}, err
	}
	if id.IsAnonymous() {
		return "", time.Time{}, errors.New("token: no session token for the anonymous identity")
	}
	raw, rec, err := s.store.create(ctx, kindSession, id, s.limitsFor(id))
	if err != nil {
		return "", time.Time{}, err
	}
	s.log.DebugContext(ctx, "token: session token issued", "grant", "ui", "identity", id.ID,
		"expires", rec.Expires, "max_expires", rec.MaxExpires, "max_uses", rec.MaxUses)
	return raw, rec.Expires, nil
}

// Revoke revokes a refresh or session token (sign-out). Unknown tokens are
// not an error.
func (s *Service) Revoke(ctx context.Context, raw string) error {
	_, err := s.store.revoke(ctx, raw)
	return err
}
