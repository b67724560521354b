package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-registry/berth/internal/auth"
	"github.com/berth-registry/berth/internal/devissuer"
	"github.com/berth-registry/berth/internal/testutil"
)

// newClock is a settable time source shared by an issuer and a verifier.
func newClock() *testutil.Clock { return testutil.NewClock(time.Unix(1_750_000_000, 0)) }

func newIssuer(t testing.TB, o devissuer.Options) *devissuer.Issuer {
	t.Helper()
	iss, err := devissuer.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(iss.Close)
	return iss
}

func newVerifier(t testing.TB, o Options, pcs ...ProviderConfig) *Verifier {
	t.Helper()
	v, _, err := New(pcs, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v
}

// refused checks err is a refusal (sentinel) whose message contains reason
// and never the token.
func refused(t *testing.T, err error, sentinel error, reason, token string) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted, want %q", reason)
	}
	if !errors.Is(err, sentinel) {
		t.Fatalf("err %v is not %v", err, sentinel)
	}
	if !strings.Contains(err.Error(), reason) {
		t.Fatalf("err %q does not contain %q", err, reason)
	}
	if parts := strings.Split(token, "."); token != "" && (strings.Contains(err.Error(), token) ||
		len(parts) == 3 && len(parts[2]) > 8 && strings.Contains(err.Error(), parts[2])) {
		t.Fatalf("err contains the token: %v", err)
	}
}

func TestVerifyGood(t *testing.T) {
	for _, kt := range []devissuer.KeyType{devissuer.RSA, devissuer.EC} {
		t.Run(string(kt), func(t *testing.T) {
			iss := newIssuer(t, devissuer.Options{KeyType: kt})
			v := newVerifier(t, Options{}, ProviderConfig{Name: "gen", Issuer: iss.URL(), Audiences: []string{"other", "berth"}})
			if iss.DiscoveryFetches()+iss.JWKSFetches() != 0 {
				t.Fatal("New contacted the issuer")
			}
			tok := iss.Mint(map[string]any{"sub": "alice", "aud": []string{"x", "berth"}, "run_attempt": 2, "ratio": 0.5})
			id, err := v.Verify(context.Background(), tok)
			if err != nil {
				t.Fatal(err)
			}
			want := iss.URL() + "/alice"
			if id.ID != "oidc:gen:"+want || id.Username != want || id.OIDC.ProviderName != "gen" ||
				id.OIDC.Claims["sub"] != "alice" || id.OIDC.Claims["run_attempt"] != int64(2) || id.OIDC.Claims["ratio"] != 0.5 {
				t.Fatalf("identity %+v %+v", id, id.OIDC)
			}
			if _, err := v.VerifyFor(context.Background(), "gen", iss.Mint(map[string]any{"sub": "bob", "aud": "berth"})); err != nil {
				t.Fatal(err)
			}
			if iss.DiscoveryFetches() != 1 || iss.JWKSFetches() != 1 {
				t.Fatalf("fetches: discovery %d jwks %d", iss.DiscoveryFetches(), iss.JWKSFetches())
			}
		})
	}
}

