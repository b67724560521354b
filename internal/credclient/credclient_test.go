package credclient

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// jwt makes an unsigned JWT expiring at exp (the helper never verifies).
func jwt(exp time.Time, sub string) string {
	enc := base64.RawURLEncoding.EncodeToString
	p, _ := json.Marshal(map[string]any{"exp": exp.Unix(), "sub": sub})
	return enc([]byte(`{"alg":"RS256"}`)) + "." + enc(p) + ".c2ln"
}

func envOf(vars map[string]string, now *time.Time) Env {
	return Env{Getenv: func(k string) string { return vars[k] }, HTTP: http.DefaultClient, Now: func() time.Time { return *now }}
}

func TestSources(t *testing.T) {
	now := t0
	good := jwt(t0.Add(time.Minute), "x")
	var gotAuth, gotAud string
	gh := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth, gotAud = r.Header.Get("Authorization"), r.URL.Query().Get("audience")
		if r.URL.Query().Get("api-version") != "2.0" {
			http.Error(w, "lost the query", 400)
			return
		}
		fmt.Fprintf(w, `{"value":%q}`, good)
	}))
	defer gh.Close()
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	if err := os.WriteFile(file, []byte(good+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{
		"ACTIONS_ID_TOKEN_REQUEST_URL": gh.URL + "/?api-version=2.0", "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "req-tok",
		"BERTH_ID_TOKEN": good, "MY_TOKEN": good,
	}
	env := envOf(vars, &now)
	for _, spec := range []string{"github-actions", "auto", "gitlab", "gitlab:MY_TOKEN", "file:" + file, "kubernetes:" + file, "command:cat " + file} {
		src, err := ParseSource(spec)
		if err != nil {
			t.Fatalf("%s: %v", spec, err)
		}
		tok, err := src.IDToken(context.Background(), env, "https://registry.example.com")
		if err != nil || tok != good {
			t.Fatalf("%s: %v (token ok: %v)", spec, err, tok == good)
		}
	}
	if gotAuth != "Bearer req-tok" || gotAud != "https://registry.example.com" {
		t.Fatalf("Actions endpoint got Authorization %q, audience %q", gotAuth, gotAud)
	}

	// auto picks GitLab when there is no Actions endpoint.
	delete(vars, "ACTIONS_ID_TOKEN_REQUEST_URL")
	if r, _ := (Source{Kind: SourceAuto}).Resolve(env); r.Kind != SourceGitLab {
		t.Fatalf("auto without Actions: %v", r)
	}
	delete(vars, "BERTH_ID_TOKEN")
	if _, err := (Source{Kind: SourceAuto}).Resolve(env); err == nil || !strings.Contains(err.Error(), "id-token: write") {
		t.Fatalf("auto with nothing: %v", err)
	}

	// Refusals name the problem and never the token.
	expired := jwt(t0.Add(-time.Second), "secret-subject")
	vars["EXPIRED"] = expired
	vars["JUNK"] = "not-a-jwt"
	for spec, want := range map[string]string{
		"gitlab:EXPIRED":          "the ID token expired at 2026-01-01T11:59:59Z",
		"gitlab:JUNK":             "not a JWT",
		"gitlab:UNSET":            "UNSET is not set",
		"file:" + dir + "/none":   "no such file",
		"command:exit 3":          "the command failed",
		"github-actions":          "give the job `permissions: id-token: write`",
		"command:echo; echo junk": "not a JWT",
	} {
		src, err := ParseSource(spec)
		if err != nil {
			t.Fatalf("%s: %v", spec, err)
		}
		_, err = src.IDToken(context.Background(), env, "")
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), expired) || strings.Contains(err.Error(), "junk\n") {
			t.Errorf("%s: %v, want %q", spec, err, want)
		}
	}
	for _, bad := range []string{"vault", "file:", "command: ", "auto:x", "github-actions:aud"} {
		if _, err := ParseSource(bad); err == nil {
			t.Errorf("ParseSource(%q) accepted", bad)
		}
	}
}

// fakeBerth answers the password grant and the session exchange, counting
// exchanges, and records revocations.
type fakeBerth struct {
	mu        sync.Mutex
	exchanges int
	revoked   []string
	ttl       int
}

func (f *fakeBerth) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case r.URL.Path == "/token/revoke":
		f.revoked = append(f.revoked, r.PostForm.Get("token"))
	case r.PostForm.Get("grant_type") == GrantPassword:
		if r.PostForm.Get("username") != "gha" {
			w.WriteHeader(400)
			fmt.Fprint(w, `{"error":"invalid_grant","error_description":"invalid username or password"}`)
			return
		}
		fmt.Fprint(w, `{"access_token":"eyJ","expires_in":300}`)
	case r.PostForm.Get("grant_type") == GrantTokenExchange:
		f.exchanges++
		fmt.Fprintf(w, `{"access_token":"berth_st_%d","expires_in":%d}`, f.exchanges, f.ttl)
	}
}

