package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/crypto/bcrypt"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content/memory"
	orasremote "oras.land/oras-go/v2/registry/remote"
	orasauth "oras.land/oras-go/v2/registry/remote/auth"
)

// chromiumPath is Debian's chromium (scripts/install-test-browser.sh).
const chromiumPath = "/usr/bin/chromium"

// needBrowser skips without Chromium unless BERTH_REQUIRE_BROWSER=1.
func needBrowser(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("BERTH_REQUIRE_BROWSER") == "1" {
			t.Fatalf("BERTH_REQUIRE_BROWSER=1 but %s is missing: run scripts/install-test-browser.sh", chromiumPath)
		}
		t.Skipf("%s not installed (scripts/install-test-browser.sh)", chromiumPath)
	}
}

// removeProfile removes a Chromium profile directory, retrying while
// Chromium's helper processes finish writing into it; a profile that cannot
// be removed is only logged (it is under the system's temp directory).
func removeProfile(t *testing.T, dir string) {
	var err error
	for range 50 {
		if err = os.RemoveAll(dir); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("chromium profile %s not removed: %v", dir, err)
}

// newBrowser starts a headless Chromium with a fresh profile and nothing
// that reaches for the network on its own.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	// Not t.TempDir: Chromium's helper processes (crashpad) may still write
	// into the profile for a moment after the browser exited, which made
	// TempDir's cleanup fail the test with "directory not empty". The
	// profile is removed after the browser, retried briefly.
	profile, err := os.MkdirTemp("", "berth-ui-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeProfile(t, profile) })
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.UserDataDir(profile),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	// The whole scenario gets a generous bound so a wedged browser fails the
	// test instead of hanging it; nothing is measured against it.
	ctx, cancelTimeout := context.WithTimeout(ctx, 4*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// uiBerth starts berth with the UI, static users admin (everything) and
// guest (pull public/* only), and the OIDC provider "ci" whose identities
// may pull everything.
func uiBerth(t *testing.T, issuer string) *berthProc {
	t.Helper()
	hash := func(pw string) string {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		return string(h)
	}
	cfg := fmt.Sprintf(`
[ui]
enabled = true
name = "e2e registry"

[auth.oidc.ci]
provider = "generic"
issuer = %q
audiences = ["berth"]

[auth.identity.admin]
username = "admin"
password = %q

[auth.identity.guest]
username = "guest"
password = %q

[global.access_policy]
default_allow = false
rules = [
  'identity.username == "admin"',
  'identity.oidc != null && request.action == "pull"',
  'identity.username == "guest" && request.action == "pull" && request.repository.startsWith("public/")',
]
`, issuer, hash("admin-pw"), hash("guest-pw"))
	return startBerthWith(t, t.TempDir(), cfg)
}

// shots saves screenshots when BERTH_SCREENSHOTS names a directory.
type shots struct {
	t   *testing.T
	dir string
}

func (s shots) take(name string) chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		if s.dir == "" {
			return nil
		}
		var buf []byte
		if err := chromedp.FullScreenshot(&buf, 100).Do(ctx); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(s.dir, name+".png"), buf, 0o644)
	})
}

