package access

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/berth-registry/berth/internal/auth"
	"github.com/berth-registry/berth/internal/registry"
)

func TestLocalFailuresWindows(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := &LocalFailures{Now: func() time.Time { return now }}
	ctx := context.Background()
	if n, _, _ := c.AddFailures(ctx, "a", 0, time.Minute); n != 0 {
		t.Fatalf("fresh key has %d", n)
	}
	for i := 1; i <= 3; i++ {
		n, left, _ := c.AddFailures(ctx, "a", 1, time.Minute)
		if n != i || left != time.Minute {
			t.Fatalf("add %d: n=%d left=%s", i, n, left)
		}
	}
	now = now.Add(40 * time.Second)
	if n, left, _ := c.AddFailures(ctx, "a", 0, time.Minute); n != 3 || left != 20*time.Second {
		t.Fatalf("read: n=%d left=%s (the window is fixed, not sliding)", n, left)
	}
	if n, _, _ := c.AddFailures(ctx, "b", 0, time.Minute); n != 0 {
		t.Fatalf("keys are independent: b has %d", n)
	}
	now = now.Add(20 * time.Second)
	if n, _, _ := c.AddFailures(ctx, "a", 0, time.Minute); n != 0 {
		t.Fatalf("after the window: %d", n)
	}
	if n, _, _ := c.AddFailures(ctx, "a", 1, time.Minute); n != 1 {
		t.Fatalf("new window starts at 1, got %d", n)
	}
}

func TestLocalFailuresBounded(t *testing.T) {
	c := &LocalFailures{}
	for i := range maxLocalFailureKeys + 1000 {
		c.AddFailures(context.Background(), string(rune(i)), 1, time.Hour)
	}
	if len(c.m) > maxLocalFailureKeys {
		t.Fatalf("%d keys, bound %d", len(c.m), maxLocalFailureKeys)
	}
}

type failingCounter struct{}

func (failingCounter) AddFailures(context.Context, string, int, time.Duration) (int, time.Duration, error) {
	return 0, 0, errors.New("redis down")
}

func TestLimiterBlocksAfterFailures(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	a := &Authenticator{OIDC: fakeOIDC{}, Users: fakeUsers{}, TokenService: "berth",
		Limiter: &Limiter{Counter: &LocalFailures{Now: clock}, Max: 3, Window: time.Minute}}
	g := NewGate(&State{Authn: a, Policy: authenticatedOnly(t)}, nil)
	try := func(ip, header string) error {
		r := httptest.NewRequest("GET", "/v2/a/manifests/v1", nil)
		r.RemoteAddr = ip + ":1"
		r.Header.Set("Authorization", header)
		_, err := g.Authorize(r.Context(), r, registry.Route{Action: registry.ActionGetManifest, Repo: "a", Reference: "v1"})
		return err
	}
	code := func(err error) registry.Code {
		var e *registry.Error
		if errors.As(err, &e) {
			return e.Code
		}
		return ""
	}
	good, bad := basic("alice", "secret"), basic("alice", "wrong")
	// Good credentials never count.
	for range 5 {
		if err := try("192.0.2.1", good); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		if c := code(try("192.0.2.1", bad)); c != registry.CodeUnauthorized {
			t.Fatalf("failure %d: %s", i+1, c)
		}
	}
	// Over the limit: even good credentials get 429 with Retry-After, from that address only.
	err := try("192.0.2.1", good)
	var e *registry.Error
	if !errors.As(err, &e) || e.Code != registry.CodeTooManyRequests || e.Header.Get("Retry-After") != "60" {
		t.Fatalf("over the limit: %v", err)
	}
	if err := try("192.0.2.2", good); err != nil {
		t.Fatalf("another address: %v", err)
	}
	// The token service's entry point is limited too.
	if _, err := a.Basic(context.Background(), "alice", "secret", "192.0.2.1"); !errors.Is(err, auth.ErrRateLimited) {
		t.Fatalf("Basic over the limit: %v", err)
	}
	now = now.Add(time.Minute)
	if err := try("192.0.2.1", good); err != nil {
		t.Fatalf("after the window: %v", err)
	}
	// Unreachable shared counter: nobody is locked out.
	a.Limiter.Counter = failingCounter{}
	if _, err := a.Basic(context.Background(), "alice", "secret", "192.0.2.1"); err != nil {
		t.Fatalf("counter down: %v", err)
	}
	// Unavailable verification is not a failure of the client.
	a2 := &Authenticator{OIDC: fakeOIDC{down: true}, Limiter: &Limiter{Counter: &LocalFailures{}, Max: 1, Window: time.Minute}}
	for range 3 {
		if _, err := a2.Basic(context.Background(), "gh", "idtoken-gh", "192.0.2.1"); !errors.Is(err, auth.ErrUnavailable) {
			t.Fatalf("err = %v", err)
		}
	}
}

