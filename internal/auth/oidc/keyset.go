package oidc

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/sync/singleflight"

	"github.com/berth-registry/berth/internal/config"
)

// keySet is one issuer's long-lived key set: go-oidc does its discovery,
// go-jose parses its keys and verifies signatures with them. What it adds over
// go-oidc's RemoteKeySet is what that lacks: lazy and cached discovery, a
// cooldown on unknown-kid refetches, a capped response size and fetch time,
// background refresh, and keeping the last good keys through an outage.
type keySet struct {
	v        *Verifier
	provider string // for logs: the names of the providers sharing it
	issuer   string
	client   *http.Client
	algs     []jose.SignatureAlgorithm
	interval time.Duration

	sf          singleflight.Group
	refreshOnce sync.Once
	sigChecks   atomic.Int64 // signature verifications, for tests and metrics

	configuredJWKS string // jwks_uri from the configuration, "" to discover

	mu        sync.RWMutex
	jwksURL   string // configured, or discovered once and cached
	keys      []jose.JSONWebKey
	loaded    bool
	lastFetch time.Time // start of the last fetch, for the unknown-kid cooldown
}

var (
	errCooldown = errors.New("unknown-kid refetch cooling down")
	errNoKey    = errors.New("no key")
)

// candidates returns the keys that may have signed a token with this kid and
// alg (errors name the provider name), fetching the key set on first use and refetching (at most once per
// cooldown) when the kid is unknown.
func (k *keySet) candidates(ctx context.Context, name, kid, alg string) ([]jose.JSONWebKey, error) {
	k.mu.RLock()
	keys, loaded := k.keys, k.loaded
	k.mu.RUnlock()
	if !loaded {
		var err error
		keys, err = k.fetchWait(ctx, true)
		if err != nil {
			if ctx.Err() != nil {
				return nil, unavailable(name, ctx.Err(), "waiting for the key set of %s: %v", k.issuer, ctx.Err())
			}
			return nil, unavailable(name, nil, "issuer %s unreachable and no keys cached: %v", k.issuer, err)
		}
	}
	if kid == "" {
		// go-oidc's rule: a token without kid may be signed by any key.
		var out []jose.JSONWebKey
		for _, key := range keys {
			if keyFits(key, alg) == nil {
				out = append(out, key)
			}
		}
		if len(out) == 0 {
			return nil, invalid(name, "no kid and no %s key for issuer %s", alg, k.issuer)
		}
		return out, nil
	}
	match := withKid(keys, kid)
	if len(match) == 0 {
		fresh, err := k.fetchWait(ctx, false)
		switch {
		case err == nil:
			match = withKid(fresh, kid)
		case errors.Is(err, errCooldown):
		case ctx.Err() != nil:
			return nil, unavailable(name, ctx.Err(), "waiting for the key set of %s: %v", k.issuer, ctx.Err())
		default:
			k.v.log.Warn("oidc: key set refresh for unknown kid failed; keeping cached keys",
				"provider", k.provider, "issuer", k.issuer, "err", err)
		}
		if len(match) == 0 {
			return nil, invalid(name, "unknown kid %s for issuer %s", q(kid), k.issuer)
		}
	}
	var fit []jose.JSONWebKey
	var mismatch error
	for _, key := range match {
		if err := keyFits(key, alg); err != nil {
			mismatch = err
			continue
		}
		fit = append(fit, key)
	}
	if len(fit) == 0 {
		return nil, invalid(name, "key %s: %v", q(kid), mismatch)
	}
	return fit, nil
}

// holds reports whether the keys in memory settle a token with this kid
// without a fetch: the key set is loaded and, when the token names a kid, has
// a key with it.
func (k *keySet) holds(kid string) bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if !k.loaded {
		return false
	}
	if kid == "" {
		return true
	}
	for i := range k.keys {
		if k.keys[i].KeyID == kid {
			return true
		}
	}
	return false
}

func withKid(keys []jose.JSONWebKey, kid string) []jose.JSONWebKey {
	var out []jose.JSONWebKey
	for _, key := range keys {
		if key.KeyID == kid {
			out = append(out, key)
		}
	}
	return out
}

// keyFits checks that the key's type (and declared alg, if any) match the
// token's alg, so that e.g. an RSA key is never used for ES256.
func keyFits(key jose.JSONWebKey, alg string) error {
	ok := false
	kty := "unknown"
	switch pub := key.Key.(type) {
	case *rsa.PublicKey:
		kty = "RSA"
		ok = strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	case *ecdsa.PublicKey:
		kty = "EC " + pub.Curve.Params().Name
		switch alg {
		case "ES256":
			ok = pub.Curve == elliptic.P256()
		case "ES384":
			ok = pub.Curve == elliptic.P384()
		case "ES512":
			ok = pub.Curve == elliptic.P521()
		}
	case ed25519.PublicKey:
		kty = "Ed25519"
		ok = alg == "EdDSA"
	}
	if !ok {
		return fmt.Errorf("key type %s does not match algorithm %s", kty, alg)
	}
	if key.Algorithm != "" && key.Algorithm != alg {
		return fmt.Errorf("key is for %s, token algorithm is %s", key.Algorithm, alg)
	}
	return nil
}

