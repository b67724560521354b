package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-registry/berth/internal/seedtest"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"golang.org/x/crypto/bcrypt"

	"github.com/berth-registry/berth/internal/devissuer"
)

// polSeedExample is the Complete Example of the GitHub Actions guide (seed
// 000) without [server.tls]; its [server] and [blob_store.fs] tables are the
// harness's (a free loopback port, the test's data directory). The provider's
// issuer is the fake issuer, with an audience.
var polSeedExample = seedtest.Without(seedtest.AngosComplete, "server", "server.tls", "blob_store.fs")

// polSeedBerth starts berth with the seed's Complete Example and a fake
// issuer playing GitHub Actions.
func polSeedBerth(t *testing.T) (*berthProc, *devissuer.Issuer) {
	t.Helper()
	iss := newIssuer(t)
	return startBerthWith(t, t.TempDir(), seedtest.WithProviderKeys(polSeedExample,
		fmt.Sprintf("issuer = %q\naudiences = [\"berth\"]", iss.URL()))), iss
}

// polToken mints a GitHub Actions ID token for a workflow of repo on ref,
// for the audience berth.
func polToken(iss *devissuer.Issuer, repo, ref string) string {
	c := iss.GitHubClaims("berth")
	owner, _, _ := strings.Cut(repo, "/")
	c["repository"], c["repository_owner"], c["ref"] = repo, owner, ref
	c["sub"] = "repo:" + repo + ":ref:" + ref
	c["workflow_ref"] = repo + "/.github/workflows/release.yml@" + ref
	c["job_workflow_ref"] = c["workflow_ref"]
	return iss.Mint(c)
}

// polGH is the docker login of a GitHub Actions job.
func polGH(idToken string) authn.Authenticator {
	return &authn.Basic{Username: "github-actions", Password: idToken}
}

func polRef(t *testing.T, p *berthProc, repoTag string) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(p.host()+"/"+repoTag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

func polImage(t *testing.T) v1.Image {
	t.Helper()
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// polPush pushes img to repoTag with go-containerregistry.
func polPush(t *testing.T, p *berthProc, repoTag string, img v1.Image, a authn.Authenticator) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	return remote.Write(polRef(t, p, repoTag), img, remote.WithAuth(a), remote.WithContext(ctx))
}

// polStatus is the HTTP status of a registry client error, 0 if none.
func polStatus(err error) int {
	var te *transport.Error
	if errors.As(err, &te) {
		return te.StatusCode
	}
	return 0
}

// polWantRefused checks that a push failed because the registry refused
// access (401 or 403), not for some other reason.
func polWantRefused(t *testing.T, what string, err error) {
	t.Helper()
	switch s := polStatus(err); {
	case err == nil:
		t.Errorf("%s: push accepted, want it refused", what)
	case s != http.StatusUnauthorized && s != http.StatusForbidden:
		t.Errorf("%s: push failed with status %d (%v), want 401 or 403", what, s, err)
	}
}

// polLog is everything berth wrote so far (its batched lines included).
func polLog(p *berthProc) string {
	return p.logSettled()
}

func polBasic(user, password string) map[string]string {
	return map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))}
}

// polStartUpload asks to start a blob upload in repo (a push) and returns
// the status.
func polStartUpload(t *testing.T, p *berthProc, repo string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	return doReq(t, http.MethodPost, p.url("/v2/"+repo+"/blobs/uploads/"), nil, hdr)
}