// expiringTokens verifies the access token "berth_at_ok" (pull on a) until expires.
type expiringTokens struct{ expires time.Time }

func (expiringTokens) IsBerthToken(raw string) bool { return strings.HasPrefix(raw, "berth_") }
func (e expiringTokens) VerifyAccessToken(_ context.Context, raw string) (*auth.Identity, error) {
	if raw != "berth_at_ok" {
		return nil, auth.ErrInvalidCredentials
	}
	return &auth.Identity{ID: "user:alice", Expires: e.expires,
		Access: []auth.Access{{Type: "repository", Name: "a", Actions: []string{"pull"}}}}, nil
}
func (expiringTokens) VerifySessionToken(context.Context, string, string) (*auth.Identity, error) {
	return nil, auth.ErrInvalidCredentials
}

// TestLimiterRefusesRememberedCredentials: a credential remembered from an
// earlier success (an ID token, a registry access token) is refused with 429
// like any other while its address is over the limit.
func TestLimiterRefusesRememberedCredentials(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	a := &Authenticator{OIDC: &countingOIDC{expires: now.Add(time.Hour)}, Tokens: expiringTokens{expires: now.Add(time.Hour)},
		TokenService: "berth", Now: clock,
		Limiter: &Limiter{Counter: &LocalFailures{Now: clock}, Max: 3, Window: time.Minute, Now: clock}}
	g := NewGate(&State{Authn: a, Policy: authenticatedOnly(t)}, nil)
	try := func(ip, header string) error {
		r := httptest.NewRequest("GET", "/v2/a/manifests/v1", nil)
		r.RemoteAddr = ip + ":1"
		r.Header.Set("Authorization", header)
		_, err := g.Authorize(r.Context(), r, registry.Route{Action: registry.ActionGetManifest, Repo: "a", Reference: "v1"})
		return err
	}
	good := map[string]string{
		"Bearer ID token":       "Bearer idtoken-ok",
		"Basic provider login":  basic("gh", "idtoken-ok"),
		"Bearer registry token": "Bearer berth_at_ok",
	}
	for what, h := range good { // remembered from here on
		if err := try("192.0.2.1", h); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	for range 3 {
		if err := try("192.0.2.1", "Bearer berth_at_forged"); !errors.Is(err, auth.ErrInvalidCredentials) {
			t.Fatalf("forged token: %v", err)
		}
	}
	for what, h := range good {
		var e *registry.Error
		if err := try("192.0.2.1", h); !errors.As(err, &e) || e.Code != registry.CodeTooManyRequests || e.Header.Get("Retry-After") != "60" {
			t.Errorf("%s over the limit: %v, want 429 with Retry-After: 60", what, err)
		}
		if err := try("192.0.2.2", h); err != nil {
			t.Errorf("%s from another address: %v", what, err)
		}
	}
	now = now.Add(time.Minute)
	for what, h := range good {
		if err := try("192.0.2.1", h); err != nil {
			t.Errorf("%s after the window: %v", what, err)
		}
	}
}
