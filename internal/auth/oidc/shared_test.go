package oidc

import (
	"context"
	"strings"
	"testing"

	"github.com/berth-registry/berth/internal/auth"
	"github.com/berth-registry/berth/internal/devissuer"
	"github.com/berth-registry/berth/internal/redisstate"
	"github.com/berth-registry/berth/internal/redistest"
)

// Two verifiers (replicas) sharing a real Redis: the issuer is contacted by
// the first only, including after a key rotation; with Redis gone the
// verifiers fall back to the issuer.
func TestSharedKeySetCache(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	clk := newClock()
	iss := newIssuer(t, devissuer.Options{KeyType: devissuer.EC, Now: clk.Now})
	replica := func() *Verifier {
		r, err := redisstate.Open(ctx, srv.URL(), "oidctest:", nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		return newVerifier(t, Options{Now: clk.Now, Shared: r},
			ProviderConfig{Name: "gen", Issuer: iss.URL(), Audiences: []string{"berth"}})
	}
	a, b := replica(), replica()

	if _, err := a.Verify(ctx, iss.Mint(map[string]any{"sub": "x", "aud": "berth"})); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Verify(ctx, iss.Mint(map[string]any{"sub": "y", "aud": "berth"})); err != nil {
		t.Fatal(err)
	}
	if iss.DiscoveryFetches() != 1 || iss.JWKSFetches() != 1 {
		t.Fatalf("two replicas: discovery %d, jwks %d fetches; want 1 and 1", iss.DiscoveryFetches(), iss.JWKSFetches())
	}

	// A rotation: the first replica to see the new kid fetches, the other
	// takes the shared set.
	if err := iss.Rotate(false); err != nil {
		t.Fatal(err)
	}
	clk.Advance(DefaultKidCooldown)
	if _, err := b.Verify(ctx, iss.Mint(map[string]any{"sub": "z", "aud": "berth"})); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Verify(ctx, iss.Mint(map[string]any{"sub": "w", "aud": "berth"})); err != nil {
		t.Fatal(err)
	}
	if iss.JWKSFetches() != 2 || iss.DiscoveryFetches() != 1 {
		t.Fatalf("after rotation: discovery %d, jwks %d fetches; want 1 and 2", iss.DiscoveryFetches(), iss.JWKSFetches())
	}

	// Redis down: a third replica still verifies, straight from the issuer.
	srv.Stop()
	c := replica()
	if _, err := c.Verify(ctx, iss.Mint(map[string]any{"sub": "v", "aud": "berth"})); err != nil {
		t.Fatal(err)
	}
	if iss.JWKSFetches() != 3 {
		t.Fatalf("Redis down: jwks fetches %d, want 3", iss.JWKSFetches())
	}
}

// Two replicas sharing a real Redis: a token verified by A is accepted by B
// while the issuer is down and B holds no keys, with B's own claim mapping;
// the entry holds neither the token nor its claims and expires with the
// token. With Redis stopped, a replica verifies with the issuer's keys.
func TestSharedTokenCacheRedis(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	clk := newClock()
	iss := newIssuer(t, devissuer.Options{KeyType: devissuer.EC, Now: clk.Now})
	open := func() *redisstate.Redis {
		r, err := redisstate.Open(ctx, srv.URL(), "oidctok:", nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		return r
	}
	replica := func(m ClaimMapping) *Verifier {
		return newVerifier(t, Options{Now: clk.Now, Shared: open()},
			ProviderConfig{Name: "gen", Issuer: iss.URL(), Audiences: []string{"berth"}, ClaimMapping: m})
	}
	a := replica(ClaimMapping{})
	b := replica(ClaimMapping{Username: "'b/' + claims.sub"})

	tok := iss.Mint(map[string]any{"sub": "alice", "aud": "berth"})
	if _, err := a.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	a.writing.Wait()
	val, found, err := open().Get(ctx, sharedTokenKey(a.providers["gen"], tok))
	if err != nil || !found {
		t.Fatalf("A's entry: found %v, %v", found, err)
	}
	if strings.Contains(string(val), "alice") || strings.Contains(string(val), tok[strings.LastIndexByte(tok, '.')+1:]) {
		t.Fatalf("the entry holds a claim or the token: %s", val)
	}

	// The issuer stops answering; B has never fetched its keys. The shared
	// key set would still serve B: it never gets that far.
	iss.SetDown(true)
	fetches := iss.JWKSFetches() + iss.DiscoveryFetches()
	id, err := b.Verify(ctx, tok)
	if err != nil {
		t.Fatalf("B refused A's token: %v", err)
	}
	if id.Username != "b/alice" {
		t.Fatalf("B's identity %q: B's claim mapping was not applied", id.Username)
	}
	if iss.JWKSFetches()+iss.DiscoveryFetches() != fetches || keysLoaded(b) {
		t.Fatal("B fetched keys")
	}

	// Redis stopped, issuer up: a new replica verifies on its own.
	c, d := replica(ClaimMapping{}), replica(ClaimMapping{})
	srv.Stop()
	iss.SetDown(false)
	if _, err := c.Verify(ctx, tok); err != nil {
		t.Fatalf("Redis down: %v", err)
	}
	if iss.JWKSFetches() == 0 || !keysLoaded(c) {
		t.Fatal("C did not fetch the keys")
	}
	// Redis stopped, issuer down: a replica without keys refuses (503).
	iss.SetDown(true)
	_, err = d.Verify(ctx, tok)
	refused(t, err, auth.ErrUnavailable, "no keys cached", tok)
}