// TestUIBrowser drives the web UI in a real headless Chromium: sign in as a
// static user, browse repository → tag → manifest → referrer, delete a tag,
// sign out; a user without pull rights sees neither the repository nor a
// delete button; sign in with a pasted OIDC ID token.
func TestUIBrowser(t *testing.T) {
	needBrowser(t)
	iss := newIssuer(t)
	p := uiBerth(t, iss.URL())
	ctx := context.Background()
	admin := &authn.Basic{Username: "admin", Password: "admin-pw"}

	// Content: a two-layer image tagged v1 and v2 in myorg/app, with an SBOM
	// and a signature attached by oras-go; an image in public/tools.
	img, err := random.Image(2048, 2)
	if err != nil {
		t.Fatal(err)
	}
	// Layers of different sizes, for the size chart.
	for _, size := range []int64{9000, 700} {
		l, err := random.Layer(size, types.DockerLayer)
		if err != nil {
			t.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			t.Fatal(err)
		}
	}
	img, err = mutate.Config(img, v1.Config{Entrypoint: []string{"/usr/bin/app"}, Cmd: []string{"serve"},
		Labels: map[string]string{"org.opencontainers.image.title": "demo app"}})
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf.OS, cf.Architecture, cf.Created = "linux", "amd64", v1.Time{Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	for _, tag := range []string{"v1", "v2"} {
		if err := remote.Write(mustRef(t, p.host()+"/myorg/app:"+tag), img, remote.WithAuth(admin), remote.WithContext(ctx)); err != nil {
			t.Fatalf("push %s: %v", tag, err)
		}
	}
	tools, _ := random.Image(512, 1)
	if err := remote.Write(mustRef(t, p.host()+"/public/tools:latest"), tools, remote.WithAuth(admin)); err != nil {
		t.Fatalf("push public/tools: %v", err)
	}
	repo, err := orasremote.NewRepository(p.host() + "/myorg/app")
	if err != nil {
		t.Fatal(err)
	}
	repo.PlainHTTP = true
	repo.Client = &orasauth.Client{Credential: orasauth.StaticCredential(p.host(), orasauth.Credential{Username: "admin", Password: "admin-pw"})}
	subject, err := repo.Resolve(ctx, "v1")
	if err != nil {
		t.Fatalf("resolve v1: %v", err)
	}
	src := memory.New()
	attach := func(artifactType, title string, payload []byte) ocispec.Descriptor {
		t.Helper()
		blob, err := oras.PushBytes(ctx, src, "application/octet-stream", payload)
		if err != nil {
			t.Fatal(err)
		}
		blob.Annotations = map[string]string{ocispec.AnnotationTitle: title}
		desc, err := oras.PackManifest(ctx, src, oras.PackManifestVersion1_1, artifactType, oras.PackManifestOptions{
			Layers: []ocispec.Descriptor{blob}, Subject: &subject,
			ManifestAnnotations: map[string]string{ocispec.AnnotationCreated: "2026-01-02T03:04:05Z"}})
		if err != nil {
			t.Fatal(err)
		}
		if err := oras.CopyGraph(ctx, src, repo, desc, oras.DefaultCopyGraphOptions); err != nil {
			t.Fatalf("attach %s: %v", artifactType, err)
		}
		return desc
	}
	sbom := attach("application/spdx+json", "sbom.spdx.json", []byte(`{"spdxVersion":"SPDX-2.3","name":"demo"}`))
	attach("application/vnd.dev.cosign.artifact.sig.v1+json", "signature", []byte("not really a signature"))

	b := newBrowser(t)
	shot := shots{t: t, dir: os.Getenv("BERTH_SCREENSHOTS")}
	if shot.dir != "" {
		if err := os.MkdirAll(shot.dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	base := "http://" + p.host()
	text := func(sel string) string {
		t.Helper()
		var s string
		if err := chromedp.Run(b, chromedp.Text(sel, &s, chromedp.ByQuery)); err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	run := func(what string, actions ...chromedp.Action) {
		t.Helper()
		if err := chromedp.Run(b, actions...); err != nil {
			var body string
			_ = chromedp.Run(b, chromedp.Text("body", &body, chromedp.ByQuery))
			t.Fatalf("%s: %v\npage text:\n%s", what, err, body)
		}
	}
	wantText := func(sel string, want ...string) {
		t.Helper()
		got := text(sel)
		for _, w := range want {
			if !strings.Contains(got, w) {
				t.Fatalf("%s: %q lacks %q", sel, got, w)
			}
		}
	}
	lacksText := func(sel string, unwanted ...string) {
		t.Helper()
		got := text(sel)
		for _, w := range unwanted {
			if strings.Contains(got, w) {
				t.Fatalf("%s: %q has %q", sel, got, w)
			}
		}
	}
	signIn := func(user, pw string) {
		t.Helper()
		run("sign in as "+user,
			chromedp.Navigate(base+"/-/signin"),
			chromedp.WaitVisible(`#username`, chromedp.ByQuery),
			chromedp.SendKeys(`#username`, user, chromedp.ByQuery),
			chromedp.SendKeys(`#password`, pw, chromedp.ByQuery),
			chromedp.Submit(`#password`, chromedp.ByQuery),
			chromedp.WaitVisible(`[data-testid="signout"]`, chromedp.ByQuery),
		)
		wantText(`[data-testid="who"]`, "Signed in as "+user)
	}
	signOut := func() {
		t.Helper()
		run("sign out",
			chromedp.Click(`[data-testid="signout"]`, chromedp.ByQuery),
			chromedp.WaitVisible(`[data-testid="signin-link"]`, chromedp.ByQuery),
		)
		wantText(`[data-testid="who"]`, "anonymous")
	}

	// Anonymous: nothing to pull, an invitation to sign in.
	run("anonymous list", chromedp.Navigate(base+"/"), chromedp.WaitVisible(`[data-testid="empty"]`, chromedp.ByQuery))
	wantText(`[data-testid="empty"]`, "no repositories you may pull from as an anonymous user")
	run("sign-in page", chromedp.Navigate(base+"/-/signin"), chromedp.WaitVisible(`#token`, chromedp.ByQuery), shot.take("signin"))

	// admin: browse repository → tag → manifest → referrer.
	signIn("admin", "admin-pw")
	run("list", chromedp.Navigate(base+"/"), chromedp.WaitVisible(`[data-testid="repositories"]`, chromedp.ByQuery), shot.take("repositories"))
	wantText(`[data-testid="repositories"]`, "myorg/app", "public/tools")
	run("open repository",
		chromedp.Click(`a[href="/r/myorg/app"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`[data-testid="tags"]`, chromedp.ByQuery),
		shot.take("repository"))
	wantText(`[data-testid="tags"]`, "v1", "v2", "linux/amd64", "image")
	wantText(`[data-testid="pull-cmd"]`, "docker pull "+p.host()+"/myorg/app:v1")
	run("open tag v1",
		chromedp.Click(`tr[data-tag="v1"] a[data-testid="tag-link"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`[data-testid="layers"]`, chromedp.ByQuery),
		shot.take("manifest"))
	wantText(`[data-testid="config"]`, "linux/amd64", "/usr/bin/app", "2026-01-02")
	wantText(`main`, "SBOMs", "Signatures", "Raw manifest")
	run("open the SBOM referrer",
		chromedp.Click(`a[data-testid="referrer-link"][href$="`+sbom.Digest.String()+`"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`[data-testid="subject-link"]`, chromedp.ByQuery),
		shot.take("referrer"))
	wantText(`main`, "sbom.spdx.json", "application/spdx+json")
	// The file downloads through the UI (same pull decision as the API).
	var dl string
	run("download link", chromedp.AttributeValue(`a[data-testid="download"]`, "href", &dl, nil, chromedp.ByQuery))
	var file string
	run("download in the browser", chromedp.Evaluate(`fetch(`+strconv.Quote(dl)+`).then(r => r.text())`, &file,
		func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }))
	if !strings.Contains(file, "SPDX-2.3") {
		t.Fatalf("download %s in the signed-in browser: %q", dl, file)
	}
	if resp, body := doReq(t, "GET", base+dl, nil, nil); resp.StatusCode != 403 || bytes.Contains(body, []byte("SPDX-2.3")) {
		t.Fatalf("download %s without the session: status %d", dl, resp.StatusCode)
	}
	run("back to the subject", chromedp.Click(`[data-testid="subject-link"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`[data-testid="layers"]`, chromedp.ByQuery))

	// Delete tag v2 (the confirmation dialog is accepted).
	run("delete v2",
		chromedp.Navigate(base+"/r/myorg/app"),
		chromedp.WaitVisible(`[data-testid="tags"]`, chromedp.ByQuery),
		chromedp.Evaluate(`window.confirm = () => true`, nil),
		chromedp.Click(`tr[data-tag="v2"] button[data-testid="delete-tag"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`[data-testid="deleted"]`, chromedp.ByQuery))
	wantText(`[data-testid="deleted"]`, "Deleted tag v2.")
	lacksText(`[data-testid="tags"]`, "v2")
	if tags := httpTagsAs(t, p, "myorg/app", "admin", "admin-pw"); len(tags) != 1 || tags[0] != "v1" {
		t.Fatalf("tags after the delete: %v", tags)
	}
	// The dark theme, for the screenshots.
	run("dark theme", chromedp.Navigate(base+"/r/myorg/app/-/manifest/v1"), chromedp.WaitVisible(`[data-testid="layers"]`, chromedp.ByQuery),
		chromedp.Click(`[data-theme-toggle]`, chromedp.ByQuery), shot.take("manifest-dark"),
		chromedp.Click(`[data-theme-toggle]`, chromedp.ByQuery))
	signOut()

	// guest may pull public/* only: no myorg/app, no delete buttons.
	signIn("guest", "guest-pw")
	run("guest list", chromedp.Navigate(base+"/"), chromedp.WaitVisible(`[data-testid="repositories"]`, chromedp.ByQuery))
	wantText(`[data-testid="repositories"]`, "public/tools")
	lacksText(`[data-testid="repositories"]`, "myorg/app")
	run("guest repository", chromedp.Click(`a[href="/r/public/tools"]`, chromedp.ByQuery), chromedp.WaitVisible(`[data-testid="tags"]`, chromedp.ByQuery))
	var deletes int
	run("count delete buttons", chromedp.Evaluate(`document.querySelectorAll('[data-testid^="delete"]').length`, &deletes))
	if deletes != 0 {
		t.Fatalf("guest sees %d delete buttons", deletes)
	}
	run("guest denied", chromedp.Navigate(base+"/r/myorg/app"), chromedp.WaitVisible(`[data-testid="error"]`, chromedp.ByQuery), shot.take("denied"))
	wantText(`[data-testid="error"]`, "You are signed in as guest and may not pull from myorg/app.")
	signOut()

	// A pasted OIDC ID token: pull everywhere, delete nowhere.
	idTok := iss.Mint(map[string]any{"sub": "repo:myorg/app:ref:refs/heads/main", "aud": "berth",
		"iat": time.Now().Unix(), "exp": time.Now().Add(10 * time.Minute).Unix()})
	run("token sign-in",
		chromedp.Navigate(base+"/-/signin"),
		chromedp.WaitVisible(`#token`, chromedp.ByQuery),
		chromedp.SetValue(`#token`, idTok, chromedp.ByQuery),
		chromedp.Submit(`#token`, chromedp.ByQuery),
		chromedp.WaitVisible(`[data-testid="signout"]`, chromedp.ByQuery))
	wantText(`[data-testid="who"]`, "Signed in as")
	run("token list", chromedp.Navigate(base+"/"), chromedp.WaitVisible(`[data-testid="repositories"]`, chromedp.ByQuery))
	wantText(`[data-testid="repositories"]`, "myorg/app", "public/tools")
	run("token repository", chromedp.Navigate(base+"/r/myorg/app"), chromedp.WaitVisible(`[data-testid="tags"]`, chromedp.ByQuery))
	run("count delete buttons", chromedp.Evaluate(`document.querySelectorAll('[data-testid^="delete"]').length`, &deletes))
	if deletes != 0 {
		t.Fatalf("an OIDC identity that may only pull sees %d delete buttons", deletes)
	}
	signOut()
	// Signed out for real: the repository is no longer visible.
	run("after sign-out", chromedp.Navigate(base+"/r/myorg/app"), chromedp.WaitVisible(`[data-testid="error"]`, chromedp.ByQuery))
	wantText(`[data-testid="error"]`, "You are not signed in")

	// A phone-sized screenshot of the repository list as admin.
	if shot.dir != "" {
		signIn("admin", "admin-pw")
		run("phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile), chromedp.Navigate(base+"/r/myorg/app"),
			chromedp.WaitVisible(`[data-testid="tags"]`, chromedp.ByQuery), shot.take("repository-phone"))
	}
}

// httpTagsAs lists tags through the API with Basic credentials.
func httpTagsAs(t *testing.T, p *berthProc, repo, user, pw string) []string {
	t.Helper()
	r, err := remote.List(mustRepo(t, p.host()+"/"+repo), remote.WithAuth(&authn.Basic{Username: user, Password: pw}))
	if err != nil {
		t.Fatalf("list tags of %s: %v", repo, err)
	}
	return r
}
