package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Auth is the [auth] table: who may present credentials. With no provider,
// identity or htpasswd file the registry is open.
type Auth struct {
	// HtpasswdFile holds more static users (user:bcrypt-hash lines).
	HtpasswdFile string
	// Token is the token service ([auth.token]).
	Token Token
	// OIDC are the [auth.oidc.<name>] providers, sorted by name.
	OIDC []OIDCProvider
	// Identities are the [auth.identity.<id>] static users, sorted by id.
	Identities []Identity
	// RateLimit bounds failed credential checks ([auth.rate_limit]).
	RateLimit RateLimit
}

// RateLimit is the [auth.rate_limit] table: after MaxFailures refused
// credentials from one client address within Window, that address gets 429
// TOOMANYREQUESTS for credentialed requests until the window ends. Shared
// between replicas through [cache.redis] when configured.
type RateLimit struct {
	// MaxFailures per client address and window; 0 disables the limit.
	MaxFailures int
	Window      time.Duration
}

// Enabled reports whether any credential source is configured. When it is
// not, berth runs open (anonymous push and pull).
func (a Auth) Enabled() bool {
	return len(a.OIDC) > 0 || len(a.Identities) > 0 || a.HtpasswdFile != ""
}

// Token is the [auth.token] table.
type Token struct {
	// Enabled serves /token and advertises it in Bearer challenges.
	Enabled bool
	// Service is the `service` of challenges and the audience of berth's tokens.
	Service string
	// KeyFile is the PEM signing key (ES256 P-256 or Ed25519); generated
	// and persisted when the file is absent; never rotated by berth. Empty:
	// keys are generated, rotated every KeyRotationInterval and kept in
	// Redis ([cache.redis]) or under <root_dir>/_auth/token-keys.
	KeyFile string
	// PreviousKeyFiles are PEM keys (private or public) that verify access
	// tokens but never sign: a KeyFile being rotated by hand.
	PreviousKeyFiles []string
	// KeyRotationInterval is how long a generated key signs before the next
	// one takes over; 0 never rotates. Not used with KeyFile.
	KeyRotationInterval time.Duration
	// AccessTokenTTL is the lifetime of registry access tokens.
	AccessTokenTTL time.Duration
}

// OIDCProvider is one [auth.oidc.<name>] table.
type OIDCProvider struct {
	Name                     string // the table name: also the docker login username
	Provider                 string // github | gitlab | kubernetes | generic
	Issuer                   string
	JWKSURI                  string
	Audiences                []string
	Algorithms               []string
	ClockSkew                time.Duration
	MaxTokenAge              time.Duration
	CertificateAuthority     string // PEM
	CertificateAuthorityFile string
	// CAPEM is the CA to trust for this issuer, from either key (set by validation).
	CAPEM               string
	JWKSRefreshInterval time.Duration
	RequiredClaims      []string
	ClaimMapping        ClaimMapping
	// Bounds of refresh and session tokens issued for this provider's identities.
	TokenTTL        time.Duration
	TokenMaxTTL     time.Duration
	TokenMaxUses    int
	TokenTrustedIPs []netip.Prefix // also bounds the provider's ID tokens and the access tokens issued for it
	// AcceptAnyUsername: a docker login whose username names no provider
	// uses this provider when the token's iss and aud select it.
	AcceptAnyUsername bool
	// BearerTokenFile is sent as a Bearer token with discovery and JWKS
	// requests to the issuer's host (and a configured jwks_uri's).
	// BearerTokenFileSet says the key was written, even as "" (none): unset,
	// a kubernetes provider of the in-cluster API server defaults to the
	// pod's service-account token (oidc.InCluster).
	BearerTokenFile    string
	BearerTokenFileSet bool
	// ClientCertificateFile and ClientKeyFile: a client certificate for the
	// discovery and JWKS requests (mTLS).
	ClientCertificateFile string
	ClientKeyFile         string
}

// ClaimMapping is [auth.oidc.<name>.claim_mapping] (zot's model in snake_case).
type ClaimMapping struct {
	Variables   []ClaimVariable
	Validations []ClaimValidation
	Username    string
	Groups      string
}