func newHelper(t *testing.T, now *time.Time, vars map[string]string) *Helper {
	t.Helper()
	home := t.TempDir()
	vars["HOME"] = home
	paths, err := DefaultPaths(func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	return &Helper{Env: envOf(vars, now), Paths: paths, Stderr: &bytes.Buffer{}}
}

func (h *Helper) runT(t *testing.T, action, stdin string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	code := h.Run(context.Background(), []string{action}, strings.NewReader(stdin), &out)
	return code, out.String()
}

// TestCacheAndRenewal: get trades an ID token once and serves the cached
// session token until it is due for renewal (5 minutes before the end of a
// 15-minute lifetime, halfway through a shorter one), then trades a fresh one.
func TestCacheAndRenewal(t *testing.T) {
	f := &fakeBerth{ttl: 900}
	srv := httptest.NewServer(f)
	defer srv.Close()
	now := t0
	tokFile := filepath.Join(t.TempDir(), "token")
	vars := map[string]string{}
	h := newHelper(t, &now, vars)
	var out bytes.Buffer
	if err := h.Login(context.Background(), LoginOptions{Registry: srv.URL, Provider: "gha", TokenSource: "file:" + tokFile, NoVerify: true}, &out); err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(srv.URL, "http://")
	get := func() string {
		t.Helper()
		// Each get reads a fresh ID token, valid 5 s from now.
		if err := os.WriteFile(tokFile, []byte(jwt(now.Add(5*time.Second), "x")), 0o600); err != nil {
			t.Fatal(err)
		}
		code, out := h.runT(t, "get", host+"\n")
		if code != 0 {
			t.Fatalf("get: %d %s %s", code, out, h.Stderr)
		}
		var c helperCreds
		if err := json.Unmarshal([]byte(out), &c); err != nil || c.Username != "<token>" || c.ServerURL != host {
			t.Fatalf("get: %s %v", out, err)
		}
		return c.Secret
	}
	if s := get(); s != "berth_st_1" {
		t.Fatalf("first get: %s", s)
	}
	fi, err := os.Stat(h.Paths.cacheFile(host))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("cache file: %v %v", err, fi)
	}
	if di, err := os.Stat(h.Paths.CacheDir); err != nil || di.Mode().Perm() != 0o700 {
		t.Fatalf("cache dir: %v %v", err, di)
	}
	now = t0.Add(9*time.Minute + 59*time.Second) // the ID token is long expired; the cache serves
	if s := get(); s != "berth_st_1" {
		t.Fatalf("get at 9m59s: %s, want the cached token", s)
	}
	now = t0.Add(10 * time.Minute) // 5 minutes before the end: renewed from a fresh ID token
	if s := get(); s != "berth_st_2" {
		t.Fatalf("get at 10m: %s, want a renewed token", s)
	}
	// 2 hours of a job asking every minute: renewed every 10 minutes, and
	// never a token past its renewal time.
	for i := 0; i < 120; i++ {
		now = now.Add(time.Minute)
		get()
		e := h.Paths.readCache(host)
		if !now.Before(e.Obtained.Add(10 * time.Minute)) {
			t.Fatalf("at %v the cache holds a token obtained at %v", now, e.Obtained)
		}
	}
	if f.exchanges != 2+12 {
		t.Fatalf("%d exchanges over 2 hours, want 14", f.exchanges)
	}
	// A short lifetime is renewed halfway.
	if got := renewAt(t0, 2*time.Minute); !got.Equal(t0.Add(time.Minute)) {
		t.Fatalf("renewAt 2m: %v", got)
	}
	// Other settings (another provider) do not reuse the cached token.
	if err := h.Login(context.Background(), LoginOptions{Registry: srv.URL, Provider: "gha", Audience: "other", TokenSource: "file:" + tokFile, NoVerify: true}, &out); err != nil {
		t.Fatal(err)
	}
	n := f.exchanges
	get()
	if f.exchanges != n+1 {
		t.Fatal("the cached token of other settings was reused")
	}
	// erase revokes and removes the cached token.
	if code, _ := h.runT(t, "erase", host); code != 0 {
		t.Fatal("erase failed")
	}
	if _, err := os.Stat(h.Paths.cacheFile(host)); !os.IsNotExist(err) || len(f.revoked) != 1 || f.revoked[0] != fmt.Sprintf("berth_st_%d", n+1) {
		t.Fatalf("after erase: %v, revoked %v", err, f.revoked)
	}
}

