package oidc

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/berth-registry/berth/internal/config"
)

// New validates and compiles every provider and returns a Verifier. It never
// contacts an issuer: discovery and key sets are fetched on first use. When
// the configuration is wrong, err is a *ConfigError listing every problem with
// its key path (auth.oidc.<name>.<key>). Warnings are returned either way.
//
// The settings whose meaning does not depend on where they come from (preset,
// issuer, jwks_uri, audiences, algorithms, max_token_age, CA) are checked by
// config.CheckOIDCProvider, the validator the configuration file goes through
// too, so they are refused in the words `berth check-config` prints. New adds
// what only it can check: provider names, providers of one issuer whose
// audiences overlap (the configuration reports them too), the
// durations whose 0 means "the default" here, required claim names, a CA with
// a custom HTTP transport, and the claim mapping's CEL.
func New(providers []ProviderConfig, o Options) (v *Verifier, warnings []string, err error) {
	o = o.withDefaults()
	v = newEmpty(o)
	clients := newFetchClients(o)
	sets := map[string]*keySet{}
	var ps problems
	for _, pc := range providers {
		v.add(pc, clients, sets, &ps)
	}
	if len(ps.list) > 0 {
		v.cancel()
		return nil, ps.warnings, &ConfigError{Problems: ps.list}
	}
	slices.Sort(v.names)
	return v, ps.warnings, nil
}

// withDefaults fills the options left zero.
func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.CacheSize == 0 {
		o.CacheSize = DefaultCacheSize
	}
	if o.FetchTimeout <= 0 {
		o.FetchTimeout = DefaultFetchTimeout
	}
	if o.MaxResponseBytes <= 0 {
		o.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if o.UnknownKidCooldown <= 0 {
		o.UnknownKidCooldown = DefaultKidCooldown
	}
	return o
}

// newEmpty is a Verifier without providers, with its token cache and its
// background context.
func newEmpty(o Options) *Verifier {
	base, cancel := context.WithCancel(context.Background())
	v := &Verifier{
		providers:    map[string]*provider{},
		byIssuer:     map[string][]*provider{},
		log:          o.Logger,
		now:          o.Now,
		fetchTimeout: o.FetchTimeout,
		cooldown:     o.UnknownKidCooldown,
		shared:       o.Shared,
		base:         base,
		cancel:       cancel,
	}
	if o.CacheSize > 0 {
		v.cache = newTokenCache(o.CacheSize)
	}
	return v
}

// problems collects what New finds wrong with the providers, and its warnings.
type problems struct {
	list     []Problem
	warnings []string
}

func (ps *problems) bad(key, format string, args ...any) {
	ps.list = append(ps.list, Problem{Key: key, Message: fmt.Sprintf(format, args...)})
}

// add checks and compiles one provider and registers it. A provider with
// problems is compiled as far as it can be, so that every problem is found.
// Providers of one issuer that fetch its keys alike share one key set (sets).
func (v *Verifier) add(pc ProviderConfig, clients *fetchClients, sets map[string]*keySet, ps *problems) {
	p, interval := v.newProvider(pc, ps)
	client := clients.forProvider(p, pc, ps)
	p.mapping = compileMapping(p.name, p.preset, pc.ClaimMapping, ps.bad)
	setKey := strings.Join([]string{p.issuer, pc.JWKSURI, string(pc.CACertPEM), pc.BearerTokenFile, pc.ClientCertFile, pc.ClientKeyFile}, "\x00")
	if k := sets[setKey]; k != nil && p.issuer != "" {
		// One key set per issuer: fetched once, refreshed at the shortest
		// interval of the providers sharing it.
		k.provider += ", " + p.name
		k.interval = min(k.interval, interval)
		p.keys = k
	} else {
		p.keys = v.newKeySet(p, pc.JWKSURI, client, interval)
		sets[setKey] = p.keys
	}
	p.fingerprint = providerFingerprint(p, pc)
	if p.name != "" && v.providers[p.name] == nil {
		v.providers[p.name] = p
		v.names = append(v.names, p.name)
	}
	if p.issuer != "" {
		v.byIssuer[p.issuer] = append(v.byIssuer[p.issuer], p)
	}
}