func TestRejections(t *testing.T) {
	clk := newClock()
	iss := newIssuer(t, devissuer.Options{KeyType: devissuer.EC, Now: clk.Now})
	v := newVerifier(t, Options{Now: clk.Now}, ProviderConfig{
		Name: "gen", Issuer: iss.URL(), Audiences: []string{"berth"},
		MaxTokenAge: time.Hour, RequiredClaims: []string{"sub"},
		ClaimMapping: ClaimMapping{Validations: []Validation{{Expression: "claims.sub.startsWith('repo:')", Message: "must be a repository"}}},
	})
	now := clk.Now().Unix()
	base := map[string]any{"sub": "repo:acme/app", "aud": "berth"}
	with := func(kv ...any) map[string]any {
		m := map[string]any{}
		for k, val := range base {
			m[k] = val
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	mint := func(header map[string]any, claims map[string]any, sign devissuer.Signing) string {
		tok, err := iss.MintWith(header, claims, devissuer.MintOptions{Sign: sign})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	if _, err := v.Verify(context.Background(), iss.Mint(base)); err != nil {
		t.Fatal("baseline:", err)
	}
	cases := []struct {
		name, token, reason string
	}{
		{"too large", iss.Mint(with("pad", strings.Repeat("x", MaxTokenSize))), "token too large"},
		{"malformed", "a.b", "malformed token"},
		{"not base64", "!!!.e30.sig", "malformed token: header"},
		{"no iss", mint(nil, with("iss", devissuer.Omit), devissuer.SignKey), "no iss claim"},
		{"alg none", mint(nil, base, devissuer.SignNone), `algorithm "none" not allowed`},
		{"hs256 with public key", mint(nil, base, devissuer.SignHMACPublicKey), `algorithm "HS256" not allowed`},
		{"alg not configured", mint(map[string]any{"alg": "PS256"}, base, devissuer.SignKey), `algorithm "PS256" not allowed`},
		{"unknown kid", mint(map[string]any{"kid": "nope"}, base, devissuer.SignKey), `unknown kid "nope" for issuer ` + iss.URL()},
		{"key type mismatch", mint(map[string]any{"alg": "RS256"}, base, devissuer.SignKey), "does not match algorithm RS256"},
		{"bad signature", mint(nil, base, devissuer.SignCorrupt), "bad signature"},
		{"wrong issuer", iss.Mint(with("iss", "https://evil.example")), `unknown issuer "https://evil.example"`},
		{"issuer trailing slash", iss.Mint(with("iss", iss.URL()+"/")), "unknown issuer"},
		{"wrong audience", iss.Mint(with("aud", []string{"a", "b"})), `audience mismatch: got "a", "b", want one of [berth]`},
		{"no audience", iss.Mint(with("aud", devissuer.Omit)), "audience mismatch: got none"},
		{"missing exp", iss.Mint(with("exp", devissuer.Omit)), "missing exp"},
		{"exp not a number", iss.Mint(with("exp", "soon")), "failed to unmarshal claims"},
		{"expired", iss.Mint(with("exp", now-102)), "expired 1m42s ago"},
		{"nbf in the future", iss.Mint(with("nbf", now+300)), "nbf is 5m0s in the future"},
		{"iat in the future", iss.Mint(with("iat", now+300, "nbf", now)), "iat is 5m0s ahead"},
		{"too old", iss.Mint(with("iat", now-7200, "nbf", now-7200)), "token too old: issued 2h0m0s ago, max_token_age 1h0m0s"},
		{"missing required claim", iss.Mint(with("sub", devissuer.Omit)), `missing required claim "sub"`},
		{"null required claim", iss.Mint(with("sub", nil)), `missing required claim "sub"`},
		{"validation", iss.Mint(with("sub", "user:x")), "validation failed: must be a repository"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := v.Verify(context.Background(), c.token)
			refused(t, err, auth.ErrInvalidCredentials, c.reason, c.token)
		})
	}
	// Within the skew: accepted.
	if _, err := v.Verify(context.Background(), iss.Mint(with("exp", now-30, "nbf", now+30))); err != nil {
		t.Fatal("within skew:", err)
	}
}

func TestRotationPickedUp(t *testing.T) {
	clk := newClock()
	iss := newIssuer(t, devissuer.Options{KeyType: devissuer.EC, Now: clk.Now})
	v := newVerifier(t, Options{Now: clk.Now}, ProviderConfig{Name: "gen", Issuer: iss.URL(), Audiences: []string{"berth"}})
	ctx := context.Background()
	oldKid := iss.KeyID()
	if _, err := v.Verify(ctx, iss.Mint(map[string]any{"sub": "a", "aud": "berth"})); err != nil {
		t.Fatal(err)
	}
	if err := iss.Rotate(false); err != nil {
		t.Fatal(err)
	}
	clk.Advance(DefaultKidCooldown)
	for i := range 3 {
		if _, err := v.Verify(ctx, iss.Mint(map[string]any{"sub": fmt.Sprint(i), "aud": "berth"})); err != nil {
			t.Fatal("new key:", err)
		}
	}
	old, _ := iss.MintWith(nil, map[string]any{"sub": "b", "aud": "berth"}, devissuer.MintOptions{KeyID: oldKid})
	if _, err := v.Verify(ctx, old); err != nil {
		t.Fatal("old key still published:", err)
	}
	if iss.JWKSFetches() != 2 || iss.DiscoveryFetches() != 1 {
		t.Fatalf("jwks fetches %d (want 2), discovery %d (want 1)", iss.JWKSFetches(), iss.DiscoveryFetches())
	}
}

func TestIssuerDown(t *testing.T) {
	clk := newClock()
	iss := newIssuer(t, devissuer.Options{KeyType: devissuer.EC, Now: clk.Now})
	cold := newIssuer(t, devissuer.Options{KeyType: devissuer.EC, Now: clk.Now})
	gone := newIssuer(t, devissuer.Options{KeyType: devissuer.EC, Now: clk.Now})
	gone.Close() // connection refused
	v := newVerifier(t, Options{Now: clk.Now},
		ProviderConfig{Name: "up", Issuer: iss.URL(), Audiences: []string{"berth"}},
		ProviderConfig{Name: "cold", Issuer: cold.URL(), Audiences: []string{"berth"}},
		ProviderConfig{Name: "gone", Issuer: gone.URL(), Audiences: []string{"berth"}},
	)
	ctx := context.Background()
	if _, err := v.Verify(ctx, iss.Mint(map[string]any{"sub": "a", "aud": "berth"})); err != nil {
		t.Fatal(err)
	}
	iss.SetDown(true)
	cold.SetDown(true)
	clk.Advance(time.Minute)
	if _, err := v.Verify(ctx, iss.Mint(map[string]any{"sub": "b", "aud": "berth"})); err != nil {
		t.Fatal("cached keys during outage:", err)
	}
	tok, _ := iss.MintWith(map[string]any{"kid": "rotated"}, map[string]any{"sub": "c", "aud": "berth"}, devissuer.MintOptions{})
	_, err := v.Verify(ctx, tok)
	refused(t, err, auth.ErrInvalidCredentials, "unknown kid", tok)

	tok = cold.Mint(map[string]any{"sub": "a", "aud": "berth"})
	_, err = v.Verify(ctx, tok)
	refused(t, err, auth.ErrUnavailable, "unreachable and no keys cached", tok)
	if errors.Is(err, auth.ErrInvalidCredentials) {
		t.Fatal("unavailable is also invalid")
	}
	_, err = v.Verify(ctx, gone.Mint(map[string]any{"sub": "a", "aud": "berth"}))
	refused(t, err, auth.ErrUnavailable, "unreachable", "")

	cold.SetDown(false) // recovers without restart
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatal("after recovery:", err)
	}
}

func TestKidSprayCooldown(t *testing.T) {
	clk := newClock()
	iss := newIssuer(t, devissuer.Options{KeyType: devissuer.EC, Now: clk.Now})
	v := newVerifier(t, Options{Now: clk.Now}, ProviderConfig{Name: "gen", Issuer: iss.URL(), Audiences: []string{"berth"}})
	ctx := context.Background()
	if _, err := v.Verify(ctx, iss.Mint(map[string]any{"sub": "a", "aud": "berth"})); err != nil {
		t.Fatal(err)
	}
	spray := func() {
		var wg sync.WaitGroup
		for i := range 100 {
			tok, _ := iss.MintWith(map[string]any{"kid": fmt.Sprintf("k%d", i)}, map[string]any{"sub": "a", "aud": "berth"}, devissuer.MintOptions{})
			wg.Go(func() {
				if _, err := v.Verify(ctx, tok); !errors.Is(err, auth.ErrInvalidCredentials) {
					t.Errorf("random kid: %v", err)
				}
			})
		}
		wg.Wait()
	}
	spray() // within the cooldown of the first fetch
	if n := iss.JWKSFetches(); n != 1 {
		t.Fatalf("spray within cooldown: %d fetches, want 1", n)
	}
	clk.Advance(DefaultKidCooldown)
	spray()
	if n := iss.JWKSFetches(); n != 2 {
		t.Fatalf("spray after cooldown: %d fetches, want 2", n)
	}
}

func TestPerIssuerCA(t *testing.T) {
	iss := newIssuer(t, devissuer.Options{KeyType: devissuer.EC, TLS: true, Path: "/gitlab"})
	other := newIssuer(t, devissuer.Options{KeyType: devissuer.EC, TLS: true})
	v := newVerifier(t, Options{},
		ProviderConfig{Name: "right", Issuer: iss.URL(), Audiences: []string{"berth"}, CACertPEM: iss.CAPEM()},
		ProviderConfig{Name: "wrong", Issuer: other.URL(), Audiences: []string{"berth"}, CACertPEM: iss.CAPEM()},
	)
	ctx := context.Background()
	if _, err := v.Verify(ctx, iss.Mint(map[string]any{"sub": "a", "aud": "berth"})); err != nil {
		t.Fatal(err)
	}
	_, err := v.Verify(ctx, other.Mint(map[string]any{"sub": "a", "aud": "berth"}))
	refused(t, err, auth.ErrUnavailable, "certificate", "")
}

func TestVerifyForOtherProvider(t *testing.T) {
	a := newIssuer(t, devissuer.Options{KeyType: devissuer.EC})
	b := newIssuer(t, devissuer.Options{KeyType: devissuer.EC})
	v := newVerifier(t, Options{},
		ProviderConfig{Name: "a", Issuer: a.URL(), Audiences: []string{"berth"}},
		ProviderConfig{Name: "b", Issuer: b.URL(), Audiences: []string{"berth"}},
	)
	ctx := context.Background()
	tok := a.Mint(map[string]any{"sub": "x", "aud": "berth"})
	if _, err := v.VerifyFor(ctx, "a", tok); err != nil { // now cached for a
		t.Fatal(err)
	}
	_, err := v.VerifyFor(ctx, "b", tok)
	refused(t, err, auth.ErrInvalidCredentials, `belongs to provider a`, tok)
	_, err = v.VerifyFor(ctx, "nope", tok)
	refused(t, err, auth.ErrInvalidCredentials, `unknown provider "nope"`, tok)
	stranger := newIssuer(t, devissuer.Options{KeyType: devissuer.EC})
	_, err = v.VerifyFor(ctx, "b", stranger.Mint(map[string]any{"sub": "x", "aud": "berth"}))
	refused(t, err, auth.ErrInvalidCredentials, "is not the issuer of this provider", "")
	if got := v.Providers(); len(got) != 2 || got[0] != "a" || !v.Has("b") || v.Has("c") {
		t.Fatalf("providers %v", got)
	}
}

func TestClaimMappingGitHub(t *testing.T) {
	iss := newIssuer(t, devissuer.Options{KeyType: devissuer.EC})
	v := newVerifier(t, Options{}, ProviderConfig{
		Name: "github-actions", Preset: "github", Issuer: iss.URL(), Audiences: []string{"berth"},
		ClaimMapping: ClaimMapping{
			Variables: []Variable{
				{Name: "repo", Expression: "claims.repository"},
				{Name: "owner", Expression: "vars.repo.split('/')[0]"},
			},
			Validations: []Validation{
				{Expression: "vars.owner == 'octo-org'", Message: "only octo-org repositories"},
				{Expression: "claims.ref.startsWith('refs/heads/')", Message: "must be a branch"},
			},
			Username: "vars.repo",
			Groups:   "['ci', 'gh:' + vars.owner]",
		},
	})
	// Through the GitHub-Actions-compatible endpoint, as a workflow would.
	u, reqTok := iss.GitHubTokenRequest()
	req, _ := http.NewRequest(http.MethodGet, u+"&audience=berth", nil)
	req.Header.Set("Authorization", "Bearer "+reqTok)
	resp, err := iss.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Value string }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	id, err := v.VerifyFor(context.Background(), "github-actions", body.Value)
	if err != nil {
		t.Fatal(err)
	}
	if id.ID != "oidc:github-actions:octo-org/octo-repo" || id.Username != "octo-org/octo-repo" ||
		strings.Join(id.Groups, ",") != "ci,gh:octo-org" || id.OIDC.Claims["workflow"] != "release" {
		t.Fatalf("identity %+v", id)
	}
	tag := iss.Mint(map[string]any{"aud": "berth", "repository": "octo-org/x", "ref": "refs/tags/v1"})
	_, err = v.Verify(context.Background(), tag)
	refused(t, err, auth.ErrInvalidCredentials, "validation failed: must be a branch", tag)
	other := iss.Mint(map[string]any{"aud": "berth", "repository": "evil/x", "ref": "refs/heads/main"})
	_, err = v.Verify(context.Background(), other)
	refused(t, err, auth.ErrInvalidCredentials, "validation failed: only octo-org repositories", other)
	missing := iss.Mint(map[string]any{"aud": "berth", "ref": "refs/heads/main"})
	_, err = v.Verify(context.Background(), missing)
	refused(t, err, auth.ErrInvalidCredentials, "claim mapping: variable repo", missing)
}

