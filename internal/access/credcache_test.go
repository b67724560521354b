package access

import (
	"context"
	"errors"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-registry/berth/internal/auth"
	"github.com/berth-registry/berth/internal/policy"
	"github.com/berth-registry/berth/internal/registry"
)

// countingOIDC verifies "idtoken-ok" until expires, counting verifications.
type countingOIDC struct {
	calls   atomic.Int32
	expires time.Time
}

func (c *countingOIDC) Has(p string) bool { return p == "gh" }

func (*countingOIDC) LoginProvider(string, string) (string, error) { return "", nil }
func (c *countingOIDC) Verify(_ context.Context, raw string) (*auth.Identity, error) {
	c.calls.Add(1)
	if raw != "idtoken-ok" {
		return nil, auth.ErrInvalidCredentials
	}
	return &auth.Identity{ID: "oidc:gh:x", Username: "x", Expires: c.expires,
		OIDC: &auth.OIDC{ProviderName: "gh", Claims: map[string]any{"ref": "refs/heads/main"}}}, nil
}
func (c *countingOIDC) VerifyFor(ctx context.Context, _, raw string) (*auth.Identity, error) {
	return c.Verify(ctx, raw)
}

// countingSessions accepts "berth_st_ok" and counts uses, like a session token with a use limit.
type countingSessions struct{ uses atomic.Int32 }

func (*countingSessions) IsBerthToken(raw string) bool { return raw == "berth_st_ok" }
func (*countingSessions) VerifyAccessToken(context.Context, string) (*auth.Identity, error) {
	return nil, auth.ErrInvalidCredentials
}
func (s *countingSessions) VerifySessionToken(context.Context, string, string) (*auth.Identity, error) {
	s.uses.Add(1)
	return &auth.Identity{ID: "user:alice", Username: "alice"}, nil
}

func TestCredentialCacheRemembersUntilExpiry(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	o := &countingOIDC{expires: now.Add(time.Minute)}
	a := &Authenticator{OIDC: o, Now: func() time.Time { return now }}

	for i, ip := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.1"} {
		r := httptest.NewRequest("GET", "/v2/", nil)
		r.RemoteAddr = ip + ":1234"
		r.Header.Set("Authorization", "Bearer idtoken-ok")
		id, err := a.Authenticate(r)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if id.ClientIP != ip || id.ID != "oidc:gh:x" {
			t.Fatalf("request %d: identity %+v", i, id)
		}
	}
	if n := o.calls.Load(); n != 1 {
		t.Fatalf("verified %d times for one token, want 1", n)
	}

	// Basic with the provider name is a different header: verified once more.
	r := httptest.NewRequest("GET", "/v2/", nil)
	r.Header.Set("Authorization", basic("gh", "idtoken-ok"))
	if _, err := a.Authenticate(r); err != nil {
		t.Fatal(err)
	}
	if n := o.calls.Load(); n != 2 {
		t.Fatalf("verifications = %d, want 2", n)
	}

	// Past its expiry the token is verified again, never served from the cache.
	now = now.Add(time.Minute)
	o.expires = now.Add(-time.Second)
	r = httptest.NewRequest("GET", "/v2/", nil)
	r.Header.Set("Authorization", "Bearer idtoken-ok")
	if _, err := a.Authenticate(r); err != nil {
		t.Fatal(err) // the fake does not check expiry itself
	}
	if n := o.calls.Load(); n != 3 {
		t.Fatalf("an expired entry was served: verifications = %d, want 3", n)
	}

	// A refused credential is never remembered.
	r.Header.Set("Authorization", "Bearer idtoken-bad")
	for range 2 {
		if _, err := a.Authenticate(r); !errors.Is(err, auth.ErrInvalidCredentials) {
			t.Fatalf("err = %v", err)
		}
	}
	if n := o.calls.Load(); n != 5 {
		t.Fatalf("verifications = %d, want 5", n)
	}
}

func TestCredentialCacheSkipsStatefulCredentials(t *testing.T) {
	s := &countingSessions{}
	a := &Authenticator{Tokens: s}
	r := httptest.NewRequest("GET", "/v2/", nil)
	r.Header.Set("Authorization", "Bearer berth_st_ok")
	for range 3 {
		if _, err := a.Authenticate(r); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.uses.Load(); n != 3 {
		t.Fatalf("session token checked %d times for 3 requests: a use-limited credential was cached", n)
	}
}

func TestCredentialCacheBounded(t *testing.T) {
	var c credCache
	now := time.Now()
	for i := range 3 * maxCredEntries {
		c.put(string(rune(i))+"-header", &auth.Identity{ID: "x", Expires: now.Add(time.Hour)}, now)
	}
	if len(c.m) > maxCredEntries {
		t.Fatalf("%d entries, bound %d", len(c.m), maxCredEntries)
	}
}

// Decisions remembered with a credential depend on the policies, the client
// address and the request, and a reload's new policies are obeyed at once.
func TestGateRemembersDecisionsPerPolicyAndRequest(t *testing.T) {
	now := time.Now()
	o := &countingOIDC{expires: now.Add(time.Hour)}
	a := &Authenticator{OIDC: o, TokenService: "berth"}
	compile := func(rule string) *policy.Engine {
		e, err := policy.Compile(policy.Config{Global: &policy.Source{Rules: []string{rule}}})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	g := NewGate(&State{Authn: a, Policy: compile(`request.repository == "a" && identity.client_ip == "192.0.2.1"`)}, nil)
	try := func(repo, ip string) error {
		r := httptest.NewRequest("GET", "/v2/"+repo+"/manifests/v1", nil)
		r.RemoteAddr = ip + ":1"
		r.Header.Set("Authorization", "Bearer idtoken-ok")
		_, err := g.Authorize(r.Context(), r, registry.Route{Action: registry.ActionGetManifest, Repo: repo, Reference: "v1"})
		return err
	}
	denied := func(err error) bool {
		var e *registry.Error
		return errors.As(err, &e) && e.Code == registry.CodeDenied
	}
	for range 2 {
		if err := try("a", "192.0.2.1"); err != nil {
			t.Fatalf("a from .1: %v", err)
		}
		if err := try("b", "192.0.2.1"); !denied(err) {
			t.Fatalf("b from .1: %v", err)
		}
		if err := try("a", "192.0.2.9"); !denied(err) {
			t.Fatalf("a from .9 (decision of another client address reused?): %v", err)
		}
	}
	// Reload: same authenticator, new policies.
	g.Store(&State{Authn: a, Policy: compile(`request.repository == "b"`)})
	if err := try("a", "192.0.2.1"); !denied(err) {
		t.Fatalf("after reload, a: %v (old decision reused)", err)
	}
	if err := try("b", "192.0.2.9"); err != nil {
		t.Fatalf("after reload, b: %v", err)
	}
	if n := o.calls.Load(); n != 1 {
		t.Fatalf("verified %d times, want 1", n)
	}
}
