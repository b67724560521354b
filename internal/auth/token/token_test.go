package token

import (
	"context"
	"net/http"
	"net/netip"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-registry/berth/internal/auth"
)

func TestGetWithBasic(t *testing.T) {
	f := newFixture(t, nil)
	r := f.get("service=berth&scope=repository:alice/app:pull,push&scope=repository:bob/x:pull&client_id=docker&account=alice", "alice", testPassword)
	wantStatus(t, r, 200)
	if r.str("token") == "" || r.str("token") != r.str("access_token") {
		t.Fatalf("token and access_token must be equal and set: %s", r.raw)
	}
	if exp, _ := r.body["expires_in"].(float64); exp < 60 || exp != 300 {
		t.Errorf("expires_in = %v, want 300", r.body["expires_in"])
	}
	if ts, err := time.Parse(time.RFC3339, r.str("issued_at")); err != nil || !ts.Equal(f.clock.Now()) {
		t.Errorf("issued_at = %q (%v)", r.str("issued_at"), err)
	}
	if _, ok := r.body["refresh_token"]; ok {
		t.Error("refresh_token without offline_token")
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q", cc)
	}
	id := f.verify(r.str("token"))
	want := []auth.Access{{Type: "repository", Name: "alice/app", Actions: []string{"pull", "push"}}}
	if id.ID != "user:alice" || id.Username != "alice" || !reflect.DeepEqual(id.Access, want) || id.OIDC != nil {
		t.Errorf("identity = %+v", id)
	}
	// No scope: a token that grants nothing, with a non-nil Access.
	r = f.get("service=berth", "alice", testPassword)
	wantStatus(t, r, 200)
	if id := f.verify(r.str("token")); id.Access == nil || len(id.Access) != 0 {
		t.Errorf("Access = %#v, want empty non-nil", id.Access)
	}
	// An empty service parameter is what ggcr sends without one in the challenge.
	wantStatus(t, f.get("service=&scope=repository:alice/app:pull", "alice", testPassword), 200)
}

func TestGrantIntersection(t *testing.T) {
	f := newFixture(t, nil)
	q := url.Values{"service": {"berth"}, "scope": {
		"repository:localhost:5000/alice/app:pull,delete",
		"repository:alice/app:pull repository:alice/app:push registry:catalog:*",
		"repository:public/x:pull,push",
	}}
	r := f.get(q.Encode(), "alice", testPassword)
	wantStatus(t, r, 200)
	want := []auth.Access{
		{Type: "repository", Name: "localhost:5000/alice/app", Actions: []string{"pull"}},
		{Type: "repository", Name: "alice/app", Actions: []string{"pull", "push"}},
		{Type: "repository", Name: "public/x", Actions: []string{"pull"}},
	}
	if got := f.verify(r.str("token")).Access; !reflect.DeepEqual(got, want) {
		t.Errorf("granted %+v\nwant %+v", got, want)
	}
}

func TestRefusals(t *testing.T) {
	f := newFixture(t, nil)
	for _, tc := range []struct {
		name       string
		req        func() response
		status     int
		code, ocis string
	}{
		{"bad password, no scope", func() response { return f.get("service=berth", "alice", "garbage") }, 401, "invalid_client", "UNAUTHORIZED"},
		{"unknown user", func() response { return f.get("service=berth&scope=repository:a:pull", "mallory", "x") }, 401, "invalid_client", "UNAUTHORIZED"},
		{"only a username", func() response { return f.get("", "alice", "") }, 401, "invalid_client", "UNAUTHORIZED"},
		{"bearer header", func() response {
			req, _ := http.NewRequest("GET", f.srv.URL+"/token", nil)
			req.Header.Set("Authorization", "Bearer x")
			return f.do(req)
		}, 401, "invalid_client", "UNAUTHORIZED"},
		{"idp down", func() response { return f.get("service=berth", "down", "x") }, 503, "temporarily_unavailable", "UNAVAILABLE"},
		{"wrong service", func() response { return f.get("service=other", "alice", testPassword) }, 400, "invalid_request", "DENIED"},
		{"bad scope", func() response { return f.get("scope=repository:nope", "alice", testPassword) }, 400, "invalid_scope", "DENIED"},
		{"PUT", func() response {
			req, _ := http.NewRequest("PUT", f.srv.URL+"/token", nil)
			return f.do(req)
		}, 405, "invalid_request", "UNSUPPORTED"},
		{"password grant, bad password", func() response {
			return f.post("/token", url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"x"}})
		}, 400, "invalid_grant", "DENIED"},
		{"password grant, no password", func() response {
			return f.post("/token", url.Values{"grant_type": {"password"}, "username": {"alice"}})
		}, 400, "invalid_request", "DENIED"},
		{"unknown grant", func() response { return f.post("/token", url.Values{"grant_type": {"client_credentials"}}) }, 400, "unsupported_grant_type", "DENIED"},
		{"no grant", func() response { return f.post("/token", url.Values{"scope": {"x"}}) }, 400, "invalid_request", "DENIED"},
		{"repeated grant", func() response { return f.post("/token", url.Values{"grant_type": {"password", "password"}}) }, 400, "invalid_request", "DENIED"},
		{"bad refresh token", func() response {
			return f.post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"berth_rt_nope"}})
		}, 400, "invalid_grant", "DENIED"},
		{"json body", func() response {
			req, _ := http.NewRequest("POST", f.srv.URL+"/token", strings.NewReader(`{"grant_type":"password"}`))
			req.Header.Set("Content-Type", "application/json")
			return f.do(req)
		}, 400, "invalid_request", "DENIED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.req()
			wantStatus(t, r, tc.status)
			if r.str("error") != tc.code {
				t.Errorf("error = %q, want %q", r.str("error"), tc.code)
			}
			errs, _ := r.body["errors"].([]any)
			if len(errs) != 1 || errs[0].(map[string]any)["code"] != tc.ocis {
				t.Errorf("errors = %v, want code %s", r.body["errors"], tc.ocis)
			}
			if tc.status == 401 && r.header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			if r.str("token") != "" || r.str("access_token") != "" {
				t.Error("refusal carries a token")
			}
		})
	}
}

