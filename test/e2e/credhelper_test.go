package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/crypto/bcrypt"

	"github.com/berth-registry/berth/internal/devissuer"
)

// buildCredentialHelper builds cmd/docker-credential-berth into a directory
// of its own, to be put first on the clients' PATH.
func buildCredentialHelper(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/berth-registry/berth").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(dir, "docker-credential-berth"), "./cmd/docker-credential-berth")
	build.Dir = strings.TrimSpace(string(out))
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the credential helper: %v\n%s", err, out)
	}
	return dir
}

// TestCredentialHelper: `berth login` configures docker-credential-berth
// with the GitHub Actions token source (the fake issuer's Actions-like
// endpoint minting 3-second ID tokens); once the ID token it started from
// has expired, every client that reads credential helpers still pushes and
// pulls, through the cached session token; an erased cache is refilled from
// a fresh ID token; `berth logout` puts the client files back.
func TestCredentialHelper(t *testing.T) {
	const idTokenTTL = 3 * time.Second
	iss, err := devissuer.New(devissuer.Options{TokenTTL: idTokenTTL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(iss.Close)
	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	p := startBerthWith(t, t.TempDir(), fmt.Sprintf(`
[auth.oidc.gha]
provider = "github"
issuer = %q
audiences = ["berth-e2e"]
clock_skew = "1s"

[auth.identity.alice]
username = "alice"
password = %q

[global.access_policy]
default_allow = false
rules = [
  "identity.username == 'alice'",
  "identity.oidc != null && identity.oidc.provider_name == 'gha' && identity.oidc.claims.repository == 'octo-org/octo-repo' && request.repository.startsWith('ci/')",
]
`, iss.URL(), string(hash)))
	host := p.host()

	// The image every client starts from, pushed by a static user.
	base := host + "/ci/base:v1"
	ref, err := name.ParseReference(base, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	alice := remote.WithAuth(&authn.Basic{Username: "alice", Password: "secret"})
	// A platform in the config: docker manifest push wants one.
	img := gzipLayerImage(t, v1.Platform{OS: "linux", Architecture: "amd64"},
		tarBytes(t, tarEntry{"etc/helper.txt", []byte("pushed through docker-credential-berth\n")}))
	if err := remote.Write(ref, img, alice); err != nil {
		t.Fatalf("seed push: %v", err)
	}
	baseDigest, _ := img.Digest()
	// pushed is the digest of what a client pushed, read as alice.
	pushed := func(t *testing.T, image string) string {
		t.Helper()
		r, err := name.ParseReference(image, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		d, err := remote.Head(r, alice)
		if err != nil {
			t.Fatalf("%s was not pushed: %v", image, err)
		}
		return d.Digest.String()
	}

	s := newClientSandbox(t, p)
	helperDir := buildCredentialHelper(t)
	helper := filepath.Join(helperDir, "docker-credential-berth")
	reqURL, reqTok := iss.GitHubTokenRequest()
	s.env = append(s.env,
		"PATH="+helperDir+string(os.PathListSeparator)+os.Getenv("PATH"),
		"ACTIONS_ID_TOKEN_REQUEST_URL="+reqURL,
		"ACTIONS_ID_TOKEN_REQUEST_TOKEN="+reqTok,
	)
	// Client files with keys of their own, which berth login must keep.
	dockerConfig := filepath.Join(s.home, ".docker", "config.json")
	authJSON := filepath.Join(s.home, "auth.json") // REGISTRY_AUTH_FILE
	writeFile(t, dockerConfig, []byte(`{"auths":{"other.example.com":{"auth":"eDp5"}},"psFormat":"table {{.ID}}","credHelpers":{"gcr.io":"gcloud"}}`))
	writeFile(t, authJSON, []byte(`{"auths":{"quay.io":{"auth":"eDp5"}},"x-unknown":[1,2]}`))

	// Not logged in: the helper says "not found", clients go anonymous.
	r := s.exec([]byte(host), nil, helper, "get")
	if r.err == nil || !strings.Contains(r.stdout, "credentials not found in native keychain") {
		t.Fatalf("get before login:\n%s", r)
	}

	out := s.run(berthBin, "login", "http://"+host, "--provider", "gha", "--audience", "berth-e2e", "--token-source", "github-actions")
	for _, want := range []string{dockerConfig + `: credHelpers["` + host + `"] = "berth"`, authJSON + `: credHelpers["` + host + `"] = "berth"`} {
		if !strings.Contains(out, want) {
			t.Fatalf("berth login output lacks %q:\n%s", want, out)
		}
	}
	if n := iss.GitHubRequests(); n != 1 {
		t.Fatalf("berth login asked the Actions endpoint for %d ID tokens, want 1", n)
	}
	wantJSON(t, dockerConfig, map[string]any{
		"auths": map[string]any{"other.example.com": map[string]any{"auth": "eDp5"}}, "psFormat": "table {{.ID}}",
		"credHelpers": map[string]any{"gcr.io": "gcloud", host: "berth"},
	})
	wantJSON(t, authJSON, map[string]any{
		"auths": map[string]any{"quay.io": map[string]any{"auth": "eDp5"}}, "x-unknown": []any{1.0, 2.0},
		"credHelpers": map[string]any{host: "berth"},
	})
	cacheFile := filepath.Join(s.home, ".cache", "berth", "credentials", host+".json")
	if fi, err := os.Stat(cacheFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("cache file %s: %v, mode %v; want 0600", cacheFile, err, fi)
	}
	if fi, err := os.Stat(filepath.Dir(cacheFile)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("cache dir: %v, mode %v; want 0700", err, fi)
	}
	// The ID token berth login exchanged is now expired (3 s + berth's 1 s
	// clock skew): everything below runs on the credential it was traded for.
	time.Sleep(idTokenTTL + 2*time.Second)

	// The helper's answer: an identity token, the same one while it is fresh.
	var creds struct{ ServerURL, Username, Secret string }
	if err := json.Unmarshal([]byte(s.runStdin([]byte(host), helper, "get")), &creds); err != nil {
		t.Fatal(err)
	}
	if creds.Username != "<token>" || !strings.HasPrefix(creds.Secret, "berth_st_") || creds.ServerURL != host {
		t.Fatalf("get: username %q, server %q, secret prefix ok=%v", creds.Username, creds.ServerURL, strings.HasPrefix(creds.Secret, "berth_st_"))
	}
	if list := s.run(helper, "list"); strings.TrimSpace(list) != fmt.Sprintf(`{%q:"\u003ctoken\u003e"}`, host) {
		t.Fatalf("list: %s", list)
	}

	clients := []struct {
		name string
		run  func(t *testing.T, s *clientSandbox, bin string)
	}{
		{"docker", func(t *testing.T, s *clientSandbox, docker string) {
			// No daemon: docker's client-side commands read credHelpers.
			s.run(docker, "manifest", "inspect", "--insecure", base)
			s.run(docker, "manifest", "create", "--insecure", host+"/ci/docker:list", base)
			s.run(docker, "manifest", "push", "--insecure", host+"/ci/docker:list")
			pushed(t, host+"/ci/docker:list")
		}},
		{"crane", func(t *testing.T, s *clientSandbox, crane string) {
			s.run(crane, "copy", "--insecure", base, host+"/ci/crane:v1")
			wantEqual(t, "crane digest", strings.TrimSpace(s.run(crane, "digest", "--insecure", host+"/ci/crane:v1")), baseDigest.String())
			wantEqual(t, "crane push", pushed(t, host+"/ci/crane:v1"), baseDigest.String())
		}},
		{"oras", func(t *testing.T, s *clientSandbox, oras string) {
			writeFile(t, s.path("art", "hello.txt"), []byte("hello from oras\n"))
			s.in(s.path("art")).run(oras, "push", "--plain-http", host+"/ci/oras:v1", "hello.txt")
			s.run(oras, "pull", "--plain-http", "-o", s.path("orasout"), host+"/ci/oras:v1")
			wantEqual(t, "oras pull", string(readFile(t, s.path("orasout", "hello.txt"))), "hello from oras\n")
		}},
		{"regctl", func(t *testing.T, s *clientSandbox, regctl string) {
			s.run(regctl, "registry", "set", "--tls", "disabled", host)
			s.run(regctl, "image", "copy", base, host+"/ci/regctl:v1")
			wantEqual(t, "regctl digest", strings.TrimSpace(s.run(regctl, "image", "digest", host+"/ci/regctl:v1")), baseDigest.String())
		}},
		{"helm", func(t *testing.T, s *clientSandbox, helm string) {
			hs := s.in(s.path("helm"))
			hs.run(helm, "create", "mychart")
			hs.run(helm, "package", "mychart", "--version", "0.1.0")
			hs.run(helm, "push", "mychart-0.1.0.tgz", "oci://"+host+"/ci/charts", "--plain-http")
			if err := os.MkdirAll(s.path("helmout"), 0o755); err != nil {
				t.Fatal(err)
			}
			hs.run(helm, "pull", "oci://"+host+"/ci/charts/mychart", "--version", "0.1.0", "--plain-http", "-d", s.path("helmout"))
			wantEqual(t, "helm pull", string(readFile(t, s.path("helmout", "mychart-0.1.0.tgz"))), string(readFile(t, s.path("helm", "mychart-0.1.0.tgz"))))
		}},
		{"cosign", func(t *testing.T, s *clientSandbox, cosign string) {
			env := []string{"COSIGN_PASSWORD=berth-test", "COSIGN_YES=true"}
			s.in(s.path("keys")).runEnv(env, cosign, "generate-key-pair")
			subject := host + "/ci/base@" + baseDigest.String()
			s.runEnv(env, cosign, "sign", "--key", s.path("keys", "cosign.key"), "--allow-insecure-registry", "--tlog-upload=false", subject)
			s.runEnv(env, cosign, "verify", "--key", s.path("keys", "cosign.pub"), "--allow-insecure-registry", "--insecure-ignore-tlog=true", "--offline", subject)
		}},
		{"skopeo", func(t *testing.T, s *clientSandbox, skopeo string) {
			policy := "--policy=" + filepath.Join(s.home, "policy.json")
			s.run(skopeo, policy, "copy", "--src-tls-verify=false", "--dest-tls-verify=false", "docker://"+base, "docker://"+host+"/ci/skopeo:v1")
			wantEqual(t, "skopeo digest", strings.TrimSpace(s.run(skopeo, "inspect", "--tls-verify=false", "--format", "{{.Digest}}", "docker://"+host+"/ci/skopeo:v1")), baseDigest.String())
		}},
		{"podman", func(t *testing.T, s *clientSandbox, podman string) {
			store := s.path("storage")
			writeFile(t, filepath.Join(s.home, "storage.conf"), fmt.Appendf(nil,
				"[storage]\ndriver = \"vfs\"\ngraphroot = %q\nrunroot = %q\n", filepath.Join(store, "graph"), filepath.Join(store, "run")))
			writeFile(t, filepath.Join(s.home, "containers.conf"), fmt.Appendf(nil,
				"[engine]\nevents_logger = \"none\"\ncgroup_manager = \"cgroupfs\"\nimage_copy_tmp_dir = %q\n", filepath.Join(s.home, "tmp")))
			env := []string{
				"CONTAINERS_STORAGE_CONF=" + filepath.Join(s.home, "storage.conf"),
				"CONTAINERS_CONF=" + filepath.Join(s.home, "containers.conf"),
				"TMPDIR=" + filepath.Join(s.home, "tmp"),
			}
			s.runEnv(env, podman, "pull", "--tls-verify=false", base)
			s.runEnv(env, podman, "tag", base, host+"/ci/podman:v1")
			s.runEnv(env, podman, "push", "--tls-verify=false", host+"/ci/podman:v1")
			pushed(t, host+"/ci/podman:v1")
		}},
	}
	for _, c := range clients {
		t.Run(c.name, func(t *testing.T) {
			bin := needClient(t, c.name)
			cs := *s
			cs.t = t
			c.run(t, &cs, bin)
			// Every client ran on the one session token: no new ID token.
			if n := iss.GitHubRequests(); n != 1 {
				t.Fatalf("%d ID token requests, want 1 (the credential came from the cache)", n)
			}
		})
	}

	// erase (docker logout does it) forgets the cached credential and revokes
	// it; the next get trades a fresh ID token.
	old := creds.Secret
	basic := func(secret string) map[string]string {
		return map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("session:"+secret))}
	}
	resp, body := doReq(t, "GET", p.url("/token?scope=repository:ci/base:pull"), nil, basic(old))
	wantStatus(t, "session token before erase", resp, body, 200)
	s.runStdin([]byte(host), helper, "erase")
	if _, err := os.Stat(cacheFile); !os.IsNotExist(err) {
		t.Fatalf("cache file after erase: %v", err)
	}
	if err := json.Unmarshal([]byte(s.runStdin([]byte(host), helper, "get")), &creds); err != nil {
		t.Fatal(err)
	}
	if n := iss.GitHubRequests(); n != 2 {
		t.Fatalf("%d ID token requests after erase and get, want 2", n)
	}
	resp, body = doReq(t, "GET", p.url("/token?scope=repository:ci/base:pull"), nil, basic(old))
	wantStatus(t, "erased (revoked) session token", resp, body, 401)
	resp, body = doReq(t, "GET", p.url("/token?scope=repository:ci/base:pull"), nil, basic(creds.Secret))
	wantStatus(t, "session token from the fresh ID token", resp, body, 200)

	// store is refused clearly.
	r = s.exec([]byte(`{"ServerURL":"`+host+`","Username":"alice","Secret":"x"}`), nil, helper, "store")
	if r.err == nil || !strings.Contains(r.stderr, "stores no credentials") || strings.Contains(r.stderr, "berth_st_") {
		t.Fatalf("store:\n%s", r)
	}

	// logout restores both files exactly as they were, minus nothing else.
	out = s.run(berthBin, "logout", host)
	if !strings.Contains(out, dockerConfig+`: removed credHelpers["`+host+`"]`) {
		t.Fatalf("berth logout output:\n%s", out)
	}
	wantJSON(t, dockerConfig, map[string]any{
		"auths": map[string]any{"other.example.com": map[string]any{"auth": "eDp5"}}, "psFormat": "table {{.ID}}",
		"credHelpers": map[string]any{"gcr.io": "gcloud"},
	})
	wantJSON(t, authJSON, map[string]any{"auths": map[string]any{"quay.io": map[string]any{"auth": "eDp5"}}, "x-unknown": []any{1.0, 2.0}})
	r = s.exec([]byte(host), nil, helper, "get")
	if r.err == nil || !strings.Contains(r.stdout, "credentials not found in native keychain") {
		t.Fatalf("get after logout:\n%s", r)
	}
}

// runStdin runs a command that must succeed with stdin.
func (s *clientSandbox) runStdin(stdin []byte, bin string, args ...string) string {
	s.t.Helper()
	r := s.exec(stdin, nil, bin, args...)
	if r.err != nil {
		s.t.Fatalf("command failed:\n%s", r)
	}
	return r.stdout
}

func wantJSON(t *testing.T, path string, want map[string]any) {
	t.Helper()
	var got map[string]any
	if err := json.Unmarshal(readFile(t, path), &got); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if g, w := mustJSON(t, got), mustJSON(t, want); string(g) != string(w) {
		t.Fatalf("%s:\n%s\nwant\n%s", path, g, w)
	}
}
