package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"time"

	"github.com/berth-registry/berth/internal/auth"
	"github.com/berth-registry/berth/internal/auth/oidc"
	"github.com/berth-registry/berth/internal/auth/token"
	"github.com/berth-registry/berth/internal/auth/users"
	"github.com/berth-registry/berth/internal/authn"
	"github.com/berth-registry/berth/internal/config"
)

// authStack is everything authentication needs at run time.
type authStack struct {
	gate    *authn.Gate
	tokens  *token.Service // nil when the token service is off
	oidc    *oidc.Verifier // nil without providers
	closeFn func()
}

// OIDCProviders converts the configuration's providers for the oidc package.
func OIDCProviders(cfg *config.Config) []oidc.ProviderConfig {
	var out []oidc.ProviderConfig
	for _, p := range cfg.Auth.OIDC {
		pc := oidc.ProviderConfig{
			Name:                p.Name,
			Preset:              p.Provider,
			Issuer:              p.Issuer,
			JWKSURI:             p.JWKSURI,
			Audiences:           p.Audiences,
			Algorithms:          p.Algorithms,
			ClockSkew:           p.ClockSkew,
			MaxTokenAge:         p.MaxTokenAge,
			JWKSRefreshInterval: p.JWKSRefreshInterval,
			RequiredClaims:      p.RequiredClaims,
		}
		if p.CAPEM != "" {
			pc.CACertPEM = []byte(p.CAPEM)
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

// CheckAuth builds what authentication needs without serving, so `berth
// config check` reports CEL and key problems too. It contacts no issuer.
func CheckAuth(cfg *config.Config) error {
	if len(cfg.Auth.OIDC) > 0 {
		v, _, err := oidc.New(OIDCProviders(cfg), oidc.Options{})
		if err != nil {
			return err
		}
		v.Close()
	}
	if len(cfg.Auth.Identities) > 0 || cfg.Auth.HtpasswdFile != "" {
		if _, err := users.New(staticUsers(cfg), cfg.Auth.HtpasswdFile, users.Options{}); err != nil {
			return err
		}
	}
	return nil
}

func staticUsers(cfg *config.Config) []users.User {
	var out []users.User
	for _, u := range cfg.Auth.Identities {
		out = append(out, users.User{Username: u.Username, PasswordHash: u.PasswordHash})
	}
	return out
}

// buildAuth wires the verifiers, static users and token service, or returns
// nil when no authentication is configured (open mode).
func buildAuth(cfg *config.Config, logger *slog.Logger, now func() time.Time) (*authStack, error) {
	if !cfg.Auth.Enabled() {
		return nil, nil
	}
	a := &authn.Authenticator{Logger: logger}
	st := &authStack{closeFn: func() {}}
	if len(cfg.Auth.OIDC) > 0 {
		v, warnings, err := oidc.New(OIDCProviders(cfg), oidc.Options{Logger: logger, Now: now})
		if err != nil {
			return nil, fmt.Errorf("server: oidc: %w", err)
		}
		for _, w := range warnings {
			logger.Warn(w)
		}
		a.OIDC, st.oidc = v, v
		st.closeFn = v.Close
		logger.Info("oidc providers ready", "providers", v.Providers())
	}
	if len(cfg.Auth.Identities) > 0 || cfg.Auth.HtpasswdFile != "" {
		u, err := users.New(staticUsers(cfg), cfg.Auth.HtpasswdFile, users.Options{Now: now})
		if err != nil {
			return nil, fmt.Errorf("server: static users: %w", err)
		}
		for _, p := range cfg.Auth.OIDC {
			if u.Has(p.Name) {
				return nil, fmt.Errorf("server: static user %q (htpasswd file) has the name of an OIDC provider: `docker login -u %s` must mean the provider", p.Name, p.Name)
			}
		}
		a.Users = u
		logger.Info("static users ready", "count", u.Len())
	}
	if cfg.Auth.Token.Enabled {
		limits := map[string]token.Limits{}
		for _, p := range cfg.Auth.OIDC {
			limits[p.Name] = token.Limits{TTL: p.TokenTTL, MaxTTL: p.TokenMaxTTL, MaxUses: p.TokenMaxUses, TrustedIPs: p.TokenTrustedIPs}
		}
		keyFile := cfg.Auth.Token.KeyFile
		stateDir := filepath.Join(cfg.BlobStore.FS.RootDir, "_auth", "tokens")
		if keyFile == "" {
			keyFile = filepath.Join(cfg.BlobStore.FS.RootDir, "_auth", "token-key.pem")
		}
		var verifyID func(context.Context, string) (*auth.Identity, error)
		if st.oidc != nil {
			verifyID = st.oidc.Verify
		}
		ts, err := token.New(token.Options{
			VerifyIDToken: verifyID,
			Service:       cfg.Auth.Token.Service,
			KeyFile:       keyFile,
			StateDir:      stateDir,
			AccessTTL:     cfg.Auth.Token.AccessTokenTTL,
			Now:           now,
			Logger:        logger,
			Authenticate:  a.Basic,
			Grant:         grantAll,
			LimitsFor: func(id *auth.Identity) token.Limits {
				if id.OIDC != nil {
					return limits[id.OIDC.ProviderName]
				}
				return token.Limits{}
			},
		})
		if err != nil {
			st.closeFn()
			return nil, fmt.Errorf("server: token service: %w", err)
		}
		a.Tokens, st.tokens = ts, ts
		a.TokenService = cfg.Auth.Token.Service
	}
	st.gate = &authn.Gate{Authn: a}
	return st, nil
}

// grantAll grants an authenticated identity everything it asks for, and the
// anonymous identity nothing: access policies (a later feature) will decide
// here.
func grantAll(_ context.Context, id *auth.Identity, requested []auth.Access) []auth.Access {
	if id.IsAnonymous() {
		return nil
	}
	return requested
}

// mountAuth serves the token service on the main mux.
func (st *authStack) mount(mux *http.ServeMux) {
	if st == nil || st.tokens == nil {
		return
	}
	mux.Handle("/token", st.tokens)
	mux.Handle("/token/", st.tokens)
}