// fetchWait joins or starts a fetch and waits for it, or for ctx. Unless
// force, a fetch less than the cooldown after the previous one is skipped
// (errCooldown). The fetch itself runs on the Verifier's context: a request
// that gives up does not cancel it for the others.
func (k *keySet) fetchWait(ctx context.Context, force bool) ([]jose.JSONWebKey, error) {
	ch := k.sf.DoChan("jwks", func() (any, error) { return k.fetch(force) })
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.([]jose.JSONWebKey), nil
	}
}

// fetch runs inside the single flight.
func (k *keySet) fetch(force bool) ([]jose.JSONWebKey, error) {
	now := k.v.now()
	k.mu.Lock()
	if !force && k.loaded && now.Sub(k.lastFetch) < k.v.cooldown {
		k.mu.Unlock()
		return nil, errCooldown
	}
	k.lastFetch = now
	jwksURL := k.jwksURL
	k.mu.Unlock()

	ctx, cancel := context.WithTimeout(k.v.base, k.v.fetchTimeout)
	defer cancel()
	if keys, ok := k.fromShared(ctx, now, force); ok {
		return keys, nil
	}
	if jwksURL == "" {
		u, err := k.discover(ctx)
		if err != nil {
			return nil, err
		}
		jwksURL = u
		k.mu.Lock()
		k.jwksURL = u
		k.mu.Unlock()
	}
	keys, err := k.getJWKS(ctx, jwksURL)
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	k.keys, k.loaded = keys, true
	k.mu.Unlock()
	k.toShared(ctx, now, jwksURL, keys)
	k.v.log.Debug("oidc: key set fetched", "provider", k.provider, "issuer", k.issuer, "keys", len(keys))
	k.refreshOnce.Do(func() { k.v.background(k.refreshLoop) })
	return keys, nil
}

// sharedKeySet is a key set as kept in the shared cache.
type sharedKeySet struct {
	JWKSURL string            `json:"jwks_uri"`
	Keys    []jose.JSONWebKey `json:"keys"`
	Fetched time.Time         `json:"fetched"`
}

// sharedKey names the issuer's key set in the shared cache; the configured
// jwks_uri is part of it, as two providers may configure one issuer apart.
func (k *keySet) sharedKey() string {
	return "oidc:jwks:" + k.issuer + " " + k.configuredJWKS
}

// fromShared takes the key set from the shared cache when another replica
// fetched it recently enough: within the refresh interval for a first load,
// half of it for a background refresh, within the cooldown for an unknown
// kid (a replica that just fetched has seen the rotation too).
func (k *keySet) fromShared(ctx context.Context, now time.Time, force bool) ([]jose.JSONWebKey, bool) {
	if k.v.shared == nil {
		return nil, false
	}
	k.mu.RLock()
	loaded := k.loaded
	k.mu.RUnlock()
	maxAge := k.interval
	switch {
	case loaded && force:
		maxAge = k.interval / 2
	case loaded:
		maxAge = k.v.cooldown
	}
	b, found, err := k.v.shared.Get(ctx, k.sharedKey())
	if err != nil {
		k.v.log.Warn("oidc: shared key-set cache unavailable; asking the issuer", "provider", k.provider, "err", err)
		return nil, false
	}
	if !found {
		return nil, false
	}
	var e sharedKeySet
	if err := json.Unmarshal(b, &e); err != nil || e.JWKSURL == "" || len(e.Keys) == 0 {
		return nil, false
	}
	if age := now.Sub(e.Fetched); age < 0 || age >= maxAge {
		return nil, false
	}
	var keys []jose.JSONWebKey
	for _, key := range e.Keys {
		if key.Valid() && unusable(key) == "" {
			keys = append(keys, key)
		}
	}
	if len(keys) == 0 {
		return nil, false
	}
	k.mu.Lock()
	k.jwksURL, k.keys, k.loaded = e.JWKSURL, keys, true
	k.mu.Unlock()
	k.v.log.Debug("oidc: key set taken from the shared cache", "provider", k.provider, "issuer", k.issuer, "keys", len(keys))
	k.refreshOnce.Do(func() { k.v.background(k.refreshLoop) })
	return keys, true
}

