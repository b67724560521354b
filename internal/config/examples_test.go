package config_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/berth-registry/berth/internal/auth/oidc"
	"github.com/berth-registry/berth/internal/config"
	"github.com/berth-registry/berth/internal/server"
)

// TestExamples keeps examples/*.toml valid: each must load with config.Load
// and pass what `berth config check` and startup check (CEL claim mappings,
// password hashes), without warnings.
func TestExamples(t *testing.T) {
	files, err := filepath.Glob("../../examples/*.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no examples found in ../../examples")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			cfg, err := config.Load(f)
			if err != nil {
				t.Fatalf("config.Load:\n%v", err)
			}
			if !cfg.Auth.Enabled() {
				t.Errorf("the example configures no authentication")
			}
			if err := server.CheckAuth(cfg); err != nil {
				t.Fatalf("server.CheckAuth:\n%v", err)
			}
			if len(cfg.Auth.OIDC) > 0 {
				v, warnings, err := oidc.New(server.OIDCProviders(cfg), oidc.Options{})
				if err != nil {
					t.Fatalf("oidc.New:\n%v", err)
				}
				v.Close()
				for _, w := range warnings {
					t.Errorf("warning: %s", w)
				}
			}
		})
	}
}

// angosCompleteExample is the "Complete Example" of the Angos GitHub Actions
// guide (seed 000), without its [server.tls] table (the certificate files do
// not exist here) and without its [repository."…".access_policy] tables
// (access policies are not built yet).
const angosCompleteExample = `
[server]
bind_address = "0.0.0.0"
port = 5000

[blob_store.fs]
root_dir = "/data"

[auth.oidc.github-actions]
provider = "github"

[ui]
enabled = true
`

// TestAngosCompleteExample: an Angos file brought over loads as written.
func TestAngosCompleteExample(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(path, []byte(angosCompleteExample), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("config.Load:\n%v", err)
	}
	if err := server.CheckAuth(cfg); err != nil {
		t.Fatalf("server.CheckAuth:\n%v", err)
	}
	if len(cfg.Auth.OIDC) != 1 {
		t.Fatalf("OIDC providers: %+v", cfg.Auth.OIDC)
	}
	p := cfg.Auth.OIDC[0]
	if p.Name != "github-actions" || p.Provider != "github" || p.Issuer != "https://token.actions.githubusercontent.com" {
		t.Errorf("provider: name %q, provider %q, issuer %q", p.Name, p.Provider, p.Issuer)
	}
	if !cfg.Auth.Token.Enabled {
		t.Error("the token service should be on by default")
	}
	if cfg.Server.Port != 5000 || cfg.BlobStore.FS.RootDir != "/data" || !cfg.UI.Enabled {
		t.Errorf("server %+v, blob store %+v, ui %+v", cfg.Server, cfg.BlobStore, cfg.UI)
	}
}