func TestAnonymous(t *testing.T) {
	f := newFixture(t, nil)
	for _, user := range []string{"", ":"} { // no header; Basic with empty user and password
		var r response
		if user == "" {
			r = f.get("service=berth&offline_token=true&scope=repository:public/x:pull,push&scope=repository:alice/app:pull", "", "")
		} else {
			req, _ := http.NewRequest("GET", f.srv.URL+"/token?scope=repository:public/x:pull&offline_token=true", nil)
			req.SetBasicAuth("", "")
			r = f.do(req)
		}
		wantStatus(t, r, 200)
		if _, ok := r.body["refresh_token"]; ok {
			t.Error("anonymous got a refresh token")
		}
		id := f.verify(r.str("token"))
		want := []auth.Access{{Type: "repository", Name: "public/x", Actions: []string{"pull"}}}
		if !id.IsAnonymous() || !reflect.DeepEqual(id.Access, want) {
			t.Errorf("anonymous identity %+v", id)
		}
	}
}

func TestNilCallbacks(t *testing.T) {
	f := newFixture(t, func(f *fixture) {
		f.opts.Authenticate, f.opts.VerifyIDToken, f.opts.Grant, f.opts.LimitsFor = nil, nil, nil, nil
	})
	wantStatus(t, f.get("", "alice", testPassword), 401)
	r := f.get("scope=repository:public/x:pull", "", "")
	wantStatus(t, r, 200)
	if len(f.verify(r.str("token")).Access) != 0 {
		t.Error("nil Grant granted something")
	}
	r = f.post("/token", url.Values{"grant_type": {GrantJWTBearer}, "assertion": {testIDToken}})
	wantStatus(t, r, 400)
	if r.str("error") != "unsupported_grant_type" {
		t.Errorf("error %q", r.str("error"))
	}
}

