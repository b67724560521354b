package access

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/berth-registry/berth/internal/auth"
	"github.com/berth-registry/berth/internal/auth/oidc"
	"github.com/berth-registry/berth/internal/devissuer"
	"github.com/berth-registry/berth/internal/registry"
)

// A docker login with a username that names no provider (zot's `-u oauth`),
// with the real verifier: accepted where the provider the token's issuer
// selects has accept_any_username, refused elsewhere with a log line that
// says why (and never holds the token). Basic is the token service's path
// (GET /token, the password grant); the Gate is Basic on /v2.
func TestAnyUsername(t *testing.T) {
	k8s, err := devissuer.New(devissuer.Options{KeyType: devissuer.EC})
	if err != nil {
		t.Fatal(err)
	}
	defer k8s.Close()
	gh, err := devissuer.New(devissuer.Options{KeyType: devissuer.EC})
	if err != nil {
		t.Fatal(err)
	}
	defer gh.Close()
	v, _, err := oidc.New([]oidc.ProviderConfig{
		{Name: "cluster", Preset: "kubernetes", Issuer: k8s.URL(), Audiences: []string{"berth"}, AcceptAnyUsername: true},
		{Name: "gh", Preset: "github", Issuer: gh.URL(), Audiences: []string{"berth"}},
	}, oidc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a := &Authenticator{OIDC: v, Users: fakeUsers{}, Tokens: fakeTokens{}, Logger: logger}
	g := NewGate(&State{Authn: a, Policy: authenticatedOnly(t)}, logger)
	ctx := context.Background()
	k8sTok := k8s.Mint(map[string]any{"aud": "berth", "sub": "system:serviceaccount:ns:sa"})
	ghTok := gh.Mint(map[string]any{"aud": "berth", "sub": "repo:o/r"})
	pull := registry.Route{Action: registry.ActionGetManifest, Repo: "a"}

	for _, user := range []string{"oauth", "anything", "cluster"} {
		id, err := a.Basic(ctx, user, k8sTok, "192.0.2.1")
		if err != nil || id.OIDC == nil || id.OIDC.ProviderName != "cluster" {
			t.Fatalf("Basic(%s, cluster token): %v %+v", user, err, id)
		}
		r := httptest.NewRequest("GET", "/v2/", nil)
		r.SetBasicAuth(user, k8sTok)
		if _, err := g.Authorize(r.Context(), r, pull); err != nil {
			t.Fatalf("/v2 as %s: %v", user, err)
		}
	}
	if id, err := a.Basic(ctx, "gh", ghTok, "192.0.2.1"); err != nil || id.OIDC.ProviderName != "gh" {
		t.Fatalf("the default rule: %v", err)
	}
	if id, err := a.Basic(ctx, "alice", "secret", "192.0.2.1"); err != nil || id.ID != "user:alice" {
		t.Fatalf("static user: %v", err)
	}

	refusals := []struct{ user, password, why string }{
		{"oauth", ghTok, `username "oauth" names no provider; the token's issuer "` + gh.URL() + `" belongs to provider gh (log in with -u gh, or set accept_any_username to allow any username)`},
		{"cluster", ghTok, `issuer "` + gh.URL() + `" belongs to provider gh`},
		{"oauth", "hunter2", `username "oauth" names no OIDC provider, and the password is no ID token of a configured issuer`},
	}
	for _, c := range refusals {
		_, err := a.Basic(ctx, c.user, c.password, "192.0.2.1")
		if !errors.Is(err, auth.ErrInvalidCredentials) || !strings.Contains(err.Error(), c.why) {
			t.Errorf("Basic(%s): %v, want %q", c.user, err, c.why)
		}
		logs.Reset()
		r := httptest.NewRequest("GET", "/v2/", nil)
		r.SetBasicAuth(c.user, c.password)
		if _, err := g.Authorize(r.Context(), r, pull); err == nil {
			t.Fatalf("/v2 as %s accepted", c.user)
		}
		line := logs.String()
		if !strings.Contains(line, "credentials refused") || !strings.Contains(line, strings.ReplaceAll(c.why, `"`, `\"`)) {
			t.Errorf("log line %q does not say %q", line, c.why)
		}
		if parts := strings.Split(c.password, "."); strings.Contains(line, parts[len(parts)-1]) {
			t.Errorf("the log holds the token: %s", line)
		}
	}
}