// TestPolicySeedPushes: the seed's policies, enforced on real pushes.
func TestPolicySeedPushes(t *testing.T) {
	p, iss := polSeedBerth(t)
	mainTok := polToken(iss, "myorg/api", "refs/heads/main")
	featureTok := polToken(iss, "myorg/api", "refs/heads/feature")
	otherTok := polToken(iss, "otherorg/api", "refs/heads/main")

	if err := polPush(t, p, "production/app:v1", polImage(t), polGH(mainTok)); err != nil {
		t.Fatalf("myorg/api on main to production/app: %v", err)
	}
	if err := polPush(t, p, "production/web/frontend:v1", polImage(t), polGH(polToken(iss, "myorg/worker", "refs/heads/main"))); err != nil {
		t.Errorf("myorg/worker on main to production/web/frontend: %v", err)
	}
	polWantRefused(t, "myorg/api on a feature branch to production/app", polPush(t, p, "production/app:v2", polImage(t), polGH(featureTok)))
	polWantRefused(t, "otherorg/api on main to production/app", polPush(t, p, "production/app:v2", polImage(t), polGH(otherTok)))
	polWantRefused(t, "myorg/other (not api|web|worker) on main to production/app",
		polPush(t, p, "production/app:v2", polImage(t), polGH(polToken(iss, "myorg/other", "refs/heads/main"))))

	if err := polPush(t, p, "dev/x:feature", polImage(t), polGH(featureTok)); err != nil {
		t.Errorf("myorg/api on a feature branch to dev/x: %v", err)
	}
	if err := polPush(t, p, "dev:v1", polImage(t), polGH(polToken(iss, "myorg/anything", "refs/tags/v1"))); err != nil {
		t.Errorf("myorg/anything to dev: %v", err)
	}
	polWantRefused(t, "otherorg/api to dev/x", polPush(t, p, "dev/x:other", polImage(t), polGH(otherTok)))
	polWantRefused(t, "myorg/api on main to the unconfigured other/x", polPush(t, p, "other/x:v1", polImage(t), polGH(mainTok)))
	polWantRefused(t, "myorg/api on main to developer/x (not under dev/)", polPush(t, p, "developer/x:v1", polImage(t), polGH(mainTok)))

	// The refused pushes left nothing behind: v2 was never written.
	if _, err := remote.Head(polRef(t, p, "production/app:v2"), remote.WithAuth(polGH(mainTok))); polStatus(err) != http.StatusNotFound {
		t.Errorf("production/app:v2 after refused pushes: %v, want 404", err)
	}
}

// TestPolicyStatusCodes: anonymous requests get 401 and a challenge;
// authenticated but denied requests get 403 DENIED naming the repository and
// the action, never the rule.
func TestPolicyStatusCodes(t *testing.T) {
	p, iss := polSeedBerth(t)
	featureTok := polToken(iss, "myorg/api", "refs/heads/feature")

	for _, req := range []struct{ method, path, scope string }{
		{http.MethodPost, "/v2/production/app/blobs/uploads/", "repository:production/app:pull,push"},
		{http.MethodGet, "/v2/production/app/manifests/v1", "repository:production/app:pull"},
		{http.MethodDelete, "/v2/dev/x/manifests/v1", "repository:dev/x:delete"},
	} {
		resp, body := doReq(t, req.method, p.url(req.path), nil, nil)
		wantStatus(t, "anonymous "+req.method, resp, body, http.StatusUnauthorized)
		ch := resp.Header.Get("WWW-Authenticate")
		want := `Bearer realm="http://` + p.host() + `/token",service="berth",scope="` + req.scope + `"`
		if ch != want {
			t.Errorf("anonymous %s %s: WWW-Authenticate %q, want %q", req.method, req.path, ch, want)
		}
	}

	denied := []struct {
		what, method, path, action string
		hdr                        map[string]string
	}{
		{"raw Bearer ID token", http.MethodPost, "/v2/production/app/blobs/uploads/", "push", map[string]string{"Authorization": "Bearer " + featureTok}},
		{"Basic provider login", http.MethodPost, "/v2/production/app/blobs/uploads/", "push", polBasic("github-actions", featureTok)},
		{"pull", http.MethodGet, "/v2/production/app/tags/list", "pull", map[string]string{"Authorization": "Bearer " + featureTok}},
		{"other organisation", http.MethodDelete, "/v2/dev/x/manifests/v1", "delete",
			map[string]string{"Authorization": "Bearer " + polToken(iss, "otherorg/api", "refs/heads/main")}},
	}
	for _, d := range denied {
		resp, body := doReq(t, d.method, p.url(d.path), nil, d.hdr)
		wantStatus(t, d.what, resp, body, http.StatusForbidden)
		var e struct {
			Errors []struct{ Code, Message string } `json:"errors"`
		}
		if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) != 1 {
			t.Errorf("%s: body %s is not one OCI error (%v)", d.what, body, err)
			continue
		}
		repo := strings.Split(strings.TrimPrefix(d.path, "/v2/"), "/")
		repoName := repo[0] + "/" + repo[1]
		msg := e.Errors[0].Message
		if e.Errors[0].Code != "DENIED" || !strings.Contains(msg, repoName) || !strings.Contains(msg, d.action) {
			t.Errorf("%s: error %+v, want DENIED naming %s and %s", d.what, e.Errors[0], repoName, d.action)
		}
		// Nothing of the rule: the identity's name (iss/sub) may well
		// contain refs/heads/main, the rule's quoted literals may not.
		for _, secret := range []string{"identity.", "claims", `"refs/heads/main"`, "matches", "startsWith", "^myorg",
			"provider_name", "rule", "access_policy", "default", "fail"} {
			if strings.Contains(msg, secret) {
				t.Errorf("%s: the answer reveals the policy (%q): %s", d.what, secret, msg)
			}
		}
	}

	// The same credentials where the policy allows: not a credential problem.
	resp, body := polStartUpload(t, p, "dev/x", map[string]string{"Authorization": "Bearer " + featureTok})
	wantStatus(t, "feature branch starts an upload in dev/x", resp, body, http.StatusAccepted)
}