func TestOfflineTokenAndRefresh(t *testing.T) {
	f := newFixture(t, func(f *fixture) { f.limits = Limits{TTL: 20 * time.Minute, MaxTTL: time.Hour} })
	r := f.get("service=berth&offline_token=true&client_id=docker", "alice", testPassword)
	wantStatus(t, r, 200)
	rt := r.str("refresh_token")
	if !strings.HasPrefix(rt, RefreshPrefix) {
		t.Fatalf("refresh_token = %q", rt)
	}
	first := r.str("token")

	// 15 minutes later: the password (like an ID token) has expired, and so
	// has the first access token; the refresh token still works.
	f.clock.Advance(15 * time.Minute)
	wantStatus(t, f.get("service=berth", "alice", testPassword), 401)
	if _, err := f.svc.VerifyAccessToken(context.Background(), first); !isInvalid(err) {
		t.Errorf("expired access token accepted: %v", err)
	}
	refresh := func() response {
		return f.post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt},
			"service": {"berth"}, "client_id": {"ggcr"}, "scope": {"repository:alice/app:push repository:bob/x:pull"}})
	}
	r = refresh()
	wantStatus(t, r, 200)
	if r.str("refresh_token") != "" {
		t.Error("refresh grant minted another refresh token")
	}
	if r.str("scope") != "repository:alice/app:push" || r.str("token_type") != "Bearer" {
		t.Errorf("scope %q token_type %q", r.str("scope"), r.str("token_type"))
	}
	id := f.verify(r.str("access_token"))
	if id.ID != "user:alice" || !auth.Allows(id.Access, "repository", "alice/app", "push") || len(id.Access) != 1 {
		t.Errorf("refreshed identity %+v", id)
	}
	// Used within TTL: renewed. Idle longer than TTL: dead.
	f.clock.Advance(19 * time.Minute)
	wantStatus(t, refresh(), 200)
	f.clock.Advance(21 * time.Minute)
	wantStatus(t, refresh(), 400)

	// MaxTTL caps renewals.
	f.credExpires = f.clock.Now().Add(time.Hour)
	rt = f.get("offline_token=true", "alice", testPassword).str("refresh_token")
	for range 3 {
		f.clock.Advance(19 * time.Minute)
		wantStatus(t, refresh(), 200)
	}
	f.clock.Advance(4 * time.Minute) // 61 minutes after issuance
	r = refresh()
	wantStatus(t, r, 400)
	if !strings.Contains(r.str("error_description"), "expired") {
		t.Errorf("description %q", r.str("error_description"))
	}
}

func TestPasswordGrant(t *testing.T) {
	f := newFixture(t, nil)
	r := f.post("/token", url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {testPassword},
		"access_type": {"offline"}, "client_id": {"podman"}, "service": {"berth"},
		"scope": {"repository:alice/app:pull", "repository:alice/b:push"}})
	wantStatus(t, r, 200)
	if !strings.HasPrefix(r.str("refresh_token"), RefreshPrefix) || r.str("token") != r.str("access_token") {
		t.Fatalf("answer %s", r.raw)
	}
	if r.str("scope") != "repository:alice/app:pull repository:alice/b:push" {
		t.Errorf("scope %q", r.str("scope"))
	}
	if f.verify(r.str("token")).ID != "user:alice" {
		t.Error("wrong identity")
	}
}

