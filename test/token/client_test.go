// Package token_test drives berth's token service with go-containerregistry,
// a client the product module does not require (so it lives in the test
// module).
package token_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/berth-registry/berth/internal/auth"
	"github.com/berth-registry/berth/internal/auth/token"
	"github.com/berth-registry/berth/internal/testutil"
)

// TestGoContainerRegistryClient drives the token service with a real client:
// go-containerregistry's bearer transport against a minimal /v2 that
// challenges and checks tokens with VerifyAccessToken.
func TestGoContainerRegistryClient(t *testing.T) {
	f := newFixture(t, nil)
	var srv *httptest.Server
	var mu sync.Mutex
	var tokenRequests []string
	mux := http.NewServeMux()
	mux.HandleFunc("/token", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		tokenRequests = append(tokenRequests, r.Method)
		mu.Unlock()
		f.svc.ServeHTTP(w, r)
	})
	mux.HandleFunc("/v2/", func(w http.ResponseWriter, r *http.Request) {
		challenge := fmt.Sprintf(`Bearer realm="%s/token",service="berth"`, srv.URL)
		repo, isList := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, "/v2/"), "/tags/list")
		if isList {
			challenge += fmt.Sprintf(`,scope="repository:%s:pull"`, repo)
		}
		raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		id, err := f.svc.VerifyAccessToken(r.Context(), raw)
		if !ok || err != nil || (isList && !auth.Allows(id.Access, "repository", repo, "pull")) {
			w.Header().Set("WWW-Authenticate", challenge)
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
			return
		}
		if isList {
			json.NewEncoder(w).Encode(map[string]any{"name": repo, "tags": []string{"v1"}})
		}
	})
	srv = httptest.NewServer(mux)
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	ctx := context.Background()

	list := func(repo string, a authn.Authenticator) ([]string, error) {
		r, err := name.NewRepository(host+"/"+repo, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		return remote.List(r, remote.WithAuth(a), remote.WithContext(ctx))
	}
	tags, err := list("alice/app", authn.FromConfig(authn.AuthConfig{Username: "alice", Password: testPassword}))
	if err != nil || len(tags) != 1 {
		t.Fatalf("basic: %v %v", tags, err)
	}
	if _, err := list("alice/app", authn.FromConfig(authn.AuthConfig{Username: "alice", Password: "wrong"})); err == nil {
		t.Fatal("wrong password listed tags")
	}
	if _, err := list("bob/app", authn.FromConfig(authn.AuthConfig{Username: "alice", Password: testPassword})); err == nil {
		t.Fatal("ungranted repository listed")
	}
	if tags, err := list("public/x", authn.Anonymous); err != nil || len(tags) != 1 {
		t.Fatalf("anonymous: %v %v", tags, err)
	}

	// docker's identitytoken: go-containerregistry uses the OAuth2 refresh grant.
	rt := f.get("offline_token=true", "alice", testPassword).str("refresh_token")
	mu.Lock()
	tokenRequests = nil
	mu.Unlock()
	if tags, err := list("alice/app", authn.FromConfig(authn.AuthConfig{IdentityToken: rt})); err != nil || len(tags) != 1 {
		t.Fatalf("identity token: %v %v", tags, err)
	}
	mu.Lock()
	if len(tokenRequests) == 0 || tokenRequests[0] != http.MethodPost {
		t.Errorf("token requests %v, want the POST refresh grant", tokenRequests)
	}
	mu.Unlock()

	// A CI job: session token from token exchange, used as a password.
	st := f.post("/token", url.Values{"grant_type": {token.GrantTokenExchange}, "subject_token": {testIDToken},
		"subject_token_type": {token.TokenTypeIDToken}, "requested_token_type": {token.TokenTypeSession}}).str("access_token")
	if tags, err := list("org/app", authn.FromConfig(authn.AuthConfig{Username: "ci", Password: st})); err != nil || len(tags) != 1 {
		t.Fatalf("session token: %v %v", tags, err)
	}
}

const (
	testIDToken  = "header.good-id-token.sig"
	testPassword = "alice-secret"
)