func TestGitHubPresetWithoutAudience(t *testing.T) {
	iss := newIssuer(t, devissuer.Options{KeyType: devissuer.EC})
	v, warnings, err := New([]ProviderConfig{
		{Name: "gh", Preset: "github", Issuer: iss.URL()},
		{Name: "real-gh", Preset: "github", Audiences: []string{"berth"}},
		{Name: "gl", Preset: "gitlab", Audiences: []string{"berth"}},
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if len(warnings) != 1 || !strings.HasPrefix(warnings[0], "auth.oidc.gh.audiences: ") {
		t.Fatalf("warnings %q", warnings)
	}
	if v.byIssuer[GitHubIssuer][0].name != "real-gh" || v.byIssuer[GitLabIssuer][0].name != "gl" {
		t.Fatal("preset issuers not filled")
	}
	id, err := v.Verify(context.Background(), iss.Mint(map[string]any{"sub": "repo:o/r:ref:refs/heads/main", "aud": "https://github.com/o"}))
	if err != nil {
		t.Fatal(err)
	}
	if id.Username != iss.URL()+"/repo:o/r:ref:refs/heads/main" {
		t.Fatalf("default username %q", id.Username)
	}
}

func TestKubernetesPreset(t *testing.T) {
	iss := newIssuer(t, devissuer.Options{KeyType: devissuer.EC})
	v := newVerifier(t, Options{}, ProviderConfig{Name: "k8s", Preset: "kubernetes", Issuer: iss.URL(), Audiences: []string{"berth"},
		ClaimMapping: ClaimMapping{Groups: "'" + k8sNamespace + "' in claims ? ['ns:' + claims['" + k8sNamespace + "']] : []"}})
	ctx := context.Background()
	projected := iss.Mint(map[string]any{"aud": []string{"berth"}, "sub": "system:serviceaccount:flux:source",
		"kubernetes.io": map[string]any{"namespace": "flux",
			"serviceaccount": map[string]any{"name": "source", "uid": "u-1"},
			"pod":            map[string]any{"name": "source-abc", "uid": "u-2"}}})
	id, err := v.Verify(ctx, projected)
	if err != nil {
		t.Fatal(err)
	}
	c := id.OIDC.Claims
	if id.Username != "system:serviceaccount:flux:source" || id.ID != "oidc:k8s:system:serviceaccount:flux:source" ||
		c[k8sNamespace] != "flux" || c[k8sSAName] != "source" || c[k8sSAUID] != "u-1" ||
		c["kubernetes.io"].(map[string]any)["pod"].(map[string]any)["name"] != "source-abc" || id.Groups[0] != "ns:flux" {
		t.Fatalf("identity %+v claims %v", id, c)
	}
	legacy := iss.Mint(map[string]any{"aud": "berth", "sub": "system:serviceaccount:dev:builder",
		k8sNamespace: "dev", k8sSAName: "builder", "kubernetes.io/serviceaccount/secret.name": "builder-token"})
	if id, err = v.Verify(ctx, legacy); err != nil || id.Username != "system:serviceaccount:dev:builder" ||
		id.OIDC.Claims["kubernetes.io/serviceaccount/secret.name"] != "builder-token" {
		t.Fatalf("legacy: %v %+v", err, id)
	}
	plain := iss.Mint(map[string]any{"aud": "berth", "sub": "someone"})
	if id, err = v.Verify(ctx, plain); err != nil || id.Username != iss.URL()+"/someone" {
		t.Fatalf("no service account: %v %+v", err, id)
	}
}

func TestConfigProblemsTogether(t *testing.T) {
	iss := newIssuer(t, devissuer.Options{KeyType: devissuer.EC})
	_, _, err := New([]ProviderConfig{
		{Name: "gh", Preset: "github", Audiences: []string{"berth"}, ClaimMapping: ClaimMapping{
			Username:    "claims.repository +",
			Groups:      "'single'",
			Variables:   []Variable{{Name: "repo", Expression: "claims.repository"}, {Name: "bad-name", Expression: "1"}},
			Validations: []Validation{{Expression: "vars.ownr == 'x'"}, {Expression: "claims.sub"}, {Expression: "claims.all(k, claims.all(j, k != j))"}},
		}},
		{Name: "gen", Issuer: iss.URL(), Algorithms: []string{"RS256", "HS256"}, CACertPEM: []byte("junk")},
		{Name: "dup", Preset: "gitlab", Audiences: []string{"a", "berth"}, Issuer: GitHubIssuer},
		{Name: "x:y", Preset: "okta", Audiences: []string{"a"}, ClockSkew: -time.Second},
		{Name: "noiss", Audiences: []string{"a"}},
	}, Options{})
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("err %v", err)
	}
	want := map[string]string{
		"auth.oidc.gh.claim_mapping.username":                  "cel: 1:",
		"auth.oidc.gh.claim_mapping.groups":                    "must evaluate to list(string), not string",
		"auth.oidc.gh.claim_mapping.variables[1].name":         `"bad-name" is not a valid variable name`,
		"auth.oidc.gh.claim_mapping.validations[0].expression": "vars.ownr is not defined: defined before this expression: repo, bad-name",
		"auth.oidc.gh.claim_mapping.validations[2].expression": "worst-case cost",
		"auth.oidc.gen.audiences":                              "is required",
		"auth.oidc.gen.algorithms":                             `"HS256" is not allowed`,
		"auth.oidc.gen.certificate_authority":                  "no PEM certificate",
		"auth.oidc.dup.issuer":                                 `is also the issuer of provider "gh"`,
		`auth.oidc."x:y"`:                                      "must not contain ':'",
		`auth.oidc."x:y".provider`:                             `"okta" is not one of`,
		"auth.oidc.noiss.issuer":                               `is required for provider "generic"`,
		`auth.oidc."x:y".clock_skew`:                           "must not be negative",
	}
	got := map[string]string{}
	for _, p := range ce.Problems {
		got[p.Key] += p.Message + ";"
	}
	for k, msg := range want {
		if !strings.Contains(got[k], msg) {
			t.Errorf("%s: got %q, want %q", k, got[k], msg)
		}
	}
	if _, ok := got["auth.oidc.gh.claim_mapping.validations[1].expression"]; ok {
		t.Error("a dyn validation (claims.sub) must compile: it is checked when evaluated")
	}
	if t.Failed() {
		t.Log(err)
	}
	if iss.DiscoveryFetches()+iss.JWKSFetches() != 0 {
		t.Fatal("New contacted an issuer")
	}
}

func TestMappingFailsClosed(t *testing.T) {
	iss := newIssuer(t, devissuer.Options{KeyType: devissuer.EC})
	v := newVerifier(t, Options{},
		ProviderConfig{Name: "gen", Issuer: iss.URL(), Audiences: []string{"berth"},
			ClaimMapping: ClaimMapping{Username: "claims.email", Groups: "claims.groups"}})
	ctx := context.Background()
	for _, c := range []struct {
		claims map[string]any
		reason string
	}{
		{map[string]any{"groups": []string{"a"}}, "claim mapping: username: no such key: email"},
		{map[string]any{"email": 7}, "claim mapping: username: got int, want string"},
		{map[string]any{"email": ""}, "claim mapping: username: empty"},
		{map[string]any{"email": "a\nb"}, "control character"},
		{map[string]any{"email": "a@b", "groups": []any{"a", 1}}, "claim mapping: groups"},
		{map[string]any{"email": "a@b", "groups": "a"}, "claim mapping: groups"},
	} {
		c.claims["aud"] = "berth"
		tok := iss.Mint(c.claims)
		_, err := v.Verify(ctx, tok)
		refused(t, err, auth.ErrInvalidCredentials, c.reason, tok)
	}
	id, err := v.Verify(ctx, iss.Mint(map[string]any{"aud": "berth", "email": "a@b", "groups": []string{"x", "y"}}))
	if err != nil || id.Username != "a@b" || len(id.Groups) != 2 {
		t.Fatalf("%v %+v", err, id)
	}
}

func TestCacheAvoidsReverification(t *testing.T) {
	clk := newClock()
	iss := newIssuer(t, devissuer.Options{KeyType: devissuer.EC, Now: clk.Now, TokenTTL: 5 * time.Minute})
	v := newVerifier(t, Options{Now: clk.Now}, ProviderConfig{Name: "gen", Issuer: iss.URL(), Audiences: []string{"berth"}})
	ctx := context.Background()
	tok := iss.Mint(map[string]any{"sub": "a", "aud": "berth"})
	for range 50 {
		id, err := v.Verify(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		id.ClientIP = "10.0.0.1" // callers set this; it must not leak into the cache
		id.Groups = append(id.Groups, "x")
	}
	id, _ := v.VerifyFor(ctx, "gen", tok)
	if id.ClientIP != "" || len(id.Groups) != 0 {
		t.Fatalf("cached identity was mutated: %+v", id)
	}
	if n := v.providers["gen"].keys.sigChecks.Load(); n != 1 {
		t.Fatalf("%d signature checks for one token, want 1", n)
	}
	clk.Advance(5*time.Minute + DefaultClockSkew)
	_, err := v.Verify(ctx, tok)
	refused(t, err, auth.ErrInvalidCredentials, "expired 1m0s ago", tok)

	small := newVerifier(t, Options{Now: clk.Now, CacheSize: 2}, ProviderConfig{Name: "gen", Issuer: iss.URL(), Audiences: []string{"berth"}})
	for i := range 5 {
		small.Verify(ctx, iss.Mint(map[string]any{"sub": fmt.Sprint(i), "aud": "berth"}))
	}
	if n := small.cache.len(); n != 2 {
		t.Fatalf("cache holds %d, want 2", n)
	}
}

func TestFetchLimits(t *testing.T) {
	big := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"keys":[` + strings.Repeat(" ", 4096) + `]}`))
	}))
	defer big.Close()
	stuck := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-stuck:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(stuck)
	iss := newIssuer(t, devissuer.Options{KeyType: devissuer.EC})
	v := newVerifier(t, Options{MaxResponseBytes: 1024, FetchTimeout: 200 * time.Millisecond},
		ProviderConfig{Name: "big", Issuer: iss.URL(), JWKSURI: big.URL, Audiences: []string{"berth"}},
	)
	_, err := v.Verify(context.Background(), iss.Mint(map[string]any{"aud": "berth"}))
	refused(t, err, auth.ErrUnavailable, "exceeds the limit of 1024 bytes", "")

	iss2 := newIssuer(t, devissuer.Options{KeyType: devissuer.EC})
	v2 := newVerifier(t, Options{FetchTimeout: 200 * time.Millisecond},
		ProviderConfig{Name: "slow", Issuer: iss2.URL(), JWKSURI: slow.URL, Audiences: []string{"berth"}})
	start := time.Now()
	_, err = v2.Verify(context.Background(), iss2.Mint(map[string]any{"aud": "berth"}))
	refused(t, err, auth.ErrUnavailable, "deadline exceeded", "")
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("fetch took %s", d)
	}
	// A request that gives up waits no longer, and is unavailable, not invalid.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = v2.Verify(ctx, iss2.Mint(map[string]any{"aud": "berth", "sub": "z"}))
	refused(t, err, auth.ErrUnavailable, "context canceled", "")
}

func TestBackgroundRefreshStopsOnClose(t *testing.T) {
	iss := newIssuer(t, devissuer.Options{KeyType: devissuer.EC})
	v, _, err := New([]ProviderConfig{{Name: "gen", Issuer: iss.URL(), Audiences: []string{"berth"}, JWKSRefreshInterval: 20 * time.Millisecond}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), iss.Mint(map[string]any{"sub": "a", "aud": "berth"})); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for iss.JWKSFetches() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("no background refresh: %d fetches", iss.JWKSFetches())
		}
		time.Sleep(10 * time.Millisecond)
	}
	v.Close()
	n := iss.JWKSFetches()
	time.Sleep(80 * time.Millisecond)
	if m := iss.JWKSFetches(); m != n {
		t.Fatalf("refresh continued after Close: %d -> %d", n, m)
	}
	if iss.DiscoveryFetches() != 1 {
		t.Fatalf("discovery refetched: %d", iss.DiscoveryFetches())
	}
}

// The flat service-account claims a projected token gets can be required.
func TestKubernetesRequiredFlatClaims(t *testing.T) {
	iss := newIssuer(t, devissuer.Options{KeyType: devissuer.EC})
	v := newVerifier(t, Options{}, ProviderConfig{Name: "k8s", Preset: "kubernetes", Issuer: iss.URL(),
		Audiences: []string{"berth"}, RequiredClaims: []string{k8sNamespace}})
	projected := iss.Mint(map[string]any{"aud": "berth", "sub": "system:serviceaccount:flux:source",
		"kubernetes.io": map[string]any{"namespace": "flux", "serviceaccount": map[string]any{"name": "source", "uid": "u-1"}}})
	if _, err := v.Verify(context.Background(), projected); err != nil {
		t.Fatalf("projected token with the required flat claim: %v", err)
	}
	plain := iss.Mint(map[string]any{"aud": "berth", "sub": "someone"})
	if _, err := v.Verify(context.Background(), plain); err == nil {
		t.Fatal("token without the required claim accepted")
	}
}

func TestMapClaims(t *testing.T) {
	iss := newIssuer(t, devissuer.Options{})
	v := newVerifier(t, Options{}, ProviderConfig{Name: "ci", Issuer: iss.URL(), Audiences: []string{"berth"},
		ClaimMapping: ClaimMapping{
			Username:    "'ci:' + claims.repository",
			Validations: []Validation{{Expression: "claims.repository.startsWith('myorg/')", Message: "myorg only"}},
		}})
	id, err := v.MapClaims(context.Background(), "ci", map[string]any{"iss": iss.URL(), "sub": "x", "repository": "myorg/api"})
	if err != nil || id.Username != "ci:myorg/api" || id.ID != "oidc:ci:ci:myorg/api" {
		t.Fatalf("MapClaims = %+v, %v", id, err)
	}
	if _, err := v.MapClaims(context.Background(), "ci", map[string]any{"repository": "other/api"}); err == nil || !strings.Contains(err.Error(), "myorg only") {
		t.Fatalf("validation not applied: %v", err)
	}
	if _, err := v.MapClaims(context.Background(), "nope", map[string]any{}); err == nil {
		t.Fatal("unknown provider accepted")
	}
}
