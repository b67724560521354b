package ui

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/berth-registry/berth/internal/access"
	"github.com/berth-registry/berth/internal/auth"
)

func TestRepositoriesFollowPolicy(t *testing.T) {
	e := newEnv(t, false)
	e.image("public/web", "amd64", "v1")
	e.image("private/app", "amd64", "v1", "v2")
	e.image("private/db", "amd64", "latest")

	anon := e.browser()
	p := anon.get("/")
	if p.status != http.StatusOK {
		t.Fatalf("status %d", p.status)
	}
	p.has(t, "public/web", `data-testid="who">anonymous`, "Sign in")
	p.lacks(t, "private/app", "private/db")

	bob := e.browser()
	bob.signIn("bob")
	p = bob.get("/")
	p.has(t, "Signed in as <strong>bob</strong>", "public/web")
	p.lacks(t, "private/")

	alice := e.browser()
	alice.signIn("alice")
	p = alice.get("/") // page size 2: two of three, then the rest
	p.has(t, "private/app", "private/db", `rel="next"`)
	p.lacks(t, "public/web")
	p = alice.get("/?after=private/db")
	p.has(t, "public/web")
	p.lacks(t, "private/app", `rel="next"`)
	// Tag count, size and last push come from StatRepository.
	p = alice.get("/?q=app")
	p.has(t, "private/app", `<td class="num">2</td>`, "UTC</time>")
	p.lacks(t, "private/db", "public/web")
	p = alice.get("/?q=nothing-like-this")
	p.has(t, "No repository you may pull from matches")
}

func TestRepositoryListEmpty(t *testing.T) {
	e := newEnv(t, false)
	e.image("private/app", "amd64", "v1")
	p := e.browser().get("/")
	p.has(t, "There are no repositories you may pull from as an anonymous user", "Sign in</a> to see more")
}

func TestDeniedNamesIdentity(t *testing.T) {
	e := newEnv(t, false)
	e.image("private/app", "amd64", "v1")
	bob := e.browser()
	bob.signIn("bob")
	for _, path := range []string{"/r/private/app", "/r/private/app/-/manifest/v1"} {
		p := bob.get(path)
		if p.status != http.StatusForbidden {
			t.Fatalf("%s: status %d", path, p.status)
		}
		p.has(t, "You are signed in as bob and may not pull from private/app.")
	}
	// The same answer whether or not the repository exists: nothing leaks.
	p := bob.get("/r/private/nothing")
	p.has(t, "may not pull from private/nothing")
	p = e.browser().get("/r/private/app")
	p.has(t, "You are not signed in, and anonymous users may not pull from private/app. Sign in to see more.")
	// Unknown repositories the caller could read are 404s.
	p = e.browser().get("/r/public/nothing")
	if p.status != http.StatusNotFound {
		t.Fatalf("unknown repository: status %d", p.status)
	}
}

func TestSignIn(t *testing.T) {
	e := newEnv(t, false)
	b := e.browser()
	p := b.get("/-/signin")
	p.has(t, "Username and password", "Paste a token")

	// Without the CSRF token: refused, no session.
	p = b.post("/-/signin", url.Values{"username": {"alice"}, "password": {"alice-password"}})
	if p.status != http.StatusForbidden || b.cookie(sessionCookie) != nil {
		t.Fatalf("sign-in without CSRF: status %d, cookie %v", p.status, b.cookie(sessionCookie))
	}
	// With another browser's CSRF token: refused.
	other := e.browser().csrf("/-/signin")
	p = b.post("/-/signin", url.Values{"csrf": {other}, "username": {"alice"}, "password": {"alice-password"}})
	if p.status != http.StatusForbidden {
		t.Fatalf("sign-in with a foreign CSRF token: status %d", p.status)
	}
	// Wrong password.
	p = b.post("/-/signin", url.Values{"csrf": {b.csrf("/-/signin")}, "username": {"alice"}, "password": {"wrong"}})
	if p.status != http.StatusUnauthorized {
		t.Fatalf("wrong password: status %d", p.status)
	}
	p.has(t, "Those credentials were not accepted.")
	p.lacks(t, "wrong")

	// Right password: a session cookie holding a berth session token.
	resp := b.post("/-/signin", url.Values{"csrf": {b.csrf("/-/signin")}, "username": {"alice"}, "password": {"alice-password"}, "next": {"/r/public/x"}})
	if resp.status != http.StatusSeeOther || resp.header.Get("Location") != "/r/public/x" {
		t.Fatalf("sign-in: status %d, location %q", resp.status, resp.header.Get("Location"))
	}
	var sc string
	for _, line := range resp.header.Values("Set-Cookie") {
		if strings.HasPrefix(line, sessionCookie+"=") {
			sc = line
		}
	}
	for _, attr := range []string{"HttpOnly", "SameSite=Strict", "Path=/"} {
		if !strings.Contains(sc, attr) {
			t.Fatalf("session cookie %q lacks %s", sc, attr)
		}
	}
	if strings.Contains(sc, "Secure") {
		t.Fatalf("session cookie over plain HTTP is Secure: %q", sc)
	}
	if c := b.cookie(sessionCookie); c == nil || !strings.HasPrefix(c.Value, "berth_st_") {
		t.Fatalf("session cookie = %v, want a berth session token", c)
	}
	b.get("/").has(t, "Signed in as <strong>alice</strong>")

	// An open redirect is refused.
	b2 := e.browser()
	p = b2.post("/-/signin", url.Values{"csrf": {b2.csrf("/-/signin")}, "username": {"bob"}, "password": {"bob-password"}, "next": {"//evil.example/"}})
	if p.header.Get("Location") != "/" {
		t.Fatalf("next=//evil.example/: location %q", p.header.Get("Location"))
	}
}

