package config

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestAuthParse(t *testing.T) {
	doc := `
[auth]
[auth.token]
service = "reg.example"
access_token_ttl = "10m"

[auth.rate_limit]
max_failures = 5
window = "30s"

[auth.oidc.github-actions]
provider = "github"

[auth.oidc.gitlab]
provider = "gitlab"
audiences = ["https://reg.example"]
token_ttl = "30m"
token_max_ttl = "2h"
token_max_uses = 3
token_trusted_ips = ["10.0.0.0/8", "192.168.1.7"]

[auth.oidc."k8s.prod"]
provider = "kubernetes"
issuer = "https://kubernetes.default.svc.cluster.local"
audiences = ["berth"]
algorithms = ["RS256"]
required_claims = ["sub"]
max_token_age = "1h"

[auth.oidc."k8s.prod".claim_mapping]
username = "claims.sub"
groups = "['ns-' + claims['kubernetes.io'].namespace]"
variables = [{ name = "ns", expression = "claims['kubernetes.io'].namespace" }]
validations = [{ expression = "vars.ns != 'kube-system'", message = "no system pods" }]

[auth.identity.admin]
username = "admin"
password = "$2y$12$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyzABCDE"
`
	c, err := Parse([]byte(doc), "a.toml")
	if err != nil {
		t.Fatal(err)
	}
	a := c.Auth
	if !a.Enabled() || a.Token.Service != "reg.example" || a.Token.AccessTokenTTL != 10*time.Minute || !a.Token.Enabled {
		t.Fatalf("auth %+v", a)
	}
	if a.RateLimit != (RateLimit{MaxFailures: 5, Window: 30 * time.Second}) {
		t.Fatalf("rate limit %+v", a.RateLimit)
	}
	if len(a.OIDC) != 3 {
		t.Fatalf("providers %+v", a.OIDC)
	}
	gh, gl, k8s := a.OIDC[0], a.OIDC[1], a.OIDC[2]
	if gh.Name != "github-actions" || gh.Issuer != "https://token.actions.githubusercontent.com" || !slices.Equal(gh.Algorithms, []string{"RS256", "ES256"}) || gh.ClockSkew != time.Minute {
		t.Fatalf("github preset %+v", gh)
	}
	if gl.Issuer != "https://gitlab.com" || gl.TokenMaxUses != 3 || gl.TokenTTL != 30*time.Minute || gl.TokenMaxTTL != 2*time.Hour ||
		!slices.Equal(gl.TokenTrustedIPs, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.7/32")}) {
		t.Fatalf("gitlab %+v", gl)
	}
	if k8s.Name != "k8s.prod" || k8s.ClaimMapping.Username != "claims.sub" || len(k8s.ClaimMapping.Variables) != 1 ||
		k8s.ClaimMapping.Validations[0].Message != "no system pods" || k8s.MaxTokenAge != time.Hour {
		t.Fatalf("kubernetes %+v", k8s)
	}
	if len(a.Identities) != 1 || a.Identities[0].Username != "admin" {
		t.Fatalf("identities %+v", a.Identities)
	}
	if Default().Auth.Enabled() {
		t.Fatal("auth enabled by default")
	}
}

func TestAuthProblems(t *testing.T) {
	doc := `[auth.oidc.a]
provider = "generic"
issuer = "http://issuer.example"
algorithms = ["HS256", "none"]
certificate_authority = "x"
certificate_authority_file = "/nope"
token_trusted_ips = ["not-an-ip"]
clock_skew = "1h"

[auth.oidc.b]
provider = "kubernetes"

[auth.identity.x]
username = "a"
password = "hunter2"

[auth.token]
access_token_ttl = "10s"

[auth.rate_limit]
max_failures = -1
window = "0s"
`
	_, err := Parse([]byte(doc), "a.toml")
	checkProblems(t, problems(t, err), []Problem{
		{"auth.oidc.a.audiences", 1, "is required"},
		{"auth.oidc.a.issuer", 3, "must use https"},
		{"auth.oidc.a.algorithms", 4, `"HS256" is not allowed`},
		{"auth.oidc.a.algorithms", 4, `"none" is not allowed`},
		{"auth.oidc.a.certificate_authority", 5, "not both"},
		{"auth.oidc.a.token_trusted_ips", 7, "is not an IP address or CIDR"},
		{"auth.oidc.a.clock_skew", 8, "between 0 and 10m"},
		{"auth.oidc.b.issuer", 10, "is required"},
		{"auth.oidc.b.audiences", 10, "is required"},
		{"auth.identity.x.username", 14, "also the name of an OIDC provider"},
		{"auth.identity.x.password", 15, "never a plain password"},
		{"auth.token.access_token_ttl", 18, "at least 1m"},
		{"auth.rate_limit.max_failures", 21, "0 (no limit) or more"},
		{"auth.rate_limit.window", 22, "between 1s and 24h"},
	})
}

func TestUnknownKeyInNamedTableSuggests(t *testing.T) {
	_, err := Parse([]byte("[auth.oidc.gh]\nprovider = \"github\"\naudience = [\"x\"]\n[repository.\"team/app\"]\nimutable_tags = true\n"), "a.toml")
	msg := err.Error()
	for _, want := range []string{"did you mean auth.oidc.gh.audiences?", `did you mean repository."team/app".immutable_tags?`} {
		if !strings.Contains(msg, want) {
			t.Errorf("no %q in:\n%s", want, msg)
		}
	}
}

