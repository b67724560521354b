package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/berth-registry/berth/internal/access"
	"github.com/berth-registry/berth/internal/auth"
	"github.com/berth-registry/berth/internal/auth/oidc"
	"github.com/berth-registry/berth/internal/auth/token"
	"github.com/berth-registry/berth/internal/auth/users"
	"github.com/berth-registry/berth/internal/config"
	"github.com/berth-registry/berth/internal/policy"
)

// OIDCProviders converts the configuration's providers for the oidc package.
// A kubernetes provider of the in-cluster API server without
// bearer_token_file (or CA) gets the pod's service-account token (and CA),
// see oidc.InCluster.
func OIDCProviders(cfg *config.Config) []oidc.ProviderConfig {
	return oidcProviders(cfg, os.Getenv, nil)
}

func oidcProviders(cfg *config.Config, getenv func(string) string, exists func(string) bool) []oidc.ProviderConfig {
	var out []oidc.ProviderConfig
	for _, p := range cfg.Auth.OIDC {
		pc := oidc.ProviderConfig{
			Name:                p.Name,
			Preset:              p.Provider,
			Issuer:              p.Issuer,
			JWKSURI:             p.JWKSURI,
			Audiences:           p.Audiences,
			Algorithms:          p.Algorithms,
			ClockSkew:           clockSkew(p.ClockSkew),
			MaxTokenAge:         p.MaxTokenAge,
			JWKSRefreshInterval: p.JWKSRefreshInterval,
			RequiredClaims:      p.RequiredClaims,
			AcceptAnyUsername:   p.AcceptAnyUsername,
			BearerTokenFile:     p.BearerTokenFile,
			ClientCertFile:      p.ClientCertificateFile,
			ClientKeyFile:       p.ClientKeyFile,
		}
		if p.CAPEM != "" {
			pc.CACertPEM = []byte(p.CAPEM)
		}
		if tokenFile, caFile := oidc.InCluster(p.Provider, p.Issuer, getenv, exists); tokenFile != "" || caFile != "" {
			if !p.BearerTokenFileSet {
				pc.BearerTokenFile = tokenFile
			}
			if caFile != "" && p.CAPEM == "" {
				// Unreadable: the fetch then fails with the system roots,
				// and says so in its error.
				if b, err := os.ReadFile(caFile); err == nil {
					pc.CACertPEM = b
				}
			}
		}
		for _, v := range p.ClaimMapping.Variables {
			pc.ClaimMapping.Variables = append(pc.ClaimMapping.Variables, oidc.Variable{Name: v.Name, Expression: v.Expression})
		}
		for _, v := range p.ClaimMapping.Validations {
			pc.ClaimMapping.Validations = append(pc.ClaimMapping.Validations, oidc.Validation{Expression: v.Expression, Message: v.Message})
		}
		pc.ClaimMapping.Username = p.ClaimMapping.Username
		pc.ClaimMapping.Groups = p.ClaimMapping.Groups
		out = append(out, pc)
	}
	return out
}

// clockSkew maps a configured skew to the oidc package, where 0 means "the
// default": a configured 0 must mean no tolerance at all.
func clockSkew(d time.Duration) time.Duration {
	if d == 0 {
		return time.Nanosecond
	}
	return d
}

// PolicyConfig converts the configuration's access policies.
func PolicyConfig(cfg *config.Config) policy.Config {
	pc := policy.Config{Open: !cfg.Auth.Enabled() && !cfg.HasPolicies(), Repositories: map[string]*policy.Source{}}
	if p := cfg.Global.AccessPolicy; p != nil {
		pc.Global = &policy.Source{Key: p.Key, DefaultAllow: p.DefaultAllow, Rules: p.Rules}
	}
	for _, r := range cfg.Repositories {
		if p := r.AccessPolicy; p != nil {
			pc.Repositories[r.Key] = &policy.Source{Key: p.Key, DefaultAllow: p.DefaultAllow, Rules: p.Rules}
		}
	}
	return pc
}

// ImmutableConfig converts the configuration's immutable-tag settings.
func ImmutableConfig(cfg *config.Config) policy.ImmutableConfig {
	ic := policy.ImmutableConfig{Repositories: map[string]*policy.ImmutableSource{}}
	if cfg.Global.ImmutableTags || len(cfg.Global.ImmutableTagsExclusions) > 0 {
		ic.Global = &policy.ImmutableSource{Key: "global.immutable_tags", Enabled: cfg.Global.ImmutableTags,
			Exclusions: cfg.Global.ImmutableTagsExclusions}
	}
	for _, r := range cfg.Repositories {
		if r.ImmutableTags == nil && len(r.ImmutableTagsExclusions) == 0 {
			continue
		}
		// Exclusions alone keep the global on/off setting.
		enabled := cfg.Global.ImmutableTags
		if r.ImmutableTags != nil {
			enabled = *r.ImmutableTags
		}
		ic.Repositories[r.Key] = &policy.ImmutableSource{Key: `repository."` + r.Key + `".immutable_tags`,
			Enabled: enabled, Exclusions: r.ImmutableTagsExclusions}
	}
	return ic
}

