package access

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/berth-registry/berth/internal/auth"
	"github.com/berth-registry/berth/internal/policy"
	"github.com/berth-registry/berth/internal/registry"
)

// fakeOIDC accepts "idtoken-<provider>" tokens for known providers.
type fakeOIDC struct{ down bool }

func (f fakeOIDC) Has(p string) bool { return p == "gh" || p == "gl" }

func (fakeOIDC) LoginProvider(string, string) (string, error) { return "", nil }
func (f fakeOIDC) Verify(_ context.Context, raw string) (*auth.Identity, error) {
	if f.down {
		return nil, auth.ErrUnavailable
	}
	p, ok := strings.CutPrefix(raw, "idtoken-")
	if !ok || !f.Has(p) {
		return nil, auth.ErrInvalidCredentials
	}
	return &auth.Identity{ID: "oidc:" + p + ":x", Username: "x", OIDC: &auth.OIDC{ProviderName: p}}, nil
}
func (f fakeOIDC) VerifyFor(ctx context.Context, provider, raw string) (*auth.Identity, error) {
	id, err := f.Verify(ctx, raw)
	if err != nil {
		return nil, err
	}
	if id.OIDC.ProviderName != provider {
		return nil, auth.ErrInvalidCredentials
	}
	return id, nil
}

type fakeUsers struct{}

func (fakeUsers) Check(_ context.Context, u, p string) (*auth.Identity, error) {
	if u == "alice" && p == "secret" {
		return &auth.Identity{ID: "user:alice", Username: "alice"}, nil
	}
	return nil, auth.ErrInvalidCredentials
}

type fakeTokens struct{}

func (fakeTokens) IsBerthToken(raw string) bool { return strings.HasPrefix(raw, "berth_") }
func (fakeTokens) VerifyAccessToken(_ context.Context, raw string) (*auth.Identity, error) {
	if raw == "berth_at_pull_a" {
		return &auth.Identity{ID: "user:alice", Access: []auth.Access{{Type: "repository", Name: "a", Actions: []string{"pull"}}}}, nil
	}
	return nil, auth.ErrInvalidCredentials
}
func (fakeTokens) VerifySessionToken(_ context.Context, raw, ip string) (*auth.Identity, error) {
	if raw == "berth_st_ok" && ip == "192.0.2.1" {
		return &auth.Identity{ID: "oidc:gh:x"}, nil
	}
	return nil, auth.ErrInvalidCredentials
}

// authenticatedOnly allows every authenticated identity everything.
func authenticatedOnly(t *testing.T) *policy.Engine {
	t.Helper()
	e, err := policy.Compile(policy.Config{Global: &policy.Source{Rules: []string{`identity.id != "anonymous"`}}})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func basic(u, p string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(u+":"+p)) }

func TestGate(t *testing.T) {
	a := &Authenticator{OIDC: fakeOIDC{}, Users: fakeUsers{}, Tokens: fakeTokens{}, TokenService: "berth"}
	g := NewGate(&State{Authn: a, Policy: authenticatedOnly(t)}, nil)
	pullA := registry.Route{Action: registry.ActionGetManifest, Repo: "a"}
	pushA := registry.Route{Action: registry.ActionPutManifest, Repo: "a"}
	cases := []struct {
		name   string
		authz  string
		rt     registry.Route
		wantID string
		code   registry.Code
		chall  string
	}{
		{"anonymous", "", pullA, "", registry.CodeUnauthorized, `Bearer realm="http://example.com/token",service="berth",scope="repository:a:pull"`},
		{"anonymous push scope", "", pushA, "", registry.CodeUnauthorized, `scope="repository:a:pull,push"`},
		{"provider + id token", basic("gh", "idtoken-gh"), pushA, "oidc:gh:x", "", ""},
		{"token of provider A as provider B", basic("gl", "idtoken-gh"), pullA, "", registry.CodeUnauthorized, `error="invalid_token"`},
		{"static user", basic("alice", "secret"), pushA, "user:alice", "", ""},
		{"wrong password", basic("alice", "nope"), pullA, "", registry.CodeUnauthorized, ""},
		{"session token as password", basic("ci", "berth_st_ok"), pushA, "oidc:gh:x", "", ""},
		{"bearer id token", "Bearer idtoken-gl", pullA, "oidc:gl:x", "", ""},
		{"bearer garbage", "Bearer nope", pullA, "", registry.CodeUnauthorized, ""},
		{"access token in scope", "Bearer berth_at_pull_a", pullA, "user:alice", "", ""},
		{"access token out of scope", "Bearer berth_at_pull_a", pushA, "", registry.CodeUnauthorized, `error="insufficient_scope"`},
		{"access token other repo", "Bearer berth_at_pull_a", registry.Route{Action: registry.ActionGetBlob, Repo: "b"}, "", registry.CodeUnauthorized, ""},
		{"access token catalog", "Bearer berth_at_pull_a", registry.Route{Action: registry.ActionListCatalog}, "", registry.CodeUnauthorized, `scope="registry:catalog:*"`},
		{"access token ping", "Bearer berth_at_pull_a", registry.Route{Action: registry.ActionPing}, "user:alice", "", ""},
		{"mount needs pull on from", "Bearer berth_at_pull_a", registry.Route{Action: registry.ActionMountBlob, Repo: "a", From: "b"}, "", registry.CodeUnauthorized, `repository:b:pull`},
		{"unknown scheme", "Digest x", pullA, "", registry.CodeUnauthorized, ""},
		{"malformed basic", "Basic !!!", pullA, "", registry.CodeUnauthorized, ""},
		{"huge header", "Bearer " + strings.Repeat("a", 40<<10), pullA, "", registry.CodeUnauthorized, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/v2/", nil)
			r.RemoteAddr = "192.0.2.1:1234"
			if c.authz != "" {
				r.Header.Set("Authorization", c.authz)
			}
			ctx, err := g.Authorize(r.Context(), r, c.rt)
			if c.code == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				id := auth.FromContext(ctx)
				if id == nil || id.ID != c.wantID || id.ClientIP != "192.0.2.1" {
					t.Fatalf("identity %+v", id)
				}
				return
			}
			var re *registry.Error
			if !errors.As(err, &re) || re.Code != c.code {
				t.Fatalf("err %v, want %s", err, c.code)
			}
			if ch := re.Header.Get("WWW-Authenticate"); !strings.Contains(ch, c.chall) || ch == "" {
				t.Fatalf("challenge %q lacks %q", ch, c.chall)
			}
		})
	}
}