func TestTokenExchangeSession(t *testing.T) {
	f := newFixture(t, func(f *fixture) { f.limits = Limits{TTL: 10 * time.Minute, MaxTTL: time.Hour} })
	r := f.post("/token", url.Values{"grant_type": {GrantTokenExchange}, "subject_token": {testIDToken},
		"subject_token_type": {TokenTypeIDToken}, "requested_token_type": {TokenTypeSession}, "audience": {"berth"}})
	wantStatus(t, r, 200)
	st := r.str("access_token")
	if !strings.HasPrefix(st, SessionPrefix) || r.str("issued_token_type") != TokenTypeSession || r.str("token_type") != "N_A" || r.str("token") != "" {
		t.Fatalf("answer %s", r.raw)
	}
	if r.body["expires_in"].(float64) != 600 {
		t.Errorf("expires_in %v", r.body["expires_in"])
	}
	// The ID token expires; the session token lives on.
	f.clock.Advance(5 * time.Minute)
	id, err := f.svc.VerifySessionToken(context.Background(), st, "10.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	want := oidcIdentity()
	want.ClientIP = "10.0.0.1"
	if !reflect.DeepEqual(id, want) {
		t.Errorf("session identity %+v\nwant %+v", id, want)
	}
	// As a docker password: a token, but never a refresh token.
	r = f.get("service=berth&offline_token=true&scope=repository:org/app:push", "ci", st)
	wantStatus(t, r, 200)
	if r.str("refresh_token") != "" {
		t.Error("refresh token minted from a session token")
	}
	got := f.verify(r.str("token"))
	if got.ID != want.ID || got.OIDC == nil || got.OIDC.Claims["run_number"] != float64(42) || !auth.Allows(got.Access, "repository", "org/app", "push") {
		t.Errorf("identity from session token %+v", got)
	}
	// The password grant with a session token: same rule.
	r = f.post("/token", url.Values{"grant_type": {"password"}, "username": {"ci"}, "password": {st}, "access_type": {"offline"}})
	wantStatus(t, r, 200)
	if r.str("refresh_token") != "" {
		t.Error("refresh token minted from a session token (password grant)")
	}
}

func TestTokenExchangeAccess(t *testing.T) {
	f := newFixture(t, nil)
	base := url.Values{"grant_type": {GrantTokenExchange}, "subject_token": {testIDToken},
		"subject_token_type": {TokenTypeJWT}, "scope": {"repository:org/app:pull,push"}}
	r := f.post("/token", base)
	wantStatus(t, r, 200)
	if r.str("issued_token_type") != TokenTypeAccessToken || r.str("refresh_token") != "" {
		t.Errorf("answer %s", r.raw)
	}
	if id := f.verify(r.str("access_token")); id.OIDC == nil || id.OIDC.ProviderName != "github" || len(id.Groups) != 1 {
		t.Errorf("identity %+v", id)
	}
	with := func(k, v string) url.Values {
		c := url.Values{}
		for k, v := range base {
			c[k] = v
		}
		if v == "" {
			c.Del(k)
		} else {
			c.Set(k, v)
		}
		return c
	}
	for _, tc := range []struct {
		form   url.Values
		status int
		code   string
	}{
		{with("access_type", "offline"), 200, ""},
		{with("subject_token", "forged"), 400, "invalid_grant"},
		{with("subject_token", "down"), 503, "temporarily_unavailable"},
		{with("subject_token", ""), 400, "invalid_request"},
		{with("subject_token_type", TokenTypeAccessToken), 400, "invalid_request"},
		{with("subject_token_type", ""), 400, "invalid_request"},
		{with("requested_token_type", "urn:ietf:params:oauth:token-type:saml2"), 400, "invalid_request"},
		{with("audience", "elsewhere"), 400, "invalid_target"},
		{with("actor_token", "x"), 400, "invalid_request"},
		{with("subject_token", "huge"), 400, "invalid_request"},
	} {
		r := f.post("/token", tc.form)
		if r.status != tc.status || r.str("error") != tc.code {
			t.Errorf("%v: %d %s", tc.form, r.status, r.raw)
		}
		if tc.form.Get("access_type") == "offline" && !strings.HasPrefix(r.str("refresh_token"), RefreshPrefix) {
			t.Errorf("access_type=offline: no refresh token")
		}
	}
}

func TestJWTBearer(t *testing.T) {
	f := newFixture(t, nil)
	r := f.post("/token", url.Values{"grant_type": {GrantJWTBearer}, "assertion": {testIDToken}, "scope": {"repository:org/app:pull"}})
	wantStatus(t, r, 200)
	id := f.verify(r.str("token"))
	if id.ID != "oidc:github:org/app" || id.OIDC.Claims["repository"] != "org/app" || !auth.Allows(id.Access, "repository", "org/app", "pull") {
		t.Errorf("identity %+v", id)
	}
	r = f.post("/token", url.Values{"grant_type": {GrantJWTBearer}, "assertion": {"forged"}})
	wantStatus(t, r, 400)
	if r.str("error") != "invalid_grant" {
		t.Errorf("error %q", r.str("error"))
	}
}

func TestMaxUses(t *testing.T) {
	f := newFixture(t, func(f *fixture) { f.limits = Limits{MaxUses: 3} })
	st := f.post("/token", url.Values{"grant_type": {GrantTokenExchange}, "subject_token": {testIDToken},
		"subject_token_type": {TokenTypeIDToken}, "requested_token_type": {TokenTypeSession}}).str("access_token")
	ctx := context.Background()
	for i := range 3 {
		if _, err := f.svc.VerifySessionToken(ctx, st, "1.2.3.4"); err != nil {
			t.Fatalf("use %d: %v", i+1, err)
		}
	}
	if _, err := f.svc.VerifySessionToken(ctx, st, "1.2.3.4"); !isInvalid(err) || !strings.Contains(err.Error(), "use limit") {
		t.Fatalf("4th use: %v", err)
	}
	// The same through the refresh grant.
	rt := f.get("offline_token=true", "alice", testPassword).str("refresh_token")
	for i := range 4 {
		r := f.post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
		if want := map[bool]int{true: 200, false: 400}[i < 3]; r.status != want {
			t.Fatalf("use %d: %d %s", i+1, r.status, r.raw)
		}
	}
}

func TestTrustedIPs(t *testing.T) {
	f := newFixture(t, func(f *fixture) {
		f.limits = Limits{TrustedIPs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")}}
		f.opts.ClientIP = func(r *http.Request) string {
			if ip := r.Header.Get("X-Test-Client"); ip != "" {
				return ip
			}
			return remoteIP(r)
		}
	})
	// The ID token is exchanged from a trusted address (from any other it
	// is refused: TestTrustedIPsEveryExchange).
	req := postReq(f, url.Values{"grant_type": {GrantTokenExchange}, "subject_token": {testIDToken},
		"subject_token_type": {TokenTypeIDToken}, "requested_token_type": {TokenTypeSession}})
	req.Header.Set("X-Test-Client", "10.9.9.9")
	st := f.do(req).str("access_token")
	ctx := context.Background()
	for ip, ok := range map[string]bool{
		"10.1.2.3": true, "::ffff:10.1.2.3": true, "2001:db8::1": true,
		"192.168.1.1": false, "11.0.0.1": false, "": false, "garbage": false, "2001:db9::1": false,
	} {
		_, err := f.svc.VerifySessionToken(ctx, st, ip)
		if ok != (err == nil) {
			t.Errorf("from %q: %v", ip, err)
		}
	}
	// httptest clients come from 127.0.0.1: a refresh token is refused.
	rt := f.get("offline_token=true", "alice", testPassword).str("refresh_token")
	r := f.post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
	wantStatus(t, r, 400)
	if !strings.Contains(r.str("error_description"), "client IP") {
		t.Errorf("description %q", r.str("error_description"))
	}
}

func TestRevoke(t *testing.T) {
	f := newFixture(t, nil)
	rt := f.get("offline_token=true", "alice", testPassword).str("refresh_token")
	st := f.post("/token", url.Values{"grant_type": {GrantTokenExchange}, "subject_token": {testIDToken},
		"subject_token_type": {TokenTypeIDToken}, "requested_token_type": {TokenTypeSession}}).str("access_token")
	for _, tok := range []string{rt, st, rt, "berth_rt_garbage", "not-a-token", rt[:len(rt)-1] + "a"} {
		wantStatus(t, f.post("/token/revoke", url.Values{"token": {tok}, "token_type_hint": {"refresh_token"}}), 200)
	}
	wantStatus(t, f.post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}), 400)
	if _, err := f.svc.VerifySessionToken(context.Background(), st, "1.2.3.4"); !isInvalid(err) || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("revoked session token: %v", err)
	}
	wantStatus(t, f.post("/token/revoke", url.Values{}), 400)
	req, _ := http.NewRequest("GET", f.srv.URL+"/token/revoke?token="+rt, nil)
	wantStatus(t, f.do(req), 405)
}