// ClaimVariable is one entry of claim_mapping.variables.
type ClaimVariable struct{ Name, Expression string }

// ClaimValidation is one entry of claim_mapping.validations.
type ClaimValidation struct{ Expression, Message string }

// Identity is one [auth.identity.<id>] static user.
type Identity struct {
	ID           string
	Username     string
	PasswordHash string
}

// Token defaults.
const (
	DefaultTokenService   = "berth"
	DefaultAccessTokenTTL = 5 * time.Minute
	// DefaultKeyRotationInterval is auth.token.key_rotation_interval's default.
	DefaultKeyRotationInterval = 24 * time.Hour
	minKeyRotationInterval     = 10 * time.Minute
	DefaultMaxFailures         = 30
	DefaultFailureWindow       = time.Minute
	DefaultTokenTTL            = 15 * time.Minute
	DefaultTokenMaxTTL         = 12 * time.Hour
)

// Provider presets.
var providerPresets = map[string]string{
	"github":     "https://token.actions.githubusercontent.com",
	"gitlab":     "https://gitlab.com",
	"kubernetes": "",
	"generic":    "",
}

type rawAuth struct {
	HtpasswdFile any `toml:"htpasswd_file"`
	Token        *struct {
		Enabled             any `toml:"enabled"`
		Service             any `toml:"service"`
		KeyFile             any `toml:"key_file"`
		PreviousKeyFiles    any `toml:"previous_key_files"`
		KeyRotationInterval any `toml:"key_rotation_interval"`
		AccessTokenTTL      any `toml:"access_token_ttl"`
	} `toml:"token"`
	RateLimit *struct {
		MaxFailures any `toml:"max_failures"`
		Window      any `toml:"window"`
	} `toml:"rate_limit"`
	OIDC     map[string]*rawOIDC `toml:"oidc"`
	Identity map[string]*struct {
		Username any `toml:"username"`
		Password any `toml:"password"`
	} `toml:"identity"`
}

type rawOIDC struct {
	Provider                 any `toml:"provider"`
	Issuer                   any `toml:"issuer"`
	JWKSURI                  any `toml:"jwks_uri"`
	Audiences                any `toml:"audiences"`
	Algorithms               any `toml:"algorithms"`
	ClockSkew                any `toml:"clock_skew"`
	MaxTokenAge              any `toml:"max_token_age"`
	CertificateAuthority     any `toml:"certificate_authority"`
	CertificateAuthorityFile any `toml:"certificate_authority_file"`
	JWKSRefreshInterval      any `toml:"jwks_refresh_interval"`
	RequiredClaims           any `toml:"required_claims"`
	TokenTTL                 any `toml:"token_ttl"`
	TokenMaxTTL              any `toml:"token_max_ttl"`
	TokenMaxUses             any `toml:"token_max_uses"`
	TokenTrustedIPs          any `toml:"token_trusted_ips"`
	AcceptAnyUsername        any `toml:"accept_any_username"`
	BearerTokenFile          any `toml:"bearer_token_file"`
	ClientCertificateFile    any `toml:"client_certificate_file"`
	ClientKeyFile            any `toml:"client_key_file"`
	ClaimMapping             *struct {
		Variables []struct {
			Name       any `toml:"name"`
			Expression any `toml:"expression"`
		} `toml:"variables"`
		Validations []struct {
			Expression any `toml:"expression"`
			Message    any `toml:"message"`
		} `toml:"validations"`
		Username any `toml:"username"`
		Groups   any `toml:"groups"`
	} `toml:"claim_mapping"`

	// Angos's names for audiences, clock_skew and algorithms (angos.go).
	RequiredAudience   any `toml:"required_audience"`
	ClockSkewTolerance any `toml:"clock_skew_tolerance"`
	AllowedAlgorithms  any `toml:"allowed_algorithms"`
}

var authKnown = []string{
	"auth", "auth.htpasswd_file", "auth.token", "auth.token.enabled", "auth.token.service",
	"auth.token.key_file", "auth.token.previous_key_files", "auth.token.key_rotation_interval", "auth.token.access_token_ttl", "auth.oidc", "auth.identity",
	"auth.rate_limit", "auth.rate_limit.max_failures", "auth.rate_limit.window",
}