// newProvider checks a provider's settings and applies their defaults. It
// returns the key-set refresh interval with them.
func (v *Verifier) newProvider(pc ProviderConfig, ps *problems) (*provider, time.Duration) {
	name := pc.Name
	key := func(leaf ...string) string { return providerKey(name, leaf...) }
	v.checkName(name, ps)
	s := config.OIDCProvider{Provider: cmp.Or(pc.Preset, "generic"), Issuer: pc.Issuer, JWKSURI: pc.JWKSURI,
		Audiences: pc.Audiences, Algorithms: pc.Algorithms, MaxTokenAge: pc.MaxTokenAge, CAPEM: string(pc.CACertPEM)}
	config.CheckOIDCProvider(&s, func(leaf string) string { return key(leaf) }, ps.bad)
	p := &provider{name: name, preset: s.Provider, issuer: s.Issuer, audiences: pc.Audiences, algList: s.Algorithms,
		skew: pc.ClockSkew, maxAge: pc.MaxTokenAge, required: pc.RequiredClaims, kubernetes: s.Provider == "kubernetes",
		anyUsername: pc.AcceptAnyUsername}
	for _, other := range v.byIssuer[p.issuer] {
		if msg := config.AmbiguousOIDCProviders(p.issuer, other.name, other.audiences, p.audiences); msg != "" {
			ps.bad(key("issuer"), "%s", msg)
		}
	}
	if pc.ClientCertFile != "" || pc.ClientKeyFile != "" || pc.BearerTokenFile != "" {
		c := config.OIDCProvider{Issuer: p.issuer, JWKSURI: pc.JWKSURI, BearerTokenFile: pc.BearerTokenFile,
			ClientCertificateFile: pc.ClientCertFile, ClientKeyFile: pc.ClientKeyFile}
		config.CheckOIDCClientAuth(&c, func(leaf string) string { return key(leaf) }, ps.bad)
	}
	if len(p.audiences) == 0 && p.preset == "github" {
		ps.warnings = append(ps.warnings, key("audiences")+": not set: any GitHub Actions token is accepted whatever its audience, including tokens minted for other services; set the audience your workflows request")
	}
	p.algs = make(map[string]bool, len(p.algList))
	for _, alg := range p.algList {
		p.algs[alg] = true
	}
	// 0 means the default here; the configuration file sets its own bounds.
	if p.skew < 0 {
		ps.bad(key("clock_skew"), "must not be negative")
	} else if p.skew == 0 {
		p.skew = DefaultClockSkew
	}
	interval := pc.JWKSRefreshInterval
	if interval < 0 {
		ps.bad(key("jwks_refresh_interval"), "must not be negative")
	} else if interval == 0 {
		interval = DefaultRefreshInterval
	}
	if slices.Contains(p.required, "") {
		ps.bad(key("required_claims"), "must not contain an empty claim name")
	}
	return p, interval
}

// checkName checks a provider's name, which is also its docker login username.
func (v *Verifier) checkName(name string, ps *problems) {
	switch {
	case name == "":
		ps.bad("auth.oidc", "a provider needs a name")
	case strings.ContainsFunc(name, func(r rune) bool { return r == ':' || unicode.IsSpace(r) || unicode.IsControl(r) }):
		ps.bad(providerKey(name), "the name is the docker login username: it must not contain ':' or spaces")
	case v.providers[name] != nil:
		ps.bad(providerKey(name), "provider defined twice")
	}
}