// Check builds everything a configuration needs beyond its syntax — CEL
// claim mappings and policies, password hashes, tag regexes — without
// serving or contacting any issuer, so `berth config check` and a reload
// report the same problems startup would.
func Check(cfg *config.Config) error {
	_, err := CheckWarnings(cfg)
	return err
}

// CheckWarnings is Check that also returns the warnings serve would log at
// startup for cfg, in the same order: the OIDC providers' then
// StartupWarnings.
func CheckWarnings(cfg *config.Config) ([]string, error) {
	st, err := buildState(cfg, slog.New(slog.DiscardHandler), time.Now, nil, nil)
	if err != nil {
		return nil, err
	}
	st.close()
	return append(st.warnings, StartupWarnings(cfg)...), nil
}

func staticUsers(cfg *config.Config) []users.User {
	var out []users.User
	for _, u := range cfg.Auth.Identities {
		out = append(out, users.User{Username: u.Username, PasswordHash: u.PasswordHash})
	}
	return out
}

// runState is one configuration's authentication and authorization.
type runState struct {
	gate    *access.State
	oidc    *oidc.Verifier
	limits  map[string]token.Limits
	service string // token service name, "" when off
	// warnings are the OIDC providers' configuration warnings (also logged).
	warnings []string
	// failures counts refused credentials per client address; it outlives
	// reloads (each new state takes the running one's).
	failures access.FailureCounter
}

// limitFailures makes the state's authenticator count refused credentials
// in c (kept across reloads) with cfg's limits.
func (s *runState) limitFailures(cfg *config.Config, c access.FailureCounter, logger *slog.Logger) {
	if s.gate.Authn == nil || cfg.Auth.RateLimit.MaxFailures <= 0 {
		return
	}
	s.gate.Authn.Limiter = &access.Limiter{Counter: c, Max: cfg.Auth.RateLimit.MaxFailures,
		Window: cfg.Auth.RateLimit.Window, Logger: logger}
}

func (s *runState) close() {
	if s.oidc != nil {
		s.oidc.Close()
	}
}

// buildState compiles a configuration's verifiers, users, policies and
// immutable tags. It reports every problem it finds.
// sc, when not nil, is the OIDC key-set and verified-token cache shared by
// replicas. wrap, when not nil, wraps the transport of the OIDC discovery
// and key-set fetches (tracing).
func buildState(cfg *config.Config, logger *slog.Logger, now func() time.Time, sc oidc.SharedCache, wrap func(http.RoundTripper) http.RoundTripper) (*runState, error) {
	var errs []error
	st := &runState{gate: &access.State{}, limits: map[string]token.Limits{}}
	if cfg.Auth.Enabled() {
		a := &access.Authenticator{Logger: logger}
		if len(cfg.Auth.OIDC) > 0 {
			v, warnings, err := oidc.New(OIDCProviders(cfg), oidc.Options{Logger: logger, Now: now, Shared: sc, WrapTransport: wrap})
			if err != nil {
				errs = append(errs, err)
			} else {
				for _, w := range warnings {
					logger.Warn(w)
				}
				st.warnings = warnings
				a.OIDC, st.oidc = v, v
			}
		}
		if len(cfg.Auth.Identities) > 0 || cfg.Auth.HtpasswdFile != "" {
			u, err := users.New(staticUsers(cfg), cfg.Auth.HtpasswdFile, users.Options{Now: now})
			if err != nil {
				errs = append(errs, err)
			} else {
				for _, p := range cfg.Auth.OIDC {
					if u.Has(p.Name) {
						errs = append(errs, fmt.Errorf("static user %q (htpasswd file) has the name of an OIDC provider: `docker login -u %s` must mean the provider", p.Name, p.Name))
					}
				}
				a.Users = u
			}
		}
		if cfg.Auth.Token.Enabled {
			a.TokenService = cfg.Auth.Token.Service
			st.service = cfg.Auth.Token.Service
		}
		for _, p := range cfg.Auth.OIDC {
			st.limits[p.Name] = token.Limits{TTL: p.TokenTTL, MaxTTL: p.TokenMaxTTL, MaxUses: p.TokenMaxUses, TrustedIPs: p.TokenTrustedIPs}
			if len(p.TokenTrustedIPs) > 0 {
				if a.TrustedIPs == nil {
					a.TrustedIPs = map[string][]netip.Prefix{}
				}
				a.TrustedIPs[p.Name] = p.TokenTrustedIPs
			}
		}
		st.gate.Authn = a
	}
	pc := PolicyConfig(cfg)
	if !pc.Open {
		eng, err := policy.Compile(pc)
		if err != nil {
			errs = append(errs, err)
		}
		st.gate.Policy = eng
	}
	imm, err := policy.CompileImmutable(ImmutableConfig(cfg))
	if err != nil {
		errs = append(errs, err)
	}
	st.gate.Immutable = imm
	if len(errs) > 0 {
		st.close()
		return nil, errors.Join(errs...)
	}
	return st, nil
}

