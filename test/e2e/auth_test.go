package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/crypto/bcrypt"

	"github.com/berth-registry/berth/internal/devissuer"
)

// authBerth starts berth with one generic OIDC provider "ci" trusting iss,
// and a static user alice/secret.
func authBerth(t *testing.T, iss *devissuer.Issuer, extra string) *berthProc {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`
[auth.oidc.ci]
provider = "generic"
issuer = %q
audiences = ["berth"]
clock_skew = "1s"
%s
[auth.identity.alice]
username = "alice"
password = %q

[global.access_policy]
default_allow = false
rules = ['identity.id != "anonymous"']
`, iss.URL(), extra, string(hash))
	return startBerthWith(t, t.TempDir(), cfg)
}

func newIssuer(t testing.TB) *devissuer.Issuer {
	t.Helper()
	iss, err := devissuer.New(devissuer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(iss.Close)
	return iss
}

func ciToken(iss *devissuer.Issuer, ttl time.Duration) string {
	now := time.Now()
	return iss.Mint(map[string]any{"sub": "repo:myorg/api:ref:refs/heads/main", "aud": "berth",
		"repository": "myorg/api", "iat": now.Unix(), "exp": now.Add(ttl).Unix()})
}

// pushPull pushes a random image with the authenticator and pulls it back.
func pushPull(t *testing.T, p *berthProc, repo string, a authn.Authenticator) error {
	t.Helper()
	ref, err := name.ParseReference(p.host()+"/"+repo+":v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuth(a)); err != nil {
		return fmt.Errorf("push: %w", err)
	}
	got, err := remote.Image(ref, remote.WithAuth(a))
	if err != nil {
		return fmt.Errorf("pull: %w", err)
	}
	want, _ := img.Digest()
	gd, err := got.Digest()
	if err != nil || gd != want {
		return fmt.Errorf("pulled %v (%v), want %v", gd, err, want)
	}
	return nil
}

func TestAuthLoginPaths(t *testing.T) {
	iss := newIssuer(t)
	p := authBerth(t, iss, "")
	idTok := ciToken(iss, 10*time.Minute)

	// Anonymous: 401 with a Bearer challenge on the registry's own host:port.
	resp, body := doReq(t, "GET", p.url("/v2/"), nil, nil)
	wantStatus(t, "anonymous ping", resp, body, http.StatusUnauthorized)
	ch := resp.Header.Get("WWW-Authenticate")
	if want := `Bearer realm="http://` + p.host() + `/token",service="berth"`; ch != want {
		t.Fatalf("challenge %q, want %q", ch, want)
	}

	// 1. docker login -u <provider> with the ID token, through the token service.
	if err := pushPull(t, p, "myorg/api", &authn.Basic{Username: "ci", Password: idTok}); err != nil {
		t.Fatalf("provider + ID token: %v", err)
	}
	// Static user.
	if err := pushPull(t, p, "team/tool", &authn.Basic{Username: "alice", Password: "secret"}); err != nil {
		t.Fatalf("static user: %v", err)
	}
	// 2. Raw Bearer ID token on /v2.
	resp, body = doReq(t, "GET", p.url("/v2/myorg/api/manifests/v1"), nil, map[string]string{"Authorization": "Bearer " + idTok})
	wantStatus(t, "bearer ID token", resp, body, http.StatusOK)

	refused := []struct {
		name string
		a    authn.Authenticator
	}{
		{"ID token with a static user's name", &authn.Basic{Username: "alice", Password: idTok}},
		{"wrong password", &authn.Basic{Username: "alice", Password: "nope"}},
		{"token of an unconfigured issuer", &authn.Basic{Username: "ci", Password: ciToken(newIssuer(t), time.Minute)}},
		{"wrong audience", &authn.Basic{Username: "ci", Password: iss.Mint(map[string]any{"sub": "x", "aud": "other"})}},
		{"anonymous", authn.Anonymous},
	}
	for _, c := range refused {
		if err := pushPull(t, p, "myorg/api", c.a); err == nil {
			t.Errorf("%s: push accepted", c.name)
		}
	}

	// The token service refuses bad credentials even without a scope (else
	// docker login "succeeds" with garbage).
	req, _ := http.NewRequest("GET", p.url("/token?service=berth"), nil)
	req.SetBasicAuth("ci", "garbage")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("token service with garbage: %d", res.StatusCode)
	}
}