func TestTrustedProxies(t *testing.T) {
	c, err := Parse([]byte("[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"192.0.2.1\", \"2001:db8::/32\"]\n"), "a.toml")
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(c.Server.TrustedProxies); got != "[10.0.0.0/8 192.0.2.1/32 2001:db8::/32]" {
		t.Fatalf("trusted proxies %s", got)
	}
	_, err = Parse([]byte("[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"proxy.local\"]\n"), "a.toml")
	checkProblems(t, problems(t, err), []Problem{{"server.trusted_proxies", 2, `"proxy.local" is not an IP address or CIDR`}})
}

func TestTokenKeys(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pub := write("old.pub", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
	priv := write("older.pem", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
	junk := write("junk.pem", "not a key")
	cur := filepath.Join(dir, "current.pem")

	c, err := Parse([]byte(fmt.Sprintf("[auth.token]\nkey_file = %q\nprevious_key_files = [%q, %q]\n", cur, pub, priv)), "a.toml")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Auth.Token.PreviousKeyFiles, []string{pub, priv}) || c.Auth.Token.KeyRotationInterval != DefaultKeyRotationInterval {
		t.Fatalf("token = %+v", c.Auth.Token)
	}
	c, err = Parse([]byte("[auth.token]\nkey_rotation_interval = \"0s\"\n"), "a.toml")
	if err != nil || c.Auth.Token.KeyRotationInterval != 0 {
		t.Fatalf("key_rotation_interval = 0: %v, %v", c, err)
	}
	c, err = Parse([]byte("[auth.token]\nkey_rotation_interval = \"6h\"\nprevious_key_files = ["+fmt.Sprintf("%q", pub)+"]\n"), "a.toml")
	if err != nil || c.Auth.Token.KeyRotationInterval != 6*time.Hour {
		t.Fatalf("key_rotation_interval = 6h with previous keys and generated keys: %v, %v", c, err)
	}

	// Every problem at once, with its key and line.
	doc := fmt.Sprintf(`[auth.token]
key_file = %q
key_rotation_interval = "1h"
previous_key_files = [%q, %q, %q, ""]
`, cur, junk, filepath.Join(dir, "missing.pem"), cur)
	_, err = Parse([]byte(doc), "a.toml")
	checkProblems(t, problems(t, err), []Problem{
		{"auth.token.key_rotation_interval", 3, "generated keys only"},
		{"auth.token.previous_key_files", 4, "want a PEM PRIVATE KEY"},
		{"auth.token.previous_key_files", 4, "no such file"},
		{"auth.token.previous_key_files", 4, "is key_file itself"},
		{"auth.token.previous_key_files", 4, "empty path"},
	})
	_, err = Parse([]byte("[auth.token]\naccess_token_ttl = \"1h\"\nkey_rotation_interval = \"90m\"\n"), "a.toml")
	checkProblems(t, problems(t, err), []Problem{
		{"auth.token.key_rotation_interval", 3, "twice access_token_ttl"},
	})
	_, err = Parse([]byte("[auth.token]\nkey_rotation_interval = \"5m\"\n"), "a.toml")
	checkProblems(t, problems(t, err), []Problem{
		{"auth.token.key_rotation_interval", 2, "at least 10m"},
	})
}

// The keys of in-cluster issuers and of any-username logins, and providers
// sharing an issuer: parsed, and every problem reported at once.
func TestOIDCClientAuthAndSharedIssuer(t *testing.T) {
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("tok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	good := fmt.Sprintf(`
[auth.oidc.cluster]
provider = "kubernetes"
issuer = "https://kubernetes.default.svc"
audiences = ["berth"]
bearer_token_file = %q
accept_any_username = true

[auth.oidc.cluster-admin]
issuer = "https://kubernetes.default.svc"
audiences = ["admin"]
bearer_token_file = ""
`, token)
	c, err := Parse([]byte(good), "a.toml")
	if err != nil {
		t.Fatal(err)
	}
	p, admin := c.Auth.OIDC[0], c.Auth.OIDC[1]
	if p.BearerTokenFile != token || !p.BearerTokenFileSet || !p.AcceptAnyUsername || admin.AcceptAnyUsername ||
		!admin.BearerTokenFileSet || admin.BearerTokenFile != "" {
		t.Fatalf("providers %+v %+v", p, admin)
	}

	bad := fmt.Sprintf(`
[auth.oidc.a]
issuer = "https://issuer.example"
audiences = ["x", "shared"]
bearer_token_file = %q
client_certificate_file = %q

[auth.oidc.b]
issuer = "https://issuer.example"
audiences = ["shared"]
bearer_token_file = %q
client_key_file = %q
accept_any_username = "yes"

[auth.oidc.gh1]
provider = "github"
audiences = ["berth"]

[auth.oidc.gh2]
provider = "github"
client_certificate_file = %q
client_key_file = %q
`, filepath.Join(dir, "missing"), token, empty, token, token, token)
	_, err = Parse([]byte(bad), "b.toml")
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		`auth.oidc.a.bearer_token_file: open ` + filepath.Join(dir, "missing"),
		`auth.oidc.a.client_key_file: is required with client_certificate_file`,
		`auth.oidc.b.bearer_token_file: ` + empty + ` is empty`,
		`auth.oidc.b.client_certificate_file: is required with client_key_file`,
		`auth.oidc.b.accept_any_username: must be true or false`,
		`auth.oidc.b.issuer: "https://issuer.example" is also the issuer of provider "a" and both accept the audience "shared"`,
		`auth.oidc.gh2.issuer: "https://token.actions.githubusercontent.com" is also the issuer of provider "gh1" and one of them accepts any audience`,
		`auth.oidc.gh2.client_certificate_file: tls: failed to find any PEM data in certificate input`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in\n%v", want, err)
		}
	}
}