func TestGateUnavailable(t *testing.T) {
	g := NewGate(&State{Authn: &Authenticator{OIDC: fakeOIDC{down: true}}, Policy: authenticatedOnly(t)}, nil)
	r := httptest.NewRequest("GET", "/v2/", nil)
	r.Header.Set("Authorization", "Bearer idtoken-gh")
	_, err := g.Authorize(r.Context(), r, registry.Route{Action: registry.ActionGetManifest, Repo: "a"})
	var re *registry.Error
	if !errors.As(err, &re) || re.Code != registry.CodeUnavailable {
		t.Fatalf("err %v, want UNAVAILABLE", err)
	}
}

func TestBasicChallengeWithoutTokenService(t *testing.T) {
	a := &Authenticator{Users: fakeUsers{}}
	r := httptest.NewRequest("GET", "/v2/", nil)
	if got := a.Challenge(r, "repository:a:pull", ""); got != `Basic realm="berth"` {
		t.Fatalf("challenge %q", got)
	}
}

func TestMountDeniedNamesTheSource(t *testing.T) {
	e, err := policy.Compile(policy.Config{Global: &policy.Source{Rules: []string{`request.repository != "secret"`}}})
	if err != nil {
		t.Fatal(err)
	}
	g := NewGate(&State{Authn: &Authenticator{Users: fakeUsers{}}, Policy: e}, nil)
	r := httptest.NewRequest("POST", "/v2/a/blobs/uploads/?mount=sha256:00&from=secret", nil)
	r.Header.Set("Authorization", basic("alice", "secret"))
	_, err = g.Authorize(r.Context(), r, registry.Route{Action: registry.ActionMountBlob, Repo: "a", From: "secret"})
	var re *registry.Error
	if !errors.As(err, &re) || re.Code != registry.CodeDenied || !strings.Contains(re.Message, "may not pull secret") {
		t.Fatalf("err %v", err)
	}
}

// Anonymous decisions are remembered per policy engine and request only:
// another repository or reference is decided afresh, and a reload (a new
// State) never sees the old engine's answers.
func TestAnonymousDecisionsRemembered(t *testing.T) {
	compile := func(rule string) *policy.Engine {
		e, err := policy.Compile(policy.Config{Global: &policy.Source{Rules: []string{rule}}})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	g := NewGate(&State{Policy: compile(`request.repository == "pub" && request.action == "pull"`)}, nil)
	ask := func(repo, ref string) bool {
		r := httptest.NewRequest("GET", "/v2/", nil)
		_, err := g.Authorize(r.Context(), r, registry.Route{Action: registry.ActionGetManifest, Repo: repo, Reference: ref, Method: "GET"})
		return err == nil
	}
	for range 3 {
		if !ask("pub", "v1") || ask("priv", "v1") || !ask("pub", "v2") {
			t.Fatal("wrong decision")
		}
	}
	if n := len(g.Load().anon.decisions); n != 3 {
		t.Fatalf("%d remembered decisions, want 3", n)
	}
	g.Store(&State{Policy: compile(`request.repository == "priv"`)})
	if ask("pub", "v1") || !ask("priv", "v1") {
		t.Fatal("a decision outlived the reload")
	}
	// Bounded: the memo starts over beyond maxAnonDecisions.
	for i := range maxAnonDecisions + 10 {
		ask("priv", "t"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+itoa(i))
	}
	if n := len(g.Load().anon.decisions); n > maxAnonDecisions {
		t.Fatalf("%d remembered decisions, bound %d", n, maxAnonDecisions)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