// TestPolicyCatalog: an identity sees only the repositories it may pull.
func TestPolicyCatalog(t *testing.T) {
	p, iss := polSeedBerth(t)
	mainTok := polToken(iss, "myorg/api", "refs/heads/main")
	for _, repo := range []string{"production/app:v1", "dev/x:v1", "dev/y/z:v1"} {
		if err := polPush(t, p, repo, polImage(t), polGH(mainTok)); err != nil {
			t.Fatalf("push %s: %v", repo, err)
		}
	}
	reg, err := name.NewRegistry(p.host(), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	who := []struct {
		who  string
		tok  string
		want []string
	}{
		{"myorg/api on main", mainTok, []string{"dev/x", "dev/y/z", "production/app"}},
		{"myorg/api on a feature branch", polToken(iss, "myorg/api", "refs/heads/feature"), []string{"dev/x", "dev/y/z"}},
		{"otherorg/api", polToken(iss, "otherorg/api", "refs/heads/main"), []string{}},
	}
	check := func(what string, got []string, want []string) {
		t.Helper()
		slices.Sort(got)
		if got == nil {
			got = []string{}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: catalog %q, want %q", what, got, want)
		}
	}

	// The ID token presented directly (docker login -u github-actions).
	t.Run("basic", func(t *testing.T) {
		for _, c := range who {
			resp, body := doReq(t, http.MethodGet, p.url("/v2/_catalog"), nil, polBasic("github-actions", c.tok))
			wantStatus(t, c.who+": GET /v2/_catalog", resp, body, http.StatusOK)
			var cat struct {
				Repositories []string `json:"repositories"`
			}
			if err := json.Unmarshal(body, &cat); err != nil {
				t.Fatalf("%s: catalog %s: %v", c.who, body, err)
			}
			check(c.who, cat.Repositories, c.want)
		}
	})

	// Through the token service, as go-containerregistry (and docker) do:
	// a registry:catalog:* access token.
	t.Run("token service", func(t *testing.T) {
		tok, grants := polTokenAccess(t, p, mainTok, "registry:catalog:*")
		_ = tok
		if g := grants["registry:catalog"]; !slices.Contains(g, "*") {
			t.Fatalf("GET /token?scope=registry:catalog:* granted %q, want [*]", g)
		}
		for _, c := range who {
			got, err := remote.Catalog(t.Context(), reg, remote.WithAuth(polGH(c.tok)))
			if err != nil {
				t.Errorf("%s: catalog: %v", c.who, err)
				continue
			}
			check(c.who, got, c.want)
		}
	})

	// Anonymous callers get no catalog at all.
	resp, body := doReq(t, http.MethodGet, p.url("/v2/_catalog"), nil, nil)
	wantStatus(t, "anonymous catalog", resp, body, http.StatusUnauthorized)
}

// polTokenAccess asks the token service for scopes with Basic credentials
// and returns the access token and its grants (the JWT's access claim), by
// repository name, or by type:name for other resources.
func polTokenAccess(t *testing.T, p *berthProc, idToken string, scopes ...string) (string, map[string][]string) {
	t.Helper()
	q := url.Values{"service": {"berth"}, "scope": scopes}
	resp, body := doReq(t, http.MethodGet, p.url("/token?"+q.Encode()), nil, polBasic("github-actions", idToken))
	wantStatus(t, "token request", resp, body, http.StatusOK)
	var tr struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(body, &tr); err != nil || tr.Token == "" {
		t.Fatalf("token answer %s: %v", body, err)
	}
	parts := strings.Split(tr.Token, ".")
	if len(parts) != 3 {
		t.Fatalf("access token is not a JWT: %d parts", len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("access token payload: %v", err)
	}
	var claims struct {
		Access *[]struct {
			Type    string   `json:"type"`
			Name    string   `json:"name"`
			Actions []string `json:"actions"`
		} `json:"access"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil || claims.Access == nil {
		t.Fatalf("access token payload %s: no access claim (%v)", payload, err)
	}
	grants := map[string][]string{}
	for _, a := range *claims.Access {
		k := a.Name
		if a.Type != "repository" {
			k = a.Type + ":" + a.Name
		}
		grants[k] = append(grants[k], a.Actions...)
	}
	return tr.Token, grants
}

// TestPolicyTokenGrants: the token service grants what the policies allow,
// per repository and action, and the token bounds what it may do.
func TestPolicyTokenGrants(t *testing.T) {
	p, iss := polSeedBerth(t)
	featureTok := polToken(iss, "myorg/api", "refs/heads/feature")
	mainTok := polToken(iss, "myorg/api", "refs/heads/main")

	tok, grants := polTokenAccess(t, p, featureTok, "repository:production/app:pull,push", "repository:dev/x:pull,push")
	if slices.Contains(grants["production/app"], "push") {
		t.Errorf("feature branch token grants push to production/app: %v", grants)
	}
	if got := grants["dev/x"]; !slices.Contains(got, "push") || !slices.Contains(got, "pull") {
		t.Errorf("feature branch token grants %v on dev/x, want pull and push", got)
	}
	// Pushing with it fails: push was asked for and refused, so 403 DENIED
	// with the policies' wording, not a request for a wider token.
	bearer := map[string]string{"Authorization": "Bearer " + tok}
	resp, body := polStartUpload(t, p, "production/app", bearer)
	wantStatus(t, "push to production/app with the feature branch's access token", resp, body, http.StatusForbidden)
	if !strings.Contains(string(body), `"DENIED"`) || !strings.Contains(string(body), "may not push production/app") {
		t.Errorf("refused push: %s, want DENIED ... may not push production/app", body)
	}
	// Never asked for: 401 insufficient_scope, the client comes back for it.
	resp, body = doReq(t, http.MethodDelete, p.url("/v2/dev/x/manifests/v1"), nil, bearer)
	wantStatus(t, "delete in dev/x, never asked for", resp, body, http.StatusUnauthorized)
	if ch := resp.Header.Get("WWW-Authenticate"); !strings.Contains(ch, `error="insufficient_scope"`) {
		t.Errorf("WWW-Authenticate %q, want insufficient_scope", ch)
	}
	polWantRefused(t, "go-containerregistry push with the access token",
		polPush(t, p, "production/app:v1", polImage(t), authn.FromConfig(authn.AuthConfig{RegistryToken: tok})))
	resp, body = polStartUpload(t, p, "dev/x", bearer)
	wantStatus(t, "push to dev/x with the same access token", resp, body, http.StatusAccepted)

	// The main branch gets push on production/app.
	tok, grants = polTokenAccess(t, p, mainTok, "repository:production/app:pull,push")
	if got := grants["production/app"]; !slices.Contains(got, "push") || !slices.Contains(got, "pull") {
		t.Errorf("main branch token grants %v on production/app, want pull and push", got)
	}
	if err := polPush(t, p, "production/app:v1", polImage(t), authn.FromConfig(authn.AuthConfig{RegistryToken: tok})); err != nil {
		t.Errorf("push with the main branch's access token: %v", err)
	}
}

func polHash(t *testing.T, password string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// TestPolicyImmutableTags: a pushed tag of rel/ never moves, except latest.
func TestPolicyImmutableTags(t *testing.T) {
	p := startBerthWith(t, t.TempDir(), fmt.Sprintf(`
[auth.identity.alice]
username = "alice"
password = %q

[repository."rel"]
immutable_tags = true
immutable_tags_exclusions = ["^latest$"]

[repository."rel".access_policy]
default_allow = false
rules = ['identity.username == "alice"']
`, polHash(t, "secret")))
	alice := &authn.Basic{Username: "alice", Password: "secret"}
	imgA, imgB := polImage(t), polImage(t)
	digestA, digestB := digestOf(t, imgA), digestOf(t, imgB)
	head := func(tag string) v1.Hash {
		t.Helper()
		d, err := remote.Head(polRef(t, p, "rel/app:"+tag), remote.WithAuth(alice))
		if err != nil {
			t.Fatalf("HEAD rel/app:%s: %v", tag, err)
		}
		return d.Digest
	}

	if err := polPush(t, p, "rel/app:v1", imgA, alice); err != nil {
		t.Fatalf("first push of v1: %v", err)
	}
	err := polPush(t, p, "rel/app:v1", imgB, alice)
	if s := polStatus(err); s != http.StatusConflict {
		t.Fatalf("pushing another image to v1: status %d (%v), want 409", s, err)
	}
	if d := head("v1"); d != digestA {
		t.Fatalf("v1 moved to %s", d)
	}
	// Raw manifest PUTs (go-containerregistry skips a PUT the tag already
	// has): the same manifest again is fine, another one is a conflict.
	auth := polBasic("alice", "secret")
	for _, c := range []struct {
		img  v1.Image
		want int
	}{{imgA, http.StatusCreated}, {imgB, http.StatusConflict}} {
		raw, err := c.img.RawManifest()
		if err != nil {
			t.Fatal(err)
		}
		mt, _ := c.img.MediaType()
		hdr := map[string]string{"Content-Type": string(mt), "Authorization": auth["Authorization"]}
		resp, body := doReq(t, http.MethodPut, p.url("/v2/rel/app/manifests/v1"), bytes.NewReader(raw), hdr)
		wantStatus(t, "PUT rel/app:v1", resp, body, c.want)
		if c.want == http.StatusConflict && !strings.Contains(string(body), "immutable") {
			t.Errorf("409 body does not say why: %s", body)
		}
	}
	if d := head("v1"); d != digestA {
		t.Fatalf("v1 moved to %s", d)
	}

	// latest is excluded: it moves freely.
	for _, img := range []v1.Image{imgA, imgB} {
		if err := polPush(t, p, "rel/app:latest", img, alice); err != nil {
			t.Fatalf("push latest: %v", err)
		}
	}
	if d := head("latest"); d != digestB {
		t.Errorf("latest is %s, want %s", d, digestB)
	}
}

// polWriteConfig replaces the config file atomically, so that the reload
// poller never reads half a file.
func polWriteConfig(t *testing.T, p *berthProc, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(p.cfgPath), "berth.toml.new")
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p.cfgPath); err != nil {
		t.Fatal(err)
	}
}

// polWaitFor polls cond every 100ms until it holds or the deadline passes.
func polWaitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestPolicyLiveReload: a changed config file is applied without a restart;
// a broken one is refused and the old configuration keeps serving; SIGHUP
// reloads too.
func TestPolicyLiveReload(t *testing.T) {
	const denyBob = `rules = ['identity.username == "alice"']`
	p := startBerthWith(t, t.TempDir(), fmt.Sprintf(`
[auth.identity.alice]
username = "alice"
password = %q

[auth.identity.bob]
username = "bob"
password = %q

[global.access_policy]
default_allow = false
%s
`, polHash(t, "alice-pw"), polHash(t, "bob-pw"), denyBob))
	bob := polBasic("bob", "bob-pw")
	bobStatus := func() int {
		resp, _ := polStartUpload(t, p, "team/app", bob)
		return resp.StatusCode
	}
	if resp, body := polStartUpload(t, p, "team/app", polBasic("alice", "alice-pw")); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("alice: %d %s", resp.StatusCode, body)
	}
	if s := bobStatus(); s != http.StatusForbidden {
		t.Fatalf("bob before the reload: %d, want 403", s)
	}

	orig, err := os.ReadFile(p.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(orig, []byte(denyBob)) {
		t.Fatalf("config file does not hold the policy:\n%s", orig)
	}
	allowBob := strings.Replace(string(orig), denyBob, `rules = ['identity.username in ["alice", "bob"]']`, 1)
	polWriteConfig(t, p, allowBob)
	polWaitFor(t, "bob allowed after the config file changed", 15*time.Second, func() bool { return bobStatus() == http.StatusAccepted })
	if err := polPush(t, p, "team/app:v1", polImage(t), &authn.Basic{Username: "bob", Password: "bob-pw"}); err != nil {
		t.Fatalf("bob's push after the reload: %v", err)
	}
	if !strings.Contains(polLog(p), "configuration reloaded") {
		t.Errorf("no reload in the log")
	}

	// A broken rule: refused, the old configuration keeps serving.
	refused := func() int { return strings.Count(polLog(p), "reload refused") }
	before := refused()
	polWriteConfig(t, p, strings.Replace(allowBob, `rules = ['identity.username in ["alice", "bob"]']`, `rules = ['identity.username ==']`, 1))
	polWaitFor(t, `"reload refused" after a broken config file`, 15*time.Second, func() bool { return refused() > before })
	if s := bobStatus(); s != http.StatusAccepted {
		t.Errorf("bob after a refused reload: %d, want 202 (the old configuration)", s)
	}

	// SIGHUP reloads the (still broken) file: one more refusal, old
	// configuration still serving.
	before = refused()
	hups := func() int { return strings.Count(polLog(p), "SIGHUP") }
	hupsBefore := hups()
	p.mu.Lock()
	proc := p.cmd.Process
	p.mu.Unlock()
	if err := proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	polWaitFor(t, "a reload on SIGHUP", 10*time.Second, func() bool { return hups() > hupsBefore && refused() > before })
	if !p.running() {
		t.Fatal("berth exited on SIGHUP")
	}
	if s := bobStatus(); s != http.StatusAccepted {
		t.Errorf("bob after SIGHUP with a broken file: %d, want 202", s)
	}

	// The first file again, which denies bob, and SIGHUP: applied.
	polWriteConfig(t, p, string(orig))
	if err := proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	polWaitFor(t, "bob denied again", 10*time.Second, func() bool { return bobStatus() == http.StatusForbidden })
}