func TestOpaqueTokenTampering(t *testing.T) {
	f := newFixture(t, nil)
	rt := f.get("offline_token=true", "alice", testPassword).str("refresh_token")
	ctx := context.Background()
	id, secret, _ := strings.Cut(strings.TrimPrefix(rt, RefreshPrefix), "_")
	for _, bad := range []string{
		"", rt + "a", rt[:len(rt)-1], RefreshPrefix + id + "_" + strings.Repeat("a", len(secret)),
		RefreshPrefix + "../../../../etc/passwd_" + secret, SessionPrefix + id + "_" + secret[:len(secret)-1] + "!",
		strings.ToUpper(rt),
	} {
		if _, err := f.svc.VerifySessionToken(ctx, bad, "1.2.3.4"); !isInvalid(err) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	// The prefix is a label, not part of the secret: both kinds work both ways.
	if _, err := f.svc.VerifySessionToken(ctx, SessionPrefix+id+"_"+secret, "1.2.3.4"); err != nil {
		t.Error(err)
	}
}

func TestStateSurvivesRestartAndPrune(t *testing.T) {
	f := newFixture(t, func(f *fixture) { f.limits = Limits{TTL: time.Hour, MaxUses: 2} })
	rt := f.get("offline_token=true", "alice", testPassword).str("refresh_token")
	if _, err := f.svc.VerifySessionToken(context.Background(), rt, "1.2.3.4"); err != nil {
		t.Fatal(err)
	}
	svc2, err := New(f.opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := svc2.VerifySessionToken(ctx, rt, "1.2.3.4"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc2.VerifySessionToken(ctx, rt, "1.2.3.4"); !isInvalid(err) {
		t.Fatalf("use count lost across restart: %v", err)
	}
	f.clock.Advance(2 * time.Hour)
	if n, err := svc2.Prune(); err != nil || n != 1 {
		t.Errorf("Prune = %d, %v", n, err)
	}
}

func TestMaxUsesConcurrent(t *testing.T) {
	f := newFixture(t, func(f *fixture) { f.limits = Limits{MaxUses: 5} })
	rt := f.get("offline_token=true", "alice", testPassword).str("refresh_token")
	var ok atomic.Int32
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := f.svc.VerifySessionToken(context.Background(), rt, "1.2.3.4"); err == nil {
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 5 {
		t.Fatalf("%d uses succeeded, want exactly 5", ok.Load())
	}
}