func TestSignInWithToken(t *testing.T) {
	e := newEnv(t, false)
	e.image("private/app", "amd64", "v1")
	raw, _, err := e.tokens.IssueSession(context.Background(), &auth.Identity{ID: "user:alice", Username: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	p := b.post("/-/signin", url.Values{"csrf": {b.csrf("/-/signin")}, "token": {raw}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("token sign-in: status %d\n%s", p.status, p.body)
	}
	// A pasted session token is the session itself (never traded for a new one).
	if c := b.cookie(sessionCookie); c == nil || c.Value != raw {
		t.Fatalf("session cookie = %v, want the pasted token", c)
	}
	b.get("/").has(t, "Signed in as <strong>alice</strong>", "private/app")

	b2 := e.browser()
	p = b2.post("/-/signin", url.Values{"csrf": {b2.csrf("/-/signin")}, "token": {"berth_st_AAAA_BBBB"}})
	if p.status != http.StatusUnauthorized {
		t.Fatalf("bad token: status %d", p.status)
	}
	p.has(t, "That token was not accepted")
	// Without an OIDC provider an ID token cannot be used.
	p = b2.post("/-/signin", url.Values{"csrf": {b2.csrf("/-/signin")}, "token": {"eyJhbGciOiJSUzI1NiJ9.e30.c2ln"}})
	if p.status != http.StatusUnauthorized {
		t.Fatalf("ID token without providers: status %d", p.status)
	}
}

func TestSignOutRevokesSession(t *testing.T) {
	e := newEnv(t, false)
	b := e.browser()
	b.signIn("alice")
	raw := b.cookie(sessionCookie).Value
	token := b.csrf("/")
	// Sign-out is a POST with the CSRF token.
	if p := b.post("/-/signout", url.Values{}); p.status != http.StatusForbidden {
		t.Fatalf("sign-out without CSRF: status %d", p.status)
	}
	if p := b.get("/-/signout"); p.status != http.StatusMethodNotAllowed {
		t.Fatalf("GET sign-out: status %d", p.status)
	}
	p := b.post("/-/signout", url.Values{"csrf": {token}})
	if p.status != http.StatusSeeOther || b.cookie(sessionCookie) != nil {
		t.Fatalf("sign-out: status %d, cookie %v", p.status, b.cookie(sessionCookie))
	}
	b.get("/").has(t, `data-testid="who">anonymous`)
	// The token is revoked: replaying the old cookie is anonymous.
	if _, err := e.tokens.VerifySessionToken(context.Background(), raw, "127.0.0.1"); err == nil {
		t.Fatal("session token still valid after sign-out")
	}
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/", nil)
	req.AddCookie(&http.Cookie{Name: sessionCookie, Value: raw})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !strings.Contains(strings.Join(resp.Header.Values("Set-Cookie"), "\n"), sessionCookie+"=;") {
		t.Fatalf("a revoked session cookie is not cleared: %q", resp.Header.Values("Set-Cookie"))
	}
}

func TestSecureCookiesUnderTLS(t *testing.T) {
	e := newEnv(t, false)
	r := httptest.NewRequest(http.MethodGet, "https://registry.example/-/signin", nil)
	r.TLS = &tls.ConnectionState{}
	w := httptest.NewRecorder()
	e.ui.ServeHTTP(w, r)
	sc := w.Header().Get("Set-Cookie")
	if !strings.Contains(sc, csrfCookie+"=") || !strings.Contains(sc, "Secure") || !strings.Contains(sc, "SameSite=Strict") {
		t.Fatalf("cookie over TLS: %q", sc)
	}
	// Behind a trusted TLS-terminating proxy, and only behind a trusted one.
	h := access.Proxies{netip.MustParsePrefix("192.0.2.0/24")}.Handler(e.ui)
	for peer, want := range map[string]bool{"192.0.2.7:4000": true, "198.51.100.7:4000": false} {
		r := httptest.NewRequest(http.MethodGet, "http://registry.example/-/signin", nil)
		r.RemoteAddr = peer
		r.Header.Set("X-Forwarded-Proto", "https")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if got := strings.Contains(w.Header().Get("Set-Cookie"), "Secure"); got != want {
			t.Fatalf("X-Forwarded-Proto https from %s: Secure = %v, want %v", peer, got, want)
		}
	}
}

func TestRepositoryPage(t *testing.T) {
	e := newEnv(t, false)
	img := e.image("private/app", "arm64", "v1")
	idx := e.index("private/app", "multi")
	e.artifact("private/app", "application/vnd.example.config", "settings.json", []byte(`{"a":1}`), "", "files")
	e.image("private/app", "amd64") // untagged

	admin := e.browser()
	admin.signIn("admin")
	p := admin.get("/r/private/app?n=10")
	if p.status != http.StatusOK {
		t.Fatalf("status %d\n%s", p.status, p.body)
	}
	p.has(t, ">files<", ">multi<", ">v1<", short(img), short(idx),
		"linux/arm64", "linux/amd64, linux/arm64", // image platform from its config; index platforms
		"oras pull 127.0.0.1", "docker pull 127.0.0.1", "/private/app:multi",
		`data-testid="delete-tag"`, "application/vnd.example.config")

	// Sorted by name with a cursor: page size 2.
	p = admin.get("/r/private/app")
	p.has(t, ">files<", ">multi<", "after=multi")
	p.lacks(t, ">v1<")
	p = admin.get("/r/private/app?after=multi")
	p.has(t, ">v1<")
	// Sorted by date: newest first.
	p = admin.get("/r/private/app?sort=date&n=10")
	if i, j := strings.Index(p.body, ">files<"), strings.Index(p.body, ">v1<"); i < 0 || j < 0 || i > j {
		t.Fatalf("by date, files (pushed last) should come before v1:\n%s", p.body)
	}

	// Untagged manifests: the amd64 image and the index's children.
	p = admin.get("/r/private/app?view=manifests&untagged=1&n=50")
	p.has(t, "untagged", `data-testid="delete-manifest"`)
	p.lacks(t, short(img), short(idx))

	// alice may pull but not delete: no delete buttons.
	alice := e.browser()
	alice.signIn("alice")
	p = alice.get("/r/private/app?n=10")
	p.has(t, ">v1<")
	p.lacks(t, "delete-tag")
	alice.get("/r/private/app?view=manifests").lacks(t, "delete-manifest")
}

func short(d any) string { return shortDigest(d) }

func TestManifestPage(t *testing.T) {
	e := newEnv(t, false)
	idx := e.index("public/app", "v1")
	img := e.image("public/app", "amd64", "single")
	sig := e.artifact("public/app", "application/vnd.dev.cosign.artifact.sig.v1+json", "sig", []byte("signature"), img)
	sbom := e.artifact("public/app", "application/spdx+json", "sbom.spdx.json", []byte(`{"spdxVersion":"SPDX-2.3"}`), img)
	att := e.artifact("public/app", "application/vnd.in-toto+json", "att", []byte(`{}`), img)

	b := e.browser() // anonymous may pull public/*
	p := b.get("/r/public/app/-/manifest/v1")
	p.has(t, "Platform manifests", "linux/amd64", "linux/arm64", ociIndex, string(idx))
	p.lacks(t, "delete-this-manifest")

	p = b.get("/r/public/app/-/manifest/" + string(img))
	p.has(t, "Configuration", "2026-01-02 03:04 UTC", "linux/amd64", "/bin/app", "serve --port=80",
		"org.example.team", "&lt;b&gt;infra&lt;/b&gt;", // labels, escaped
		"org.opencontainers.image.source", "Layers", "<svg class=\"sizebar\"", `width="100.00"`,
		"Signatures", "SBOMs", "Attestations", short(sig), short(sbom), short(att),
		`<span class="jk">&#34;schemaVersion&#34;</span>`, `<span class="jn">2</span>`)
	p.lacks(t, "hunter2") // environment variables are never shown

	// A referrer links back to its subject and offers its files.
	p = b.get("/r/public/app/-/manifest/" + string(sbom))
	p.has(t, "Files", "sbom.spdx.json", `data-testid="subject-link"`, "/-/blob/sha256:", "?name=sbom.spdx.json", "oras pull")

	if p := b.get("/r/public/app/-/manifest/sha256:0000"); p.status != http.StatusNotFound {
		t.Fatalf("bad digest: status %d", p.status)
	}
	if p := b.get("/r/public/app/-/manifest/nope"); p.status != http.StatusNotFound {
		t.Fatalf("unknown tag: status %d", p.status)
	}
}

func TestBlobDownload(t *testing.T) {
	e := newEnv(t, false)
	content := []byte("<html><script>alert(1)</script>")
	e.artifact("public/files", "application/vnd.example", "../../page.html", content, "", "v1")
	e.artifact("private/files", "application/vnd.example", "secret.txt", []byte("secret"), "", "v1")
	d := sha(content)

	b := e.browser()
	p := b.get("/r/public/files/-/blob/" + string(d) + "?name=../../page.html")
	if p.status != http.StatusOK || p.body != string(content) {
		t.Fatalf("download: status %d body %q", p.status, p.body)
	}
	if ct, cd := p.header.Get("Content-Type"), p.header.Get("Content-Disposition"); ct != "application/octet-stream" || cd != `attachment; filename="page.html"` {
		t.Fatalf("download headers: %q %q", ct, cd)
	}
	// The same pull decision as the API: bob may not read private/files.
	bob := e.browser()
	bob.signIn("bob")
	p = bob.get("/r/private/files/-/blob/" + string(sha([]byte("secret"))))
	if p.status != http.StatusForbidden || strings.Contains(p.body, "secret\n") {
		t.Fatalf("denied download: status %d", p.status)
	}
	// A blob of another repository is not reachable through this one.
	p = b.get("/r/public/files/-/blob/" + string(sha([]byte("secret"))))
	if p.status != http.StatusNotFound {
		t.Fatalf("foreign blob: status %d", p.status)
	}
}

func TestDeleteTagAndManifest(t *testing.T) {
	e := newEnv(t, false)
	img := e.image("private/app", "amd64", "v1", "v2")
	ctx := context.Background()

	admin := e.browser()
	admin.signIn("admin")
	tok := admin.csrf("/r/private/app")

	// CSRF: missing or wrong tokens change nothing.
	for _, bad := range []string{"", "x", e.browser().csrf("/-/signin")} {
		p := admin.post("/r/private/app/-/delete", url.Values{"csrf": {bad}, "tag": {"v1"}})
		if p.status != http.StatusForbidden {
			t.Fatalf("delete with CSRF %q: status %d", bad, p.status)
		}
		p.has(t, "Form expired")
	}
	// A cross-site POST is refused even with the right token.
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/r/private/app/-/delete", strings.NewReader(url.Values{"csrf": {tok}, "tag": {"v1"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if resp, err := admin.c.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site delete: %v %v", resp.StatusCode, err)
	}
	if _, err := e.store.ResolveTag(ctx, "private/app", "v1"); err != nil {
		t.Fatalf("v1 gone after refused deletes: %v", err)
	}

	// alice may not delete, even with a valid form.
	alice := e.browser()
	alice.signIn("alice")
	p := alice.post("/r/private/app/-/delete", url.Values{"csrf": {alice.csrf("/")}, "tag": {"v1"}})
	if p.status != http.StatusForbidden {
		t.Fatalf("alice delete: status %d", p.status)
	}
	p.has(t, "You are signed in as alice and may not delete from private/app.")

	p = admin.post("/r/private/app/-/delete", url.Values{"csrf": {tok}, "tag": {"v1"}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("delete tag: status %d\n%s", p.status, p.body)
	}
	if _, err := e.store.ResolveTag(ctx, "private/app", "v1"); err == nil {
		t.Fatal("v1 still there")
	}
	admin.get(p.header.Get("Location")).has(t, "Deleted tag v1.", ">v2<")
	admin.get("/r/private/app?deleted=everything+you+love").lacks(t, "Deleted everything")

	p = admin.post("/r/private/app/-/delete", url.Values{"csrf": {tok}, "digest": {string(img)}})
	if p.status != http.StatusSeeOther {
		t.Fatalf("delete manifest: status %d", p.status)
	}
	if _, err := e.store.GetManifest(ctx, "private/app", img); err == nil {
		t.Fatal("manifest still there")
	}
	p = admin.post("/r/private/app/-/delete", url.Values{"csrf": {tok}, "tag": {"v1"}, "digest": {string(img)}})
	if p.status != http.StatusBadRequest {
		t.Fatalf("tag and digest: status %d", p.status)
	}
}

func TestOpenMode(t *testing.T) {
	e := newEnv(t, true)
	e.image("anything", "amd64", "v1")
	b := e.browser()
	p := b.get("/")
	p.has(t, "anything")
	p.lacks(t, "Sign in</a>")
	b.get("/r/anything").has(t, "delete-tag")
	b.get("/-/signin").has(t, "This registry has no authentication")
	// Anonymous deletes still need the CSRF token.
	if p := b.post("/r/anything/-/delete", url.Values{"tag": {"v1"}}); p.status != http.StatusForbidden {
		t.Fatalf("open-mode delete without CSRF: status %d", p.status)
	}
	if p := b.post("/r/anything/-/delete", url.Values{"tag": {"v1"}, "csrf": {b.csrf("/r/anything")}}); p.status != http.StatusSeeOther {
		t.Fatalf("open-mode delete: status %d", p.status)
	}
}

func TestStaticAndHeaders(t *testing.T) {
	e := newEnv(t, true)
	b := e.browser()
	for _, path := range []string{"/-/static/style.css", "/-/static/app.js", "/-/static/icon.svg"} {
		if p := b.get(path); p.status != http.StatusOK || len(p.body) < 100 {
			t.Fatalf("%s: status %d, %d bytes", path, p.status, len(p.body))
		}
	}
	p := b.get("/")
	if csp := p.header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") {
		t.Fatalf("CSP %q", csp)
	}
	if p.header.Get("X-Frame-Options") != "DENY" || p.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("headers %v", p.header)
	}
	for _, path := range []string{"/nope", "/r/UPPER", "/r/a/-/what", "/r/a%2Fb"} {
		if p := b.get(path); p.status != http.StatusNotFound {
			t.Fatalf("%s: status %d", path, p.status)
		}
	}
	// Nothing in the pages comes from elsewhere.
	for _, page := range []string{b.get("/").body, b.get("/-/signin").body} {
		if strings.Contains(page, "http://") || strings.Contains(page, "https://") {
			t.Fatalf("external reference in page:\n%s", page)
		}
	}
}

func TestAccessTokenCannotStartSession(t *testing.T) {
	e := newEnv(t, false)
	req := httptest.NewRequest(http.MethodGet, "/token?service=berth&scope=repository:public/x:pull", nil)
	req.SetBasicAuth("alice", "alice-password")
	w := httptest.NewRecorder()
	e.tokens.ServeHTTP(w, req)
	var resp struct {
		Token string `json:"token"`
	}
	if err := json.NewDecoder(w.Body).Decode(&resp); err != nil || resp.Token == "" {
		t.Fatalf("token endpoint: %d %v", w.Code, err)
	}
	b := e.browser()
	p := b.post("/-/signin", url.Values{"csrf": {b.csrf("/-/signin")}, "token": {resp.Token}})
	if p.status != http.StatusUnauthorized || b.cookie(sessionCookie) != nil {
		t.Fatalf("sign-in with an access token: status %d, cookie %v", p.status, b.cookie(sessionCookie))
	}
}