// toShared publishes a freshly fetched key set for the other replicas.
func (k *keySet) toShared(ctx context.Context, now time.Time, jwksURL string, keys []jose.JSONWebKey) {
	if k.v.shared == nil {
		return
	}
	b, err := json.Marshal(sharedKeySet{JWKSURL: jwksURL, Keys: keys, Fetched: now})
	if err == nil {
		err = k.v.shared.Set(ctx, k.sharedKey(), b, max(2*k.interval, time.Minute))
	}
	if err != nil {
		k.v.log.Warn("oidc: could not share the key set", "provider", k.provider, "err", err)
	}
}

func (k *keySet) discover(ctx context.Context) (string, error) {
	p, err := gooidc.NewProvider(gooidc.ClientContext(ctx, k.client), k.issuer)
	if err != nil {
		return "", fmt.Errorf("discovery: %w", err)
	}
	var meta struct {
		JWKSURI string `json:"jwks_uri"`
	}
	if err := p.Claims(&meta); err != nil {
		return "", fmt.Errorf("discovery: %w", err)
	}
	if meta.JWKSURI == "" {
		return "", fmt.Errorf("discovery: no jwks_uri")
	}
	if err := config.CheckOIDCURL(meta.JWKSURI); err != nil {
		return "", fmt.Errorf("discovery: jwks_uri: %w", err)
	}
	k.v.log.Info("oidc: discovered key set", "provider", k.provider, "issuer", k.issuer, "jwks_uri", meta.JWKSURI)
	return meta.JWKSURI, nil
}

func (k *keySet) getJWKS(ctx context.Context, jwksURL string) ([]jose.JSONWebKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, jwksURL, nil)
	if err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body) // capped by the client's transport
	if err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jwks: GET %s: %s", jwksURL, resp.Status)
	}
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, fmt.Errorf("jwks: %v", err)
	}
	var keys []jose.JSONWebKey
	for _, r := range raw.Keys {
		var key jose.JSONWebKey
		if err := json.Unmarshal(r, &key); err != nil {
			// Unknown key types are ignored, as RFC 7517 section 5 asks.
			k.v.log.Debug("oidc: ignoring a JWKS key", "provider", k.provider, "err", err)
			continue
		}
		if reason := unusable(key); reason != "" {
			k.v.log.Debug("oidc: ignoring a JWKS key", "provider", k.provider, "kid", key.KeyID, "reason", reason)
			continue
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("jwks: no usable signing key in %s", jwksURL)
	}
	return keys, nil
}

// unusable says why a published key is never used, or "".
func unusable(key jose.JSONWebKey) string {
	if key.Use != "" && key.Use != "sig" {
		return "use is " + key.Use
	}
	switch pub := key.Key.(type) {
	case *rsa.PublicKey:
		if pub.N.BitLen() < 2048 {
			return fmt.Sprintf("RSA key of %d bits", pub.N.BitLen())
		}
	case *ecdsa.PublicKey, ed25519.PublicKey:
	default:
		return fmt.Sprintf("not a public signing key (%T)", key.Key)
	}
	return ""
}

// refreshLoop refetches the key set every interval until the Verifier closes.
// A failure keeps the cached keys.
func (k *keySet) refreshLoop(ctx context.Context) {
	t := time.NewTicker(k.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := k.fetchWait(ctx, true); err != nil && ctx.Err() == nil && !errors.Is(err, errCooldown) {
				k.v.log.Warn("oidc: key set refresh failed; keeping cached keys",
					"provider", k.provider, "issuer", k.issuer, "err", err)
			}
		}
	}
}

// verifySignature checks the signature of jws (parsed by parseUnverified)
// with the candidate keys chosen by Verifier; go-jose does the cryptography.
func (k *keySet) verifySignature(jws *jose.JSONWebSignature, keys []jose.JSONWebKey) error {
	k.sigChecks.Add(1)
	err := errNoKey
	for i := range keys {
		if _, err = jws.Verify(keys[i].Key); err == nil {
			return nil
		}
	}
	return fmt.Errorf("bad signature: %v", err)
}

// capTransport caps response bodies, for discovery (read by go-oidc) and JWKS.
type capTransport struct {
	rt  http.RoundTripper
	max int64
}

func (t capTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.rt.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.ContentLength > t.max {
		resp.Body.Close()
		return nil, fmt.Errorf("response of %d bytes exceeds the limit of %d", resp.ContentLength, t.max)
	}
	resp.Body = &capReader{rc: resp.Body, left: t.max, max: t.max}
	return resp, nil
}

type capReader struct {
	rc        io.ReadCloser
	left, max int64
}

func (r *capReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		// Read one more byte to tell "exactly the limit" from "over".
		var b [1]byte
		if n, _ := r.rc.Read(b[:]); n > 0 {
			return 0, fmt.Errorf("response exceeds the limit of %d bytes", r.max)
		}
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.rc.Read(p)
	r.left -= int64(n)
	return n, err
}

func (r *capReader) Close() error { return r.rc.Close() }
