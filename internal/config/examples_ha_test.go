package config_test

import (
	"os"
	"strings"
	"testing"

	"github.com/berth-registry/berth/internal/config"
	"github.com/berth-registry/berth/internal/server"
)

// The Kubernetes example's config.toml (the ConfigMap of examples/kubernetes)
// loads, passes the startup checks, uses S3 without stored keys and Redis,
// and its manifests probe /healthz and /readyz with two replicas.
func TestKubernetesExample(t *testing.T) {
	cfg, err := config.Load("../../examples/kubernetes/config.toml")
	if err != nil {
		t.Fatalf("config.Load:\n%v", err)
	}
	if err := server.Check(cfg); err != nil {
		t.Fatalf("server.Check:\n%v", err)
	}
	if s := cfg.BlobStore.S3; s == nil || s.AccessKeyID != "" || s.SecretKey != "" {
		t.Errorf("want [blob_store.s3] with the default credential chain, got %v", s)
	}
	if cfg.Cache.Redis == nil {
		t.Error("no [cache.redis]")
	}
	if !cfg.Auth.Enabled() || !cfg.HasPolicies() {
		t.Error("the example must authenticate and have an access policy")
	}
	dep, err := os.ReadFile("../../examples/kubernetes/deployment.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"replicas: 2", "path: /healthz", "path: /readyz", "serviceAccountName: berth", "name: berth-config"} {
		if !strings.Contains(string(dep), want) {
			t.Errorf("deployment.yaml lacks %q", want)
		}
	}
	sa, err := os.ReadFile("../../examples/kubernetes/serviceaccount.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(sa), "eks.amazonaws.com/role-arn") {
		t.Error("serviceaccount.yaml lacks the IRSA annotation")
	}
}