// newTokenService starts the token service for the gate's current state: it
// authenticates and grants through the gate, so a reload changes both.
//
// With Redis refresh/session token records live there, so use counts and
// revocations hold across replicas, and unless auth.token.key_file is set
// the generated signing keys (the keyring) are shared through Redis too;
// without Redis they are files under <root_dir>/_auth.
func (a *app) newTokenService() (*token.Service, error) {
	cfg, red := a.cfg, a.shared
	var store token.Store
	var ring token.KeyringStore
	stateDir := filepath.Join(cfg.BlobStore.FS.RootDir, "_auth", "tokens")
	// The single key berth generated before it rotated keys: the first
	// current key of a new keyring, so an upgrade invalidates no token.
	legacy := func(context.Context) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(cfg.BlobStore.FS.RootDir, "_auth", "token-key.pem"))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return b, err
	}
	if cfg.Auth.Token.KeyFile == "" {
		ring = token.NewFileKeyring(keyringDir(cfg))
	}
	if red != nil {
		store, stateDir = red.Tokens(), ""
		if cfg.Auth.Token.KeyFile == "" {
			ring = red.Keyring("token-keyring")
			legacy = func(ctx context.Context) ([]byte, error) { return red.LoadKey(ctx, "token-signing-key") }
		}
	}
	o := a.tokenOptions(store, ring, stateDir)
	if ring != nil {
		o.LegacyKey = legacy
	}
	ts, err := token.New(o)
	if err != nil && red != nil && cfg.Auth.Token.KeyFile == "" {
		return nil, fmt.Errorf("shared signing key (set auth.token.key_file, or make redis reachable): %w", err)
	}
	return ts, err
}

// keyringDir holds the generated signing keys without Redis.
func keyringDir(cfg *config.Config) string {
	return filepath.Join(cfg.BlobStore.FS.RootDir, "_auth", "token-keys")
}

// keyRotation is auth.token.key_rotation_interval as token.Options wants it.
func keyRotation(cfg *config.Config) time.Duration {
	if cfg.Auth.Token.KeyRotationInterval == 0 {
		return -1 // never
	}
	return cfg.Auth.Token.KeyRotationInterval
}

func (a *app) tokenOptions(store token.Store, ring token.KeyringStore, stateDir string) token.Options {
	cfg, gate := a.cfg, a.gate
	return token.Options{
		Service:             cfg.Auth.Token.Service,
		KeyFile:             cfg.Auth.Token.KeyFile,
		PreviousKeyFiles:    cfg.Auth.Token.PreviousKeyFiles,
		Keyring:             ring,
		KeyRotationInterval: keyRotation(cfg),
		StateDir:            stateDir,
		Store:               store,
		AccessTTL:           cfg.Auth.Token.AccessTokenTTL,
		Now:                 a.now,
		Logger:              a.log,
		ClientIP:            access.ClientIP, // the forwarded client behind a trusted proxy
		Authenticate: func(ctx context.Context, username, password, clientIP string) (*auth.Identity, error) {
			au := gate.Load().Authn
			if au == nil {
				return nil, auth.ErrInvalidCredentials
			}
			return au.Basic(ctx, username, password, clientIP)
		},
		VerifyIDToken: func(ctx context.Context, raw string) (*auth.Identity, error) {
			au := gate.Load().Authn
			if au == nil || au.OIDC == nil {
				return nil, auth.ErrInvalidCredentials
			}
			return au.OIDC.Verify(ctx, raw)
		},
		Grant:   gate.Grant,
		Limiter: gate,
		LimitsFor: func(id *auth.Identity) token.Limits {
			if id.OIDC != nil {
				return a.cur.Load().limits[id.OIDC.ProviderName]
			}
			return token.Limits{}
		},
	}
}
