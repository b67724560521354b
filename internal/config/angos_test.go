package config

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// angosFile uses every Angos key name berth accepts as an alias, with
// Angos's types and units (doc/reference/configuration.md of Angos).
const angosFile = `[server]
bind_address = "0.0.0.0"
port = 5000

[global]
trusted_proxies = ["10.0.0.1", "10.1.0.0/16"]
max_manifest_size = "5MiB"

[auth.oidc.github-actions]
provider = "github"
required_audience = "https://registry.example.com"
clock_skew_tolerance = 30
allowed_algorithms = ["RS256", "ES384"]
jwks_refresh_interval = 600

[global.access_policy]
default_allow = false
rules = ["identity.oidc != null && request.action in ['get-manifest', 'get-blob']"]
`

// TestAngosKeyAliases: Angos's key names load, in Angos's units, into
// berth's settings. Before, each was an unknown key (and integer seconds
// for jwks_refresh_interval a type error).
func TestAngosKeyAliases(t *testing.T) {
	c, err := Parse([]byte(angosFile), "angos.toml")
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(c.Server.TrustedProxies); got != "[10.0.0.1/32 10.1.0.0/16]" {
		t.Errorf("trusted proxies %s", got)
	}
	if c.Limits.MaxManifestSize != 5<<20 {
		t.Errorf("max manifest size %d, want 5MiB", c.Limits.MaxManifestSize)
	}
	p := c.Auth.OIDC[0]
	if !slices.Equal(p.Audiences, []string{"https://registry.example.com"}) {
		t.Errorf("audiences %q", p.Audiences)
	}
	if p.ClockSkew != 30*time.Second {
		t.Errorf("clock skew %s, want 30s", p.ClockSkew)
	}
	if !slices.Equal(p.Algorithms, []string{"RS256", "ES384"}) {
		t.Errorf("algorithms %q", p.Algorithms)
	}
	if p.JWKSRefreshInterval != 10*time.Minute {
		t.Errorf("jwks refresh interval %s, want 600 seconds", p.JWKSRefreshInterval)
	}

	// An integer manifest size is bytes, as in [limits]; berth's duration
	// string still works for jwks_refresh_interval.
	c, err = Parse([]byte("[global]\nmax_manifest_size = 1048576\n[auth.oidc.x]\nissuer = \"https://i.example\"\naudiences = [\"a\"]\njwks_refresh_interval = \"30m\"\n"), "a.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Limits.MaxManifestSize != 1<<20 || c.Auth.OIDC[0].JWKSRefreshInterval != 30*time.Minute {
		t.Errorf("max manifest size %d, jwks refresh interval %s", c.Limits.MaxManifestSize, c.Auth.OIDC[0].JWKSRefreshInterval)
	}

	// The global-only keys stay unknown in a repository table.
	_, err = Parse([]byte("[repository.\"x\"]\ntrusted_proxies = [\"10.0.0.1\"]\n"), "a.toml")
	checkProblems(t, problems(t, err), []Problem{{`repository.x.trusted_proxies`, 2, "unknown key"}})
}

// TestAngosAliasConflicts: a setting given under both names is a problem
// naming both, at the alias's line, reported with every other problem.
func TestAngosAliasConflicts(t *testing.T) {
	_, err := Parse([]byte(`[server]
port = "x"
trusted_proxies = ["10.0.0.1"]
[limits]
max_manifest_size = "4MiB"
[global]
trusted_proxies = ["10.0.0.2"]
max_manifest_size = "5MiB"
[auth.oidc.ci]
issuer = "https://issuer.example"
audiences = ["a"]
required_audience = "b"
algorithms = ["RS256"]
allowed_algorithms = ["ES256"]
clock_skew = "10s"
clock_skew_tolerance = 10
`), "c.toml")
	checkProblems(t, problems(t, err), []Problem{
		{"server.port", 2, "must be an integer"},
		{"global.trusted_proxies", 7, "is Angos's name for server.trusted_proxies: set one of them, not both"},
		{"global.max_manifest_size", 8, "is Angos's name for limits.max_manifest_size: set one of them, not both"},
		{"auth.oidc.ci.required_audience", 12, "is Angos's name for auth.oidc.ci.audiences: set one of them, not both"},
		{"auth.oidc.ci.allowed_algorithms", 14, "is Angos's name for auth.oidc.ci.algorithms: set one of them, not both"},
		{"auth.oidc.ci.clock_skew_tolerance", 16, "is Angos's name for auth.oidc.ci.clock_skew: set one of them, not both"},
	})
}

// TestAngosAliasBadValues: a bad value set under Angos's name is reported
// under that name.
func TestAngosAliasBadValues(t *testing.T) {
	_, err := Parse([]byte(`[global]
trusted_proxies = ["proxy.local"]
max_manifest_size = 0
[auth.oidc.ci]
issuer = "https://issuer.example"
required_audience = ""
allowed_algorithms = ["HS256"]
clock_skew_tolerance = 3600
jwks_refresh_interval = 30
[auth.oidc.gl]
provider = "gitlab"
required_audience = ["a"]
clock_skew_tolerance = -1
`), "c.toml")
	checkProblems(t, problems(t, err), []Problem{
		{"global.trusted_proxies", 2, `"proxy.local" is not an IP address or CIDR`},
		{"global.max_manifest_size", 3, "must be greater than zero"},
		{"auth.oidc.ci.required_audience", 6, "must not contain an empty audience"},
		{"auth.oidc.ci.allowed_algorithms", 7, `"HS256" is not allowed`},
		{"auth.oidc.ci.clock_skew_tolerance", 8, "must be between 0 and 10m, got 1h0m0s"},
		{"auth.oidc.ci.jwks_refresh_interval", 9, "must be at least 1m, got 30s"},
		{"auth.oidc.gl.required_audience", 12, "must be a string"},
		{"auth.oidc.gl.clock_skew_tolerance", 13, "-1 seconds is out of range"},
	})
}