// fixture is the part of internal/auth/token's test fixture this test
// uses: a Service whose callbacks know alice (password), a CI job (ID token)
// and grant alice/*, org/app and public/*.
type fixture struct {
	t    testing.TB
	svc  *token.Service
	srv  *httptest.Server
	logs *testutil.Buffer
}

func newFixture(t testing.TB, _ func(*fixture)) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{t: t, logs: &testutil.Buffer{}}
	ciIdentity := func() *auth.Identity {
		return &auth.Identity{
			ID: "oidc:github:org/app", Username: "org/app", Groups: []string{"ci"},
			OIDC: &auth.OIDC{ProviderName: "github", Claims: map[string]any{
				"repository": "org/app", "sub": "repo:org/app:ref:refs/heads/main", "run_number": float64(42),
			}},
		}
	}
	svc, err := token.New(token.Options{
		Service: "berth", Issuer: "berth",
		KeyFile: dir + "/key.pem", StateDir: dir + "/state",
		Logger: slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Authenticate: func(ctx context.Context, user, pass, ip string) (*auth.Identity, error) {
			switch {
			case token.IsOpaqueToken(pass):
				return f.svc.VerifySessionToken(ctx, pass, ip)
			case user == "github" && pass == testIDToken:
				return ciIdentity(), nil
			case user == "alice" && pass == testPassword:
				return &auth.Identity{ID: "user:alice", Username: "alice", ClientIP: ip}, nil
			}
			return nil, fmt.Errorf("test: bad password: %w", auth.ErrInvalidCredentials)
		},
		VerifyIDToken: func(ctx context.Context, raw string) (*auth.Identity, error) {
			if raw == testIDToken {
				return ciIdentity(), nil
			}
			return nil, fmt.Errorf("test: bad id token: %w", auth.ErrInvalidCredentials)
		},
		// Grants alice pull,push on alice/*, the CI identity pull,push on
		// org/app, everyone pull on public/*, and always something extra
		// that was not asked for (the service must drop it).
		Grant: func(ctx context.Context, id *auth.Identity, req []auth.Access) []auth.Access {
			out := []auth.Access{{Type: "repository", Name: "secret/x", Actions: []string{"*"}}}
			for _, a := range req {
				base := a.Name[strings.LastIndexByte(a.Name, ':')+1:] // drop a host:port
				_, base, _ = strings.Cut(base, "/")
				switch {
				case a.Type != "repository":
				case id.ID == "user:alice" && strings.HasPrefix(a.Name, "alice/"),
					id.ID == "user:alice" && strings.HasPrefix(base, "alice/"),
					id.ID == "oidc:github:org/app" && a.Name == "org/app":
					out = append(out, auth.Access{Type: a.Type, Name: a.Name, Actions: []string{"pull", "push"}})
				case strings.HasPrefix(a.Name, "public/"):
					out = append(out, auth.Access{Type: a.Type, Name: a.Name, Actions: []string{"pull"}})
				}
			}
			return out
		},
		LimitsFor: func(id *auth.Identity) token.Limits { return token.Limits{} },
	})
	if err != nil {
		t.Fatal(err)
	}
	f.svc = svc
	mux := http.NewServeMux()
	mux.Handle("/token", svc)
	mux.Handle("/token/revoke", svc)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	t.Cleanup(func() {
		// No credential may ever reach the log.
		logs := f.logs.String()
		for _, secret := range []string{testPassword, testIDToken, token.RefreshPrefix, token.SessionPrefix, "eyJ"} {
			if strings.Contains(logs, secret) {
				t.Errorf("log contains a credential (%q):\n%s", secret, logs)
			}
		}
	})
	return f
}

type response struct {
	status int
	body   map[string]any
	raw    string
}

func (r response) str(k string) string { s, _ := r.body[k].(string); return s }

func (f *fixture) do(req *http.Request) response {
	f.t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	out := response{status: res.StatusCode, raw: string(b)}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &out.body); err != nil {
			f.t.Fatalf("body is not JSON: %q", b)
		}
	}
	return out
}

// get does GET /token?query with Basic credentials.
func (f *fixture) get(query, user, pass string) response {
	f.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/token?"+query, nil)
	req.SetBasicAuth(user, pass)
	return f.do(req)
}

func (f *fixture) post(path string, form url.Values) response {
	f.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return f.do(req)
}
