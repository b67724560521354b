package oidc

import (
	"context"
	"testing"

	"github.com/berth-registry/berth/internal/oidctest"
	"github.com/berth-registry/berth/internal/redistest"
	"github.com/berth-registry/berth/internal/shared"
)

// Two verifiers (replicas) sharing a real Redis: the issuer is contacted by
// the first only, including after a key rotation; with Redis gone the
// verifiers fall back to the issuer.
func TestSharedKeySetCache(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	clk := newClock()
	iss := newIssuer(t, oidctest.Options{KeyType: oidctest.EC, Now: clk.Now})
	replica := func() *Verifier {
		r, err := shared.Open(ctx, srv.URL(), "oidctest:", nil)
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
	clk.Add(DefaultKidCooldown)
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