// authKey formats a key path under a named table, quoting names that need it.
func authKey(parts ...string) string { return formatKey(parts) }

func (d *decoder) decodeAuth(ra *rawAuth, c *Config) {
	if ra == nil {
		return
	}
	a := &c.Auth
	d.str("auth.htpasswd_file", ra.HtpasswdFile, &a.HtpasswdFile)
	if t := ra.Token; t != nil {
		d.boolean("auth.token.enabled", t.Enabled, &a.Token.Enabled)
		d.str("auth.token.service", t.Service, &a.Token.Service)
		d.str("auth.token.key_file", t.KeyFile, &a.Token.KeyFile)
		d.strList("auth.token.previous_key_files", t.PreviousKeyFiles, &a.Token.PreviousKeyFiles)
		d.duration("auth.token.key_rotation_interval", t.KeyRotationInterval, &a.Token.KeyRotationInterval)
		if t.KeyRotationInterval != nil && a.Token.KeyFile != "" && a.Token.KeyRotationInterval != 0 {
			d.bad("auth.token.key_rotation_interval", "rotates generated keys only, not key_file: rotate a key file with previous_key_files (docs/auth/tokens.md)")
		}
		d.duration("auth.token.access_token_ttl", t.AccessTokenTTL, &a.Token.AccessTokenTTL)
	}
	if rl := ra.RateLimit; rl != nil {
		d.integer("auth.rate_limit.max_failures", rl.MaxFailures, &a.RateLimit.MaxFailures)
		d.duration("auth.rate_limit.window", rl.Window, &a.RateLimit.Window)
	}
	for _, name := range sortedKeys(ra.OIDC) {
		r := ra.OIDC[name]
		if r == nil {
			continue
		}
		k := func(leaf ...string) string { return authKey(append([]string{"auth", "oidc", name}, leaf...)...) }
		p := OIDCProvider{
			Name: name, Provider: "generic",
			ClockSkew: 60 * time.Second, JWKSRefreshInterval: time.Hour,
			TokenTTL: DefaultTokenTTL, TokenMaxTTL: DefaultTokenMaxTTL,
		}
		d.str(k("provider"), r.Provider, &p.Provider)
		d.str(k("issuer"), r.Issuer, &p.Issuer)
		d.str(k("jwks_uri"), r.JWKSURI, &p.JWKSURI)
		d.strList(k("audiences"), r.Audiences, &p.Audiences)
		d.strList(k("algorithms"), r.Algorithms, &p.Algorithms)
		d.duration(k("clock_skew"), r.ClockSkew, &p.ClockSkew)
		if d.alias(k("audiences"), r.Audiences, k("required_audience"), r.RequiredAudience) {
			var aud string
			d.str(k("required_audience"), r.RequiredAudience, &aud)
			if _, ok := r.RequiredAudience.(string); ok {
				p.Audiences = []string{aud}
			}
		}
		if d.alias(k("algorithms"), r.Algorithms, k("allowed_algorithms"), r.AllowedAlgorithms) {
			d.strList(k("allowed_algorithms"), r.AllowedAlgorithms, &p.Algorithms)
		}
		if d.alias(k("clock_skew"), r.ClockSkew, k("clock_skew_tolerance"), r.ClockSkewTolerance) {
			d.seconds(k("clock_skew_tolerance"), r.ClockSkewTolerance, &p.ClockSkew)
		}
		d.duration(k("max_token_age"), r.MaxTokenAge, &p.MaxTokenAge)
		d.str(k("certificate_authority"), r.CertificateAuthority, &p.CertificateAuthority)
		d.str(k("certificate_authority_file"), r.CertificateAuthorityFile, &p.CertificateAuthorityFile)
		d.seconds(k("jwks_refresh_interval"), r.JWKSRefreshInterval, &p.JWKSRefreshInterval)
		d.strList(k("required_claims"), r.RequiredClaims, &p.RequiredClaims)
		d.duration(k("token_ttl"), r.TokenTTL, &p.TokenTTL)
		d.duration(k("token_max_ttl"), r.TokenMaxTTL, &p.TokenMaxTTL)
		d.integer(k("token_max_uses"), r.TokenMaxUses, &p.TokenMaxUses)
		d.boolean(k("accept_any_username"), r.AcceptAnyUsername, &p.AcceptAnyUsername)
		d.str(k("bearer_token_file"), r.BearerTokenFile, &p.BearerTokenFile)
		p.BearerTokenFileSet = r.BearerTokenFile != nil
		d.str(k("client_certificate_file"), r.ClientCertificateFile, &p.ClientCertificateFile)
		d.str(k("client_key_file"), r.ClientKeyFile, &p.ClientKeyFile)
		var cidrs []string
		d.strList(k("token_trusted_ips"), r.TokenTrustedIPs, &cidrs)
		for _, s := range cidrs {
			pfx, err := parsePrefix(s)
			if err != nil {
				d.bad(k("token_trusted_ips"), "%q is not an IP address or CIDR", s)
				continue
			}
			p.TokenTrustedIPs = append(p.TokenTrustedIPs, pfx)
		}
		if m := r.ClaimMapping; m != nil {
			for i, v := range m.Variables {
				var cv ClaimVariable
				d.str(fmt.Sprintf("%s[%d].name", k("claim_mapping", "variables"), i), v.Name, &cv.Name)
				d.str(fmt.Sprintf("%s[%d].expression", k("claim_mapping", "variables"), i), v.Expression, &cv.Expression)
				p.ClaimMapping.Variables = append(p.ClaimMapping.Variables, cv)
			}
			for i, v := range m.Validations {
				var cv ClaimValidation
				d.str(fmt.Sprintf("%s[%d].expression", k("claim_mapping", "validations"), i), v.Expression, &cv.Expression)
				d.str(fmt.Sprintf("%s[%d].message", k("claim_mapping", "validations"), i), v.Message, &cv.Message)
				p.ClaimMapping.Validations = append(p.ClaimMapping.Validations, cv)
			}
			d.str(k("claim_mapping", "username"), m.Username, &p.ClaimMapping.Username)
			d.str(k("claim_mapping", "groups"), m.Groups, &p.ClaimMapping.Groups)
		}
		a.OIDC = append(a.OIDC, p)
	}
	for _, id := range sortedKeys(ra.Identity) {
		r := ra.Identity[id]
		if r == nil {
			continue
		}
		u := Identity{ID: id}
		d.str(authKey("auth", "identity", id, "username"), r.Username, &u.Username)
		d.str(authKey("auth", "identity", id, "password"), r.Password, &u.PasswordHash)
		a.Identities = append(a.Identities, u)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func (d *decoder) strList(key string, v any, dst *[]string) {
	d.seen(key, kindStrings, *dst)
	switch v := v.(type) {
	case nil:
	case []any:
		out := make([]string, 0, len(v))
		for i, e := range v {
			s, ok := e.(string)
			if !ok {
				d.bad(key, "element %d must be a string, got %s", i, describe(e))
				return
			}
			out = append(out, s)
		}
		*dst = out
	default:
		d.bad(key, "must be an array of strings, got %s", describe(v))
	}
}

// asymmetric are the JWS algorithms a provider may allow.
var asymmetric = map[string]bool{
	"RS256": true, "RS384": true, "RS512": true, "PS256": true, "PS384": true, "PS512": true,
	"ES256": true, "ES384": true, "ES512": true, "EdDSA": true,
}

func (c *Config) validateAuth(bad func(key, format string, args ...any)) {
	a := &c.Auth
	if a.Token.Service == "" {
		bad("auth.token.service", "must not be empty")
	}
	if a.Token.AccessTokenTTL < time.Minute {
		bad("auth.token.access_token_ttl", "must be at least 1m (clients need expires_in >= 60), got %s", a.Token.AccessTokenTTL)
	}
	if ri := a.Token.KeyRotationInterval; a.Token.KeyFile == "" && ri != 0 && (ri < minKeyRotationInterval || ri < 2*a.Token.AccessTokenTTL) {
		bad("auth.token.key_rotation_interval", "must be 0 (never) or at least %s and twice access_token_ttl, got %s", minKeyRotationInterval, ri)
	}
	seenKeys := map[string]bool{filepath.Clean(a.Token.KeyFile): a.Token.KeyFile != ""}
	for _, f := range a.Token.PreviousKeyFiles {
		switch {
		case f == "":
			bad("auth.token.previous_key_files", "must not contain an empty path")
			continue
		case seenKeys[filepath.Clean(f)]:
			bad("auth.token.previous_key_files", "%s is listed twice or is key_file itself", f)
			continue
		}
		seenKeys[filepath.Clean(f)] = true
		b, err := os.ReadFile(f)
		if err != nil {
			bad("auth.token.previous_key_files", "%v", err)
			continue
		}
		if blk, _ := pem.Decode(b); blk == nil || (blk.Type != "PRIVATE KEY" && blk.Type != "EC PRIVATE KEY" && blk.Type != "PUBLIC KEY") {
			bad("auth.token.previous_key_files", "%s: want a PEM PRIVATE KEY, EC PRIVATE KEY or PUBLIC KEY", f)
		}
	}
	if a.RateLimit.MaxFailures < 0 {
		bad("auth.rate_limit.max_failures", "must be 0 (no limit) or more, got %d", a.RateLimit.MaxFailures)
	}
	if a.RateLimit.Window < time.Second || a.RateLimit.Window > 24*time.Hour {
		bad("auth.rate_limit.window", "must be between 1s and 24h, got %s", a.RateLimit.Window)
	}
	names := map[string]bool{}
	for i := range a.OIDC {
		names[a.OIDC[i].Name] = true
		c.validateOIDC(&a.OIDC[i], bad)
	}
	// Tokens are routed by (iss, aud): providers of one issuer must not
	// share an audience (OIDC sorted by name: the later one is reported).
	for i := range a.OIDC {
		p := &a.OIDC[i]
		for j := range i {
			o := &a.OIDC[j]
			if p.Issuer == "" || p.Issuer != o.Issuer {
				continue
			}
			if msg := AmbiguousOIDCProviders(p.Issuer, o.Name, o.Audiences, p.Audiences); msg != "" {
				bad(authKey("auth", "oidc", p.Name, "issuer"), "%s", msg)
			}
		}
	}
	seen := map[string]string{}
	for _, u := range a.Identities {
		k := func(leaf string) string { return authKey("auth", "identity", u.ID, leaf) }
		if u.Username == "" {
			bad(k("username"), "must not be empty")
		}
		if names[u.Username] {
			bad(k("username"), "%q is also the name of an OIDC provider: `docker login -u %s` must mean the provider", u.Username, u.Username)
		}
		if other, dup := seen[u.Username]; dup {
			bad(k("username"), "%q is also the username of [auth.identity.%s]", u.Username, other)
		}
		seen[u.Username] = u.ID
		if !strings.HasPrefix(u.PasswordHash, "$2a$") && !strings.HasPrefix(u.PasswordHash, "$2b$") &&
			!strings.HasPrefix(u.PasswordHash, "$2y$") && !strings.HasPrefix(u.PasswordHash, "$argon2id$") {
			bad(k("password"), "must be a bcrypt or argon2id hash (make one with `berth hash-password`), never a plain password")
		}
	}
	if a.HtpasswdFile != "" {
		if _, err := os.Stat(a.HtpasswdFile); err != nil {
			bad("auth.htpasswd_file", "%v", err)
		}
	}
}

// validateOIDC checks one [auth.oidc.<name>] table and fills its defaults.
func (c *Config) validateOIDC(p *OIDCProvider, bad func(key, format string, args ...any)) {
	k := func(leaf ...string) string { return authKey(append([]string{"auth", "oidc", p.Name}, leaf...)...) }
	// A value set with Angos's name is reported under that name.
	ak := func(leaf, angos string) string { return c.keyAsWritten(k(leaf), k(angos)) }
	caKey := k("certificate_authority")
	switch {
	case p.CertificateAuthority != "" && p.CertificateAuthorityFile != "":
		bad(k("certificate_authority"), "set certificate_authority or certificate_authority_file, not both")
	case p.CertificateAuthorityFile != "":
		caKey = k("certificate_authority_file")
		pemData, err := os.ReadFile(p.CertificateAuthorityFile)
		if err != nil {
			bad(caKey, "%v", err)
		} else {
			p.CAPEM = string(pemData) // checked by CheckOIDCProvider
		}
	case p.CertificateAuthority != "":
		p.CAPEM = p.CertificateAuthority
	}
	key := func(leaf string) string {
		switch leaf {
		case "audiences":
			return ak("audiences", "required_audience")
		case "algorithms":
			return ak("algorithms", "allowed_algorithms")
		case "certificate_authority":
			return caKey
		}
		return k(leaf)
	}
	settingBad := bad
	if audKey := key("audiences"); c.typeErr[audKey] {
		// Already reported: the audiences are unset, not missing.
		settingBad = func(key, format string, args ...any) {
			if key != audKey {
				bad(key, format, args...)
			}
		}
	}
	CheckOIDCProvider(p, key, settingBad)
	if p.ClockSkew < 0 || p.ClockSkew > 10*time.Minute {
		bad(ak("clock_skew", "clock_skew_tolerance"), "must be between 0 and 10m, got %s", p.ClockSkew)
	}
	if p.JWKSRefreshInterval < time.Minute {
		bad(k("jwks_refresh_interval"), "must be at least 1m, got %s", p.JWKSRefreshInterval)
	}
	if p.TokenTTL < time.Minute {
		bad(k("token_ttl"), "must be at least 1m, got %s", p.TokenTTL)
	}
	if p.TokenMaxTTL < p.TokenTTL {
		bad(k("token_max_ttl"), "must not be shorter than token_ttl (%s)", p.TokenTTL)
	}
	if p.TokenMaxUses < 0 {
		bad(k("token_max_uses"), "must not be negative (0 means unlimited)")
	}
	CheckOIDCClientAuth(p, func(leaf string) string { return k(leaf) }, bad)
	for j, v := range p.ClaimMapping.Variables {
		vk := fmt.Sprintf("%s[%d]", k("claim_mapping", "variables"), j)
		if v.Name == "" || v.Expression == "" {
			bad(vk, "needs a name and an expression")
		}
	}
	for j, v := range p.ClaimMapping.Validations {
		if v.Expression == "" {
			bad(fmt.Sprintf("%s[%d].expression", k("claim_mapping", "validations"), j), "must not be empty")
		}
	}
}

// CheckOIDCProvider is the one validator of the settings of an OIDC provider
// that mean the same wherever they come from: the preset, issuer, jwks_uri,
// audiences, algorithms, max_token_age and the CA (p.CAPEM). It owns their
// messages. The configuration's validation calls it for every
// [auth.oidc.<name>] table, and oidc.New for every provider it is given, so a
// provider built without a configuration file (tests, tools) is refused in
// the same words `berth check-config` prints.
//
// It fills what the checks need: the preset's issuer when Issuer is empty,
// and the default algorithms (RS256, ES256) when Algorithms is empty. p.Provider
// must already be set ("generic" by default). key maps a setting's leaf
// ("issuer", "audiences", "certificate_authority") to the key path its
// problem is reported under.
//
// Not checked here: the bounds only the configuration file sets (clock_skew,
// jwks_refresh_interval, token_*), what only the oidc package can check
// (provider names, the claim mapping's CEL), and
// certificate_authority_file, which only the configuration reads.
func CheckOIDCProvider(p *OIDCProvider, key func(leaf string) string, bad func(key, format string, args ...any)) {
	preset, ok := providerPresets[p.Provider]
	if !ok {
		bad(key("provider"), "%q is not one of github, gitlab, kubernetes, generic", p.Provider)
	}
	if p.Issuer == "" {
		p.Issuer = preset
	}
	if p.Issuer == "" {
		if ok {
			bad(key("issuer"), "is required for provider %q", p.Provider)
		}
	} else if err := CheckOIDCURL(p.Issuer); err != nil {
		bad(key("issuer"), "%v", err)
	}
	if p.JWKSURI != "" {
		if err := CheckOIDCURL(p.JWKSURI); err != nil {
			bad(key("jwks_uri"), "%v", err)
		}
	}
	if len(p.Audiences) == 0 && p.Provider != "github" && ok {
		bad(key("audiences"), "is required for provider %q: list the audience your tokens are minted for", p.Provider)
	}
	for _, aud := range p.Audiences {
		if aud == "" {
			bad(key("audiences"), "must not contain an empty audience")
		}
	}
	if len(p.Algorithms) == 0 {
		p.Algorithms = []string{"RS256", "ES256"}
	}
	for _, alg := range p.Algorithms {
		if !asymmetric[alg] {
			bad(key("algorithms"), "%q is not allowed: use asymmetric algorithms only (RS*, PS*, ES*, EdDSA)", alg)
		}
	}
	if p.MaxTokenAge < 0 {
		bad(key("max_token_age"), "must not be negative")
	}
	if p.CAPEM != "" {
		if _, err := CertPool([]byte(p.CAPEM)); err != nil {
			bad(key("certificate_authority"), "%v", err)
		}
	}
}

// AmbiguousOIDCProviders says why a provider with audiences aud cannot share
// issuer with the provider other (audiences otherAud), or "" when it can:
// tokens are routed by (iss, aud), so the audiences of two providers of one
// issuer must not overlap, and neither may accept any audience (a github
// provider without audiences).
func AmbiguousOIDCProviders(issuer, other string, otherAud, aud []string) string {
	var common []string
	for _, a := range aud {
		if slices.Contains(otherAud, a) && !slices.Contains(common, strconv.Quote(a)) {
			common = append(common, strconv.Quote(a))
		}
	}
	switch {
	case len(aud) == 0 || len(otherAud) == 0:
		return fmt.Sprintf("%q is also the issuer of provider %q and one of them accepts any audience: a token of this issuer would select either provider; give both providers audiences that do not overlap", issuer, other)
	case len(common) > 0:
		return fmt.Sprintf("%q is also the issuer of provider %q and both accept the audience %s: a token of this issuer for it would select either provider; give the two providers audiences that do not overlap", issuer, other, strings.Join(common, ", "))
	}
	return ""
}

// CheckOIDCClientAuth checks how a provider authenticates to its issuer's
// discovery and JWKS endpoints: bearer_token_file, client_certificate_file and
// client_key_file (both or neither, a matching pair). The files are read
// again when used (they rotate); here they must exist and parse.
func CheckOIDCClientAuth(p *OIDCProvider, key func(leaf string) string, bad func(key, format string, args ...any)) {
	if p.BearerTokenFile != "" {
		if b, err := os.ReadFile(p.BearerTokenFile); err != nil {
			bad(key("bearer_token_file"), "%v", err)
		} else if len(strings.TrimSpace(string(b))) == 0 {
			bad(key("bearer_token_file"), "%s is empty", p.BearerTokenFile)
		}
	}
	switch cert, k := p.ClientCertificateFile, p.ClientKeyFile; {
	case cert == "" && k == "":
	case cert == "":
		bad(key("client_certificate_file"), "is required with client_key_file")
	case k == "":
		bad(key("client_key_file"), "is required with client_certificate_file")
	default:
		if _, err := tls.LoadX509KeyPair(cert, k); err != nil {
			bad(key("client_certificate_file"), "%v", err)
		}
	}
}

// OIDCAlgorithms are the JWS algorithms an OIDC provider may allow, sorted:
// asymmetric ones only.
func OIDCAlgorithms() []string {
	out := make([]string, 0, len(asymmetric))
	for alg := range asymmetric {
		out = append(out, alg)
	}
	sort.Strings(out)
	return out
}

// CheckOIDCURL accepts an issuer's https URLs, and http for loopback
// development issuers; oidc checks a discovered jwks_uri with it too.
func CheckOIDCURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", s)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		h := u.Hostname()
		if h == "localhost" || strings.HasPrefix(h, "127.") || h == "::1" {
			return nil // local development only
		}
		return fmt.Errorf("%q must use https (plain http is accepted for loopback development issuers only)", s)
	}
	return fmt.Errorf("%q must be an https URL", s)
}

// CertPool parses the PEM certificates of a certificate_authority. Blocks
// that are not certificates are skipped; none at all is an error.
func CertPool(data []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	n := 0
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("invalid certificate: %v", err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("no PEM certificate found")
	}
	return pool, nil
}