// newKeySet is p's key set, fetched lazily with client.
func (v *Verifier) newKeySet(p *provider, jwksURI string, client *http.Client, interval time.Duration) *keySet {
	return &keySet{v: v, provider: p.name, issuer: p.issuer, client: client, algs: joseAlgorithms(p.algList),
		interval: interval, jwksURL: jwksURI, configuredJWKS: jwksURI}
}

func joseAlgorithms(algs []string) []jose.SignatureAlgorithm {
	out := make([]jose.SignatureAlgorithm, len(algs))
	for i, a := range algs {
		out[i] = jose.SignatureAlgorithm(a)
	}
	return out
}

// fetchClients are the HTTP clients key sets fetch discovery documents and
// JWKS with: every response is capped at Options.MaxResponseBytes.
type fetchClients struct {
	rt            http.RoundTripper // Options.HTTPClient's, or http.DefaultTransport
	checkRedirect func(*http.Request, []*http.Request) error
	max           int64
	shared        *http.Client // for the providers without a CA of their own
	wrap          func(http.RoundTripper) http.RoundTripper
}

// wrapped is rt wrapped by Options.WrapTransport, if any.
func (c *fetchClients) wrapped(rt http.RoundTripper) http.RoundTripper {
	if c.wrap == nil {
		return rt
	}
	return c.wrap(rt)
}

func newFetchClients(o Options) *fetchClients {
	c := &fetchClients{rt: http.DefaultTransport, max: o.MaxResponseBytes, wrap: o.WrapTransport}
	if o.HTTPClient != nil {
		c.checkRedirect = o.HTTPClient.CheckRedirect
		if o.HTTPClient.Transport != nil {
			c.rt = o.HTTPClient.Transport
		}
	}
	c.shared = &http.Client{Transport: capTransport{rt: c.wrapped(c.rt), max: c.max}, CheckRedirect: c.checkRedirect}
	return c
}

// forProvider is the client that fetches the discovery document and key set
// of provider p: the shared one, or one with the provider's CA, client
// certificate and bearer token.
func (c *fetchClients) forProvider(p *provider, pc ProviderConfig, ps *problems) *http.Client {
	var roots *x509.CertPool
	if len(pc.CACertPEM) > 0 {
		// A CA that does not parse is reported by config.CheckOIDCProvider.
		pool, err := config.CertPool(pc.CACertPEM)
		if err != nil {
			return c.shared
		}
		roots = pool
	}
	certFile, keyFile := pc.ClientCertFile, pc.ClientKeyFile
	if certFile == "" || keyFile == "" {
		certFile, keyFile = "", "" // reported by config.CheckOIDCClientAuth
	}
	rt := c.rt
	if roots != nil || certFile != "" {
		tr, ok := c.rt.(*http.Transport)
		if !ok {
			leaf := "certificate_authority"
			if roots == nil {
				leaf = "client_certificate_file"
			}
			ps.bad(providerKey(p.name, leaf), "cannot be applied: the HTTP client has a custom transport (%T)", c.rt)
			return c.shared
		}
		tr = tr.Clone()
		if tr.TLSClientConfig == nil {
			tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		if roots != nil {
			tr.TLSClientConfig.RootCAs = roots
		}
		if certFile != "" {
			tr.TLSClientConfig.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				// Read for every handshake: a renewed certificate is used
				// without a restart (handshakes are rare: connections are
				// kept alive, fetches are hourly).
				cert, err := tls.LoadX509KeyPair(certFile, keyFile)
				if err != nil {
					return nil, fmt.Errorf("oidc: client certificate: %w", err)
				}
				return &cert, nil
			}
		}
		rt = tr
	}
	if pc.BearerTokenFile != "" {
		rt = newBearerTransport(rt, pc.BearerTokenFile, p.issuer, pc.JWKSURI)
	}
	if rt == c.rt {
		return c.shared
	}
	return &http.Client{Transport: capTransport{rt: c.wrapped(rt), max: c.max}, CheckRedirect: c.checkRedirect}
}