func TestHelperProtocol(t *testing.T) {
	f := &fakeBerth{ttl: 900}
	srv := httptest.NewServer(f)
	defer srv.Close()
	now := t0
	tokFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokFile, []byte(jwt(t0.Add(time.Minute), "x")), 0o600); err != nil {
		t.Fatal(err)
	}
	h := newHelper(t, &now, map[string]string{})
	host := strings.TrimPrefix(srv.URL, "http://")
	// Unknown registry: the protocol's not-found message, nothing on stderr.
	if code, out := h.runT(t, "get", "registry.example.com"); code != 1 || strings.TrimSpace(out) != notFound || h.Stderr.(*bytes.Buffer).Len() != 0 {
		t.Fatalf("get unknown: %d %q %q", code, out, h.Stderr)
	}
	var out bytes.Buffer
	// Login with the wrong provider fails and changes nothing.
	err := h.Login(context.Background(), LoginOptions{Registry: srv.URL, Provider: "nope", TokenSource: "file:" + tokFile}, &out)
	if err == nil || !strings.Contains(err.Error(), `provider "nope"`) || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("login with a wrong provider: %v", err)
	}
	if _, err := os.Stat(h.Paths.Settings); !os.IsNotExist(err) {
		t.Fatal("a failed login wrote the settings")
	}
	if err := h.Login(context.Background(), LoginOptions{Registry: srv.URL, Provider: "gha", TokenSource: "file:" + tokFile}, &out); err != nil {
		t.Fatal(err)
	}
	if code, out := h.runT(t, "list", ""); code != 0 || strings.TrimSpace(out) != fmt.Sprintf(`{%q:"\u003ctoken\u003e"}`, host) {
		t.Fatalf("list: %d %s", code, out)
	}
	code, stdout := h.runT(t, "store", `{"ServerURL":"`+host+`","Username":"alice","Secret":"hunter2"}`)
	if code != 1 || !strings.Contains(stdout, "stores no credentials") || strings.Contains(stdout+h.Stderr.(*bytes.Buffer).String(), "hunter2") {
		t.Fatalf("store: %d %q", code, stdout)
	}
	// The exchange fails once the ID token expired and the cache is gone: a
	// clear message, no token in it.
	h.runT(t, "erase", host)
	now = t0.Add(2 * time.Minute)
	code, stdout = h.runT(t, "get", host)
	if code != 1 || !strings.Contains(stdout, "the ID token expired") || strings.Contains(stdout, "berth_st_") {
		t.Fatalf("get with an expired ID token: %d %q", code, stdout)
	}
	if code, _ := h.runT(t, "frobnicate", ""); code != 2 {
		t.Fatal("unknown action accepted")
	}
}

