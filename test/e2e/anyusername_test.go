package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/berth-registry/berth/internal/devissuer"
)

// TestAuthAnyUsernameAndSharedIssuer runs berth with three providers: one
// with accept_any_username, and two of one issuer told apart by their
// audiences, each with its own claim mapping.
//   - `docker login -u oauth` (zot's habit) works for the opted-in provider,
//     through the token service (GET /token and the password grant) and Basic
//     on /v2; for the others it is refused and the log says why.
//   - each token of the shared issuer maps through its own provider.
func TestAuthAnyUsernameAndSharedIssuer(t *testing.T) {
	cluster, shared := newIssuer(t), newIssuer(t)
	p := startBerthS3(t, t.TempDir(), func(port int) string {
		return fmt.Sprintf(`[server]
bind_address = "127.0.0.1"
port = %d

[log]
level = "debug"
format = "text"

[auth.oidc.cluster]
provider = "kubernetes"
issuer = %q
audiences = ["berth"]
accept_any_username = true

[auth.oidc.ci]
issuer = %q
audiences = ["berth"]
claim_mapping.username = "'ci/' + claims.sub"

[auth.oidc.deploy]
issuer = %q
audiences = ["deploy"]
claim_mapping.username = "'deploy/' + claims.sub"

[global.access_policy]
default_allow = false
rules = ['identity.id != "anonymous"']
`, port, cluster.URL(), shared.URL(), shared.URL())
	})
	mint := func(iss *devissuer.Issuer, aud, sub string) string {
		return iss.Mint(map[string]any{"aud": aud, "sub": sub, "exp": time.Now().Add(10 * time.Minute).Unix()})
	}
	saTok := mint(cluster, "berth", "system:serviceaccount:ns:builder")
	ciTok := mint(shared, "berth", "job")
	deployTok := mint(shared, "deploy", "argo")

	// -u oauth: GET /token with Basic (go-containerregistry), then /v2.
	if err := pushPull(t, p, "team/app", &authn.Basic{Username: "oauth", Password: saTok}); err != nil {
		t.Fatalf("-u oauth with the cluster's token: %v", err)
	}
	// The password grant (docker login's POST).
	form := url.Values{"grant_type": {"password"}, "username": {"oauth"}, "password": {saTok}, "service": {"berth"}, "scope": {"repository:team/app:pull"}}
	resp, body := doReq(t, "POST", p.url("/token"), strings.NewReader(form.Encode()), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	wantStatus(t, "password grant as oauth", resp, body, http.StatusOK)
	// Basic straight on /v2.
	resp, body = doReq(t, "GET", p.url("/v2/team/app/manifests/v1"), nil, map[string]string{"Authorization": basicAuth("oauth", saTok)})
	wantStatus(t, "Basic oauth on /v2", resp, body, http.StatusOK)

	// Not opted in: refused, and the log says why.
	if err := pushPull(t, p, "team/app", &authn.Basic{Username: "oauth", Password: ciTok}); err == nil {
		t.Fatal("-u oauth accepted for a provider without accept_any_username")
	}
	form.Set("password", ciTok)
	resp, body = doReq(t, "POST", p.url("/token"), strings.NewReader(form.Encode()), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	wantStatus(t, "password grant as oauth, not opted in", resp, body, http.StatusBadRequest)
	why := `username \"oauth\" names no provider; the token's issuer \"` + shared.URL() + `\" belongs to provider ci (log in with -u ci, or set accept_any_username to allow any username)`
	if logs := p.logSettled(); !strings.Contains(logs, why) {
		t.Fatalf("the log does not say %q:\n%s", why, p.stderr.Tail(30))
	}
	if strings.Contains(p.stderr.String(), strings.Split(ciTok, ".")[2]) {
		t.Fatal("the log holds the token")
	}

	// One issuer, two providers: each token maps through its own.
	for _, c := range []struct{ user, tok, id string }{{"ci", ciTok, "oidc:ci:ci/job"}, {"deploy", deployTok, "oidc:deploy:deploy/argo"}} {
		if err := pushPull(t, p, "team/"+c.user, &authn.Basic{Username: c.user, Password: c.tok}); err != nil {
			t.Fatalf("%s: %v", c.user, err)
		}
		resp, body = doReq(t, "GET", p.url("/v2/team/"+c.user+"/manifests/v1"), nil, map[string]string{"Authorization": "Bearer " + c.tok})
		wantStatus(t, c.user+" bearer ID token", resp, body, http.StatusOK)
		if !strings.Contains(p.logSettled(), "id="+c.id) {
			t.Fatalf("no identity %s in the log:\n%s", c.id, p.stderr.Tail(30))
		}
	}
	// A provider's name with the other provider's token is refused.
	if err := pushPull(t, p, "team/ci", &authn.Basic{Username: "ci", Password: deployTok}); err == nil {
		t.Fatal("-u ci accepted with the deploy provider's token")
	}
}

func basicAuth(user, password string) string {
	r, _ := http.NewRequest("GET", "http://x/", nil)
	r.SetBasicAuth(user, password)
	return r.Header.Get("Authorization")
}