// TestAuthRefreshOutlivesIDToken: a client that logged in with an ID token
// and asked for offline access keeps pushing after the ID token expired, as
// `docker login` + a long `docker push` in a CI job does.
func TestAuthRefreshOutlivesIDToken(t *testing.T) {
	iss := newIssuer(t)
	p := authBerth(t, iss, "")
	idTok := ciToken(iss, 3*time.Second)

	req, _ := http.NewRequest("GET", p.url("/token?service=berth&offline_token=true&client_id=test&scope="+
		url.QueryEscape("repository:myorg/api:pull,push")), nil)
	req.SetBasicAuth("ci", idTok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tr struct {
		Token        string `json:"token"`
		AccessToken  string `json:"access_token"`
		ExpiresIn    int    `json:"expires_in"`
		RefreshToken string `json:"refresh_token"`
	}
	err = json.NewDecoder(res.Body).Decode(&tr)
	res.Body.Close()
	if err != nil || res.StatusCode != 200 || tr.RefreshToken == "" || tr.Token == "" || tr.Token != tr.AccessToken || tr.ExpiresIn < 60 {
		t.Fatalf("login: status %d, %+v, %v", res.StatusCode, tr, err)
	}

	time.Sleep(5 * time.Second) // the ID token (3s, 1s skew) is now expired
	if err := pushPull(t, p, "myorg/api", &authn.Basic{Username: "ci", Password: idTok}); err == nil {
		t.Fatal("expired ID token still accepted")
	}
	// ggcr presents the refresh token as an identity token: OAuth2 refresh grant.
	if err := pushPull(t, p, "myorg/api", authn.FromConfig(authn.AuthConfig{IdentityToken: tr.RefreshToken})); err != nil {
		t.Fatalf("push with the refresh token after the ID token expired: %v", err)
	}
}

// TestAuthSessionToken: RFC 8693 exchange of an ID token for a session token
// usable as a docker password, bounded by token_max_uses.
func TestAuthSessionToken(t *testing.T) {
	iss := newIssuer(t)
	p := authBerth(t, iss, "token_max_uses = 3\n")
	form := url.Values{
		"grant_type":           {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token":        {ciToken(iss, time.Minute)},
		"subject_token_type":   {"urn:ietf:params:oauth:token-type:id_token"},
		"requested_token_type": {"urn:berth:token-type:session"},
		"service":              {"berth"},
	}
	res, err := http.PostForm(p.url("/token"), form)
	if err != nil {
		t.Fatal(err)
	}
	var tr struct {
		AccessToken     string `json:"access_token"`
		IssuedTokenType string `json:"issued_token_type"`
	}
	err = json.NewDecoder(res.Body).Decode(&tr)
	res.Body.Close()
	if err != nil || res.StatusCode != 200 || !strings.HasPrefix(tr.AccessToken, "berth_st_") {
		t.Fatalf("exchange: %d %+v %v", res.StatusCode, tr, err)
	}
	// Three uses as a Basic password on /v2 work; the fourth is refused.
	for i := 1; i <= 4; i++ {
		req, _ := http.NewRequest("GET", p.url("/v2/_catalog"), nil)
		req.SetBasicAuth("anything", tr.AccessToken)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		want := http.StatusOK
		if i == 4 {
			want = http.StatusUnauthorized
		}
		if res.StatusCode != want {
			t.Fatalf("use %d: status %d, want %d", i, res.StatusCode, want)
		}
	}
}

// After max_failures refused credentials from one address, berth answers 429
// with Retry-After on /v2 and on the token service — even to good credentials —
// instead of checking passwords at the caller's pace.
func TestAuthFailedAttemptsRateLimited(t *testing.T) {
	iss := newIssuer(t)
	p := authBerth(t, iss, "\n[auth.rate_limit]\nmax_failures = 3\nwindow = \"1h\"\n")
	get := func(path, user, pass string) (*http.Response, []byte) {
		req, _ := http.NewRequest("GET", p.url(path), nil)
		req.SetBasicAuth(user, pass)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res, body
	}
	if res, body := get("/v2/", "alice", "secret"); res.StatusCode != 200 {
		t.Fatalf("good password: %d %s", res.StatusCode, body)
	}
	for i := range 3 {
		if res, body := get("/v2/", "alice", "guess"); res.StatusCode != 401 {
			t.Fatalf("failure %d: %d %s", i+1, res.StatusCode, body)
		}
	}
	for _, path := range []string{"/v2/", "/token?service=berth&scope=repository:a:pull"} {
		res, body := get(path, "alice", "secret")
		if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" ||
			!strings.Contains(string(body), "TOOMANYREQUESTS") {
			t.Fatalf("%s over the limit: %d Retry-After=%q %s", path, res.StatusCode, res.Header.Get("Retry-After"), body)
		}
	}
	// Anonymous requests are not credential checks and are not limited.
	res, err := http.Get(p.url("/v2/"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous: %d", res.StatusCode)
	}
}

// Behind a trusted proxy the forwarded client address is the one limited
// and the forwarded scheme is the token realm's; from any other peer the
// headers are ignored.
func TestAuthBehindTrustedProxy(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	users := fmt.Sprintf("\n[auth.rate_limit]\nmax_failures = 2\nwindow = \"1h\"\n[auth.identity.alice]\nusername = \"alice\"\npassword = %q\n[global.access_policy]\nrules = ['identity.id != \"anonymous\"']\n", hash)
	get := func(p *berthProc, xff, xfp, pass string) *http.Response {
		req, _ := http.NewRequest("GET", p.url("/v2/"), nil)
		if pass != "" {
			req.SetBasicAuth("alice", pass)
		}
		req.Header.Set("X-Forwarded-For", xff)
		req.Header.Set("X-Forwarded-Proto", xfp)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}

	proxied := startBerthServer(t, t.TempDir(), `trusted_proxies = ["127.0.0.1"]`, users)
	if res := get(proxied, "192.0.2.1", "https", ""); !strings.Contains(res.Header.Get("WWW-Authenticate"), `realm="https://`) {
		t.Fatalf("challenge behind a TLS-terminating proxy: %q", res.Header.Get("WWW-Authenticate"))
	}
	for range 2 {
		if res := get(proxied, "192.0.2.1", "https", "guess"); res.StatusCode != 401 {
			t.Fatalf("bad password: %d", res.StatusCode)
		}
	}
	if res := get(proxied, "192.0.2.1", "https", "secret"); res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("forwarded client over the limit: %d", res.StatusCode)
	}
	if res := get(proxied, "192.0.2.2", "https", "secret"); res.StatusCode != 200 {
		t.Fatalf("another forwarded client: %d", res.StatusCode)
	}

	// Not a trusted proxy: the headers change nothing, the peer is limited.
	direct := startBerthWith(t, t.TempDir(), users)
	if res := get(direct, "192.0.2.1", "https", ""); !strings.Contains(res.Header.Get("WWW-Authenticate"), `realm="http://`) {
		t.Fatalf("spoofed X-Forwarded-Proto was believed: %q", res.Header.Get("WWW-Authenticate"))
	}
	get(direct, "192.0.2.1", "", "guess")
	get(direct, "192.0.2.2", "", "guess")
	if res := get(direct, "192.0.2.3", "", "secret"); res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("spoofed X-Forwarded-For escaped the limit: %d", res.StatusCode)
	}
}

// TestAuthRateLimitEveryPath: every grant of the token service and every kind
// of /v2 credential counts the credentials it refuses, and from an address
// over [auth.rate_limit] answers 429 with Retry-After even to good
// credentials. Each case comes from its own forwarded client address.
func TestAuthRateLimitEveryPath(t *testing.T) {
	iss := newIssuer(t)
	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	p := startBerthServer(t, t.TempDir(), `trusted_proxies = ["127.0.0.1"]`, fmt.Sprintf(`
[auth.oidc.ci]
provider = "generic"
issuer = %q
audiences = ["berth"]
[auth.identity.alice]
username = "alice"
password = %q
[auth.rate_limit]
max_failures = 3
window = "1h"
[global.access_policy]
rules = ['identity.id != "anonymous"']
`, iss.URL(), string(hash)))
	idTok := ciToken(iss, 30*time.Minute)
	forged := "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln"
	type call struct {
		method, path string
		form         url.Values
		hdr          map[string]string
	}
	do := func(ip string, c call) (*http.Response, []byte) {
		t.Helper()
		hdr := map[string]string{"X-Forwarded-For": ip}
		for k, v := range c.hdr {
			hdr[k] = v
		}
		var body io.Reader
		if c.form != nil {
			body = strings.NewReader(c.form.Encode())
			hdr["Content-Type"] = "application/x-www-form-urlencoded"
		}
		return doReq(t, c.method, p.url(c.path), body, hdr)
	}
	token := func(ip string, c call) map[string]any {
		t.Helper()
		res, body := do(ip, c)
		wantStatus(t, "setup", res, body, http.StatusOK)
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	post := func(kv ...string) call {
		f := url.Values{"service": {"berth"}, "scope": {"repository:a/b:pull"}}
		for i := 0; i+1 < len(kv); i += 2 {
			f.Set(kv[i], kv[i+1])
		}
		return call{method: "POST", path: "/token", form: f}
	}
	basicHdr := func(u, pw string) map[string]string { return polBasic(u, pw) }
	bearer := func(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }
	const exchange, jwtBearer, idType = "urn:ietf:params:oauth:grant-type:token-exchange",
		"urn:ietf:params:oauth:grant-type:jwt-bearer", "urn:ietf:params:oauth:token-type:id_token"
	getToken := "/token?service=berth&scope=repository:a/b:pull"

	cases := []struct {
		name      string
		good, bad func(setup map[string]any) call
		setup     *call // run from a clean address first
		oauth     bool  // the token service (OAuth2 error body) rather than /v2 (OCI)
	}{
		{name: "token GET with Basic", oauth: true,
			good: func(map[string]any) call {
				return call{method: "GET", path: getToken, hdr: basicHdr("alice", "secret")}
			},
			bad: func(map[string]any) call { return call{method: "GET", path: getToken, hdr: basicHdr("alice", "guess")} }},
		{name: "token GET with a provider login", oauth: true,
			good: func(map[string]any) call { return call{method: "GET", path: getToken, hdr: basicHdr("ci", idTok)} },
			bad:  func(map[string]any) call { return call{method: "GET", path: getToken, hdr: basicHdr("ci", forged)} }},
		{name: "password grant", oauth: true,
			good: func(map[string]any) call {
				return post("grant_type", "password", "username", "alice", "password", "secret")
			},
			bad: func(map[string]any) call {
				return post("grant_type", "password", "username", "alice", "password", "guess")
			}},
		{name: "refresh_token grant", oauth: true,
			setup: &call{method: "GET", path: getToken + "&offline_token=true", hdr: basicHdr("alice", "secret")},
			good: func(s map[string]any) call {
				return post("grant_type", "refresh_token", "refresh_token", s["refresh_token"].(string))
			},
			bad: func(map[string]any) call {
				return post("grant_type", "refresh_token", "refresh_token", "berth_rt_aaaaaaaaaaaaaaaaaaaa_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb")
			}},
		{name: "token exchange", oauth: true,
			good: func(map[string]any) call {
				return post("grant_type", exchange, "subject_token", idTok, "subject_token_type", idType)
			},
			bad: func(map[string]any) call {
				return post("grant_type", exchange, "subject_token", forged, "subject_token_type", idType)
			}},
		{name: "jwt-bearer grant", oauth: true,
			good: func(map[string]any) call { return post("grant_type", jwtBearer, "assertion", idTok) },
			bad:  func(map[string]any) call { return post("grant_type", jwtBearer, "assertion", forged) }},
		{name: "/v2 Basic",
			good: func(map[string]any) call {
				return call{method: "GET", path: "/v2/a/b/tags/list", hdr: basicHdr("alice", "secret")}
			},
			bad: func(map[string]any) call {
				return call{method: "GET", path: "/v2/a/b/tags/list", hdr: basicHdr("alice", "guess")}
			}},
		{name: "/v2 Bearer ID token",
			good: func(map[string]any) call { return call{method: "GET", path: "/v2/a/b/tags/list", hdr: bearer(idTok)} },
			bad:  func(map[string]any) call { return call{method: "GET", path: "/v2/a/b/tags/list", hdr: bearer(forged)} }},
		{name: "/v2 Bearer registry token",
			setup: &call{method: "GET", path: getToken, hdr: basicHdr("alice", "secret")},
			good: func(s map[string]any) call {
				return call{method: "GET", path: "/v2/a/b/tags/list", hdr: bearer(s["token"].(string))}
			},
			bad: func(s map[string]any) call {
				return call{method: "GET", path: "/v2/a/b/tags/list", hdr: bearer(s["token"].(string) + "x")}
			}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ip := fmt.Sprintf("198.51.100.%d", i+1)
			var setup map[string]any
			if tc.setup != nil {
				setup = token(fmt.Sprintf("203.0.113.%d", i+1), *tc.setup)
			}
			okStatus := func(res *http.Response) bool { return res.StatusCode == 200 || res.StatusCode == 404 }
			// Good credentials work (and are remembered where /v2 remembers them).
			if res, body := do(ip, tc.good(setup)); !okStatus(res) {
				t.Fatalf("good credentials: %d %s", res.StatusCode, body)
			}
			for n := range 3 {
				if res, body := do(ip, tc.bad(setup)); res.StatusCode != 400 && res.StatusCode != 401 {
					t.Fatalf("refusal %d: %d %s", n+1, res.StatusCode, body)
				}
			}
			res, body := do(ip, tc.good(setup))
			if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" {
				t.Fatalf("good credentials over the limit: %d Retry-After=%q %s", res.StatusCode, res.Header.Get("Retry-After"), truncate(body, 120))
			}
			var e struct {
				Error  string                           `json:"error"`
				Errors []struct{ Code, Message string } `json:"errors"`
			}
			if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) != 1 || e.Errors[0].Code != "TOOMANYREQUESTS" ||
				(tc.oauth && e.Error != "slow_down") {
				t.Errorf("429 body %s", body)
			}
			// Other addresses are not affected.
			if res, body := do(fmt.Sprintf("198.51.100.%d", 100+i), tc.good(setup)); !okStatus(res) {
				t.Errorf("another address: %d %s", res.StatusCode, body)
			}
		})
	}
}