// TestLoginLogoutFiles: login sets credHelpers in both files and keeps every
// other key; logout puts back the value it replaced, or removes its own.
func TestLoginLogoutFiles(t *testing.T) {
	f := &fakeBerth{ttl: 900}
	srv := httptest.NewServer(f)
	defer srv.Close()
	now := t0
	dir := t.TempDir()
	vars := map[string]string{"DOCKER_CONFIG": filepath.Join(dir, "docker"), "REGISTRY_AUTH_FILE": filepath.Join(dir, "containers", "auth.json")}
	h := newHelper(t, &now, vars)
	host := strings.TrimPrefix(srv.URL, "http://")
	docker := `{"auths":{"a.example":{"auth":"eDp5"}},"credsStore":"desktop","credHelpers":{"` + host + `":"ecr-login","gcr.io":"gcloud"},"proxies":{"default":{"httpProxy":"http://p:3128"}},"n":1.50}`
	writeT(t, h.Paths.DockerConfig, docker, 0o644)
	var out bytes.Buffer
	if err := h.Login(context.Background(), LoginOptions{Registry: srv.URL, Provider: "gha", TokenSource: "file:/nonexistent", NoVerify: true}, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		fmt.Sprintf(`%s: credHelpers[%q] = "berth" (was "ecr-login")`, h.Paths.DockerConfig, host),
		fmt.Sprintf(`%s: credHelpers[%q] = "berth"`, h.Paths.AuthJSON, host),
	} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("login output lacks %q:\n%s", want, out.String())
		}
	}
	wantFile(t, h.Paths.DockerConfig, `{"auths":{"a.example":{"auth":"eDp5"}},"credHelpers":{"`+host+`":"berth","gcr.io":"gcloud"},"credsStore":"desktop","n":1.50,"proxies":{"default":{"httpProxy":"http://p:3128"}}}`, 0o644)
	wantFile(t, h.Paths.AuthJSON, `{"credHelpers":{"`+host+`":"berth"}}`, 0o600)
	if di, err := os.Stat(filepath.Dir(h.Paths.AuthJSON)); err != nil || di.Mode().Perm() != 0o700 {
		t.Fatalf("auth.json dir: %v %v", err, di)
	}
	// A second login changes nothing and logout still restores ecr-login.
	out.Reset()
	if err := h.Login(context.Background(), LoginOptions{Registry: host, Provider: "gha", TokenSource: "file:/nonexistent", NoVerify: true}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "is already") {
		t.Fatalf("second login:\n%s", out.String())
	}
	out.Reset()
	if err := h.Logout(context.Background(), host, &out); err != nil {
		t.Fatal(err)
	}
	wantFile(t, h.Paths.DockerConfig, `{"auths":{"a.example":{"auth":"eDp5"}},"credHelpers":{"`+host+`":"ecr-login","gcr.io":"gcloud"},"credsStore":"desktop","n":1.50,"proxies":{"default":{"httpProxy":"http://p:3128"}}}`, 0o644)
	wantFile(t, h.Paths.AuthJSON, `{}`, 0o600)
	if !strings.Contains(out.String(), `= "ecr-login" again`) || !strings.Contains(out.String(), "removed credHelpers") {
		t.Fatalf("logout output:\n%s", out.String())
	}
	if err := h.Logout(context.Background(), host, &out); err == nil || !strings.Contains(err.Error(), "not logged in") {
		t.Fatalf("second logout: %v", err)
	}
	// A file that is not JSON is refused, not overwritten.
	writeT(t, h.Paths.DockerConfig, "{not json", 0o600)
	err := h.Login(context.Background(), LoginOptions{Registry: host, Provider: "gha", TokenSource: "file:/x", NoVerify: true}, &out)
	if err == nil || !strings.Contains(err.Error(), "not a JSON object") {
		t.Fatalf("login over a broken config.json: %v", err)
	}
	wantFile(t, h.Paths.DockerConfig, "{not json", 0o600)
}

func TestDefaultPaths(t *testing.T) {
	p, err := DefaultPaths(func(k string) string { return map[string]string{"HOME": "/h", "XDG_RUNTIME_DIR": "/run/user/1"}[k] })
	if err != nil {
		t.Fatal(err)
	}
	want := Paths{Settings: "/h/.config/berth/credential-helper.json", CacheDir: "/h/.cache/berth/credentials",
		DockerConfig: "/h/.docker/config.json", AuthJSON: "/run/user/1/containers/auth.json"}
	if p != want {
		t.Fatalf("%+v\nwant %+v", p, want)
	}
	p, _ = DefaultPaths(func(k string) string { return map[string]string{"HOME": "/h", "XDG_CONFIG_HOME": "/c"}[k] })
	if p.AuthJSON != "/c/containers/auth.json" || p.Settings != "/c/berth/credential-helper.json" {
		t.Fatalf("%+v", p)
	}
	if _, err := DefaultPaths(func(string) string { return "" }); err == nil {
		t.Fatal("no HOME accepted")
	}
}

func TestRegistryHost(t *testing.T) {
	for in, want := range map[string]string{
		"registry.example.com":             "https://registry.example.com",
		"Registry.Example.com:5000":        "https://registry.example.com:5000",
		"http://127.0.0.1:5000":            "http://127.0.0.1:5000",
		"https://registry.example.com/v2/": "https://registry.example.com",
		" registry.example.com\n":          "https://registry.example.com",
	} {
		_, u, err := RegistryHost(in)
		if err != nil || u.String() != want {
			t.Errorf("RegistryHost(%q) = %v, %v; want %s", in, u, err, want)
		}
	}
	for _, bad := range []string{"", "ftp://x", "https://u:p@x", "a b", "x;rm"} {
		if _, _, err := RegistryHost(bad); err == nil {
			t.Errorf("RegistryHost(%q) accepted", bad)
		}
	}
}

func writeT(t *testing.T, path, s string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(s), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func wantFile(t *testing.T, path, want string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	if json.Valid(b) {
		var c bytes.Buffer
		_ = json.Compact(&c, b)
		got = c.String()
	}
	if got != want {
		t.Fatalf("%s:\n%s\nwant\n%s", path, got, want)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != mode {
		t.Fatalf("%s: mode %v, want %v", path, fi.Mode().Perm(), mode)
	}
}
