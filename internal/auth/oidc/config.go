package oidc

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/berth-registry/berth/internal/tomlkey"
)

// ProviderConfig is one [auth.oidc.<name>] provider.
type ProviderConfig struct {
	// Name is the table name, e.g. "github-actions"; also the docker login
	// username that selects this provider.
	Name string
	// Preset is "github", "gitlab", "kubernetes" or "generic" ("" = generic).
	Preset string
	// Issuer is compared exactly with the token's iss (a trailing slash
	// matters). Presets fill it: github https://token.actions.githubusercontent.com,
	// gitlab https://gitlab.com.
	Issuer string
	// JWKSURI skips discovery when set.
	JWKSURI string
	// Audiences: a token passes when its aud (string or array) contains any.
	// Required, except for the github preset where none means any audience
	// (New then returns a warning).
	Audiences []string
	// Algorithms allowed in the token header; default RS256, ES256. Only
	// asymmetric algorithms (RS*, PS*, ES*, EdDSA).
	Algorithms []string
	// ClockSkew tolerated on exp, nbf and iat; 0 means the default 60s.
	ClockSkew time.Duration
	// MaxTokenAge refuses tokens whose iat is older; 0 = no limit.
	MaxTokenAge time.Duration
	// CACertPEM is the CA (PEM) trusted for this issuer's discovery and JWKS,
	// instead of the system roots.
	CACertPEM []byte
	// BearerTokenFile, when set, holds a token sent as "Authorization:
	// Bearer" with the discovery and JWKS requests to the issuer's host and
	// to the host of a configured JWKSURI, never to another host (a
	// discovered jwks_uri elsewhere, a redirect). It is read again for every
	// fetch: projected service-account tokens rotate. See InClusterToken.
	BearerTokenFile string
	// ClientCertFile and ClientKeyFile are a PEM client certificate and key
	// presented to the issuer's discovery and JWKS endpoints (mTLS); read
	// again for every new connection, so a renewed certificate is used.
	ClientCertFile, ClientKeyFile string
	// AcceptAnyUsername lets a Basic login (docker login) whose username
	// names no provider use this provider when the token's iss (and aud)
	// select it, e.g. zot's `-u oauth`. Off: the username must be Name.
	AcceptAnyUsername bool
	// JWKSRefreshInterval is the background refresh period; default 1h.
	JWKSRefreshInterval time.Duration
	// RequiredClaims must be present and not null.
	RequiredClaims []string
	// ClaimMapping turns claims into a username and groups.
	ClaimMapping ClaimMapping
}

// ClaimMapping is zot's claimMapping model: CEL expressions over `claims`
// (map(string, dyn)) and `vars` (the variables evaluated before).
type ClaimMapping struct {
	// Variables are evaluated in order; each is then vars.<name> for the
	// following variables, the validations, username and groups.
	Variables []Variable
	// Validations must all be true, else the token is refused with Message.
	Validations []Validation
	// Username is a CEL string expression; default claims.iss + '/' + claims.sub
	// (kubernetes preset: system:serviceaccount:<namespace>:<name> when the
	// token names a service account).
	Username string
	// Groups is an optional CEL list(string) expression.
	Groups string
}

// Variable is one claim_mapping.variables entry.
type Variable struct{ Name, Expression string }

// Validation is one claim_mapping.validations entry.
type Validation struct{ Expression, Message string }

// Options are the Verifier's injected dependencies and limits.
type Options struct {
	// HTTPClient fetches discovery documents and key sets; default a clone of
	// http.DefaultTransport. Timeouts come from FetchTimeout.
	HTTPClient *http.Client
	// WrapTransport, when not nil, wraps the transport of every fetch
	// (outermost but for the response cap), e.g. with a tracing one.
	WrapTransport func(http.RoundTripper) http.RoundTripper
	// Logger receives key-set events (discovery, fetches, refresh failures);
	// default discards. Refusals are returned, not logged.
	Logger *slog.Logger
	// Now is the clock for token times and the unknown-kid cooldown; default time.Now.
	Now func() time.Time
	// CacheSize bounds the verified-token LRU; default 10000, negative
	// disables it, and with it the sharing of verified tokens (Shared).
	CacheSize int
	// FetchTimeout caps one discovery + JWKS fetch; default 10s.
	FetchTimeout time.Duration
	// MaxResponseBytes caps a discovery or JWKS response; default 1 MiB.
	MaxResponseBytes int64
	// UnknownKidCooldown: a token with an unknown kid makes the issuer's key
	// set be fetched again only if the previous fetch (of any kind) started
	// at least this long ago; concurrent requests share one fetch. Default 30s.
	UnknownKidCooldown time.Duration
	// Shared, when set, is a cache shared by replicas (Redis): discovery
	// results and key sets one replica fetched are used by the others
	// instead of contacting the issuer again. The in-memory key set stays in
	// front of it, so verification never waits on it; it is read only when a
	// key set would otherwise be fetched. Its errors are logged and the
	// issuer is asked directly.
	//
	// It also holds verified tokens: after verifying a signature itself, a
	// replica records it in the background (keyed by a hash of the token and
	// the provider's settings; neither the token nor its claims are stored).
	// A replica whose keys in memory cannot check a token's signature (no
	// key set yet, an unknown kid) reads that record before it would fetch
	// keys, and on a hit checks everything but the signature itself. Whoever
	// can write to it can make tokens pass: trust it like the signing key.
	Shared SharedCache
}

// SharedCache is a key-value cache shared between replicas.
type SharedCache interface {
	Get(ctx context.Context, key string) (val []byte, found bool, err error)
	Set(ctx context.Context, key string, val []byte, ttl time.Duration) error
}

// Defaults.
const (
	// MaxTokenSize is the largest token Verify parses.
	MaxTokenSize            = 16 << 10
	DefaultClockSkew        = 60 * time.Second
	DefaultRefreshInterval  = time.Hour
	DefaultCacheSize        = 10000
	DefaultFetchTimeout     = 10 * time.Second
	DefaultMaxResponseBytes = 1 << 20
	DefaultKidCooldown      = 30 * time.Second
)

// Preset issuers.
const (
	GitHubIssuer = "https://token.actions.githubusercontent.com"
	GitLabIssuer = "https://gitlab.com"
)

// Problem is one thing wrong with a provider configuration.
type Problem struct {
	// Key is the configuration key path, e.g. "auth.oidc.gh.claim_mapping.username".
	Key     string
	Message string
}

func (p Problem) String() string { return p.Key + ": " + p.Message }

// ConfigError is every problem New found, so that a configuration check can
// print them all at once.
type ConfigError struct {
	Problems []Problem
}

// Error returns one "key: message" line per problem.
func (e *ConfigError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// providerKey formats auth.oidc.<name>.<leaf...> like the config package.
func providerKey(name string, leaf ...string) string {
	return tomlkey.Format(append([]string{"auth", "oidc", name}, leaf...)...)
}
