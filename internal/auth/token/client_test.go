package token

import (
	"context"
	"encoding/json"
	"fmt"
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
	st := f.post("/token", url.Values{"grant_type": {GrantTokenExchange}, "subject_token": {testIDToken},
		"subject_token_type": {TokenTypeIDToken}, "requested_token_type": {TokenTypeSession}}).str("access_token")
	if tags, err := list("org/app", authn.FromConfig(authn.AuthConfig{Username: "ci", Password: st})); err != nil || len(tags) != 1 {
		t.Fatalf("session token: %v %v", tags, err)
	}
}
