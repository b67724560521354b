package server

import (
	"testing"
	"time"

	"github.com/berth-registry/berth/internal/auth/oidc"
	"github.com/berth-registry/berth/internal/config"
	"github.com/berth-registry/berth/internal/policy"
)

func TestImmutableConfigExclusionsAlone(t *testing.T) {
	cfg, err := config.Parse([]byte(`
[global]
immutable_tags = true
[repository."rel"]
immutable_tags_exclusions = ["^nightly$"]
[repository."free"]
immutable_tags = false
`), "t.toml")
	if err != nil {
		t.Fatal(err)
	}
	imm, err := policy.CompileImmutable(ImmutableConfig(cfg))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		repo, tag string
		want      bool
	}{
		{"rel/app", "v1", true},        // global on, kept by the repository table
		{"rel/app", "nightly", false},  // its exclusion
		{"free/app", "v1", false},      // turned off
		{"other/app", "v1", true},      // global
		{"other/app", "nightly", true}, // rel's exclusion does not apply
	} {
		if got := imm.Protected(c.repo, c.tag); got != c.want {
			t.Errorf("Protected(%s, %s) = %v, want %v", c.repo, c.tag, got, c.want)
		}
	}
}

func TestClockSkewZeroMeansNone(t *testing.T) {
	if clockSkew(0) != time.Nanosecond || clockSkew(time.Minute) != time.Minute {
		t.Fatal("clock skew mapping")
	}
}

// In a pod, a kubernetes provider of the in-cluster API server sends the
// pod's service-account token with discovery and JWKS requests, unless
// bearer_token_file says otherwise; an external issuer never gets it.
func TestInClusterDefaultToken(t *testing.T) {
	cfg, err := config.Parse([]byte(`
[auth.oidc.cluster]
provider = "kubernetes"
issuer = "https://kubernetes.default.svc.cluster.local"
audiences = ["berth"]
accept_any_username = true

[auth.oidc.none]
provider = "kubernetes"
issuer = "https://kubernetes.default.svc"
audiences = ["berth"]
bearer_token_file = ""

[auth.oidc.eks]
provider = "kubernetes"
issuer = "https://oidc.eks.example.com/id/ABC"
audiences = ["berth"]
`), "k.toml")
	if err != nil {
		t.Fatal(err)
	}
	inPod := func(k string) string {
		if k == "KUBERNETES_SERVICE_HOST" {
			return "10.96.0.1"
		}
		return ""
	}
	exists := func(string) bool { return true }
	got := map[string]oidc.ProviderConfig{}
	for _, pc := range oidcProviders(cfg, inPod, exists) {
		got[pc.Name] = pc
	}
	if got["cluster"].BearerTokenFile != oidc.ServiceAccountTokenFile || !got["cluster"].AcceptAnyUsername {
		t.Errorf("cluster: %+v", got["cluster"])
	}
	if got["none"].BearerTokenFile != "" || got["eks"].BearerTokenFile != "" || got["eks"].AcceptAnyUsername {
		t.Errorf("none %q, eks %q", got["none"].BearerTokenFile, got["eks"].BearerTokenFile)
	}
	for _, pc := range oidcProviders(cfg, func(string) string { return "" }, exists) {
		if pc.BearerTokenFile != "" {
			t.Errorf("outside a cluster %s: %q", pc.Name, pc.BearerTokenFile)
		}
	}
}
