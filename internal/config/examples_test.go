package config_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/berth-registry/berth/internal/seedtest"

	"github.com/berth-registry/berth/internal/auth/oidc"
	"github.com/berth-registry/berth/internal/config"
	"github.com/berth-registry/berth/internal/policy"
	"github.com/berth-registry/berth/internal/server"
)

// TestExamples keeps examples/*.toml valid: each must load with config.Load
// and pass what `berth config check` and startup check (CEL claim mappings
// and access policies, password hashes, tag patterns), without warnings, and
// must have an access policy (with [auth] and no policy every request is
// denied).
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
			if !cfg.HasPolicies() {
				t.Errorf("the example has [auth] but no access policy: it would deny every request")
			}
			if err := server.Check(cfg); err != nil {
				t.Fatalf("server.Check:\n%v", err)
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

// Identities for the decisions below.
func ghaJob(repository, ref string) *policy.Identity {
	return &policy.Identity{ID: "oidc:github-actions:" + repository + "@" + ref, Username: repository + "@" + ref,
		OIDC: &policy.OIDC{ProviderName: "github-actions", Claims: map[string]any{
			"iss": "https://token.actions.githubusercontent.com", "repository": repository,
			"repository_owner": "myorg", "ref": ref,
		}}}
}

func staticUser(name string) *policy.Identity {
	return &policy.Identity{ID: "user:" + name, Username: name}
}

type decisionCase struct {
	name   string
	id     *policy.Identity // nil: anonymous
	action string
	repo   string
	allow  bool
}

// checkDecisions compiles cfg's policies as the server does and checks each
// case.
func checkDecisions(t *testing.T, cfg *config.Config, cases []decisionCase) {
	t.Helper()
	pc := server.PolicyConfig(cfg)
	if pc.Open {
		t.Fatal("the configuration is in open mode")
	}
	e, err := policy.Compile(pc)
	if err != nil {
		t.Fatalf("policy.Compile: %v", err)
	}
	op := map[string]string{"pull": "get-manifest", "push": "put-manifest", "delete": "delete-manifest"}
	for _, c := range cases {
		d := e.Decide(context.Background(), policy.Input{Identity: c.id,
			Request: policy.Request{Action: c.action, Operation: op[c.action], Repository: c.repo}})
		if d.Allowed != c.allow {
			t.Errorf("%s: %s %s: allowed = %v, want %v (%s)", c.name, c.action, c.repo, d.Allowed, c.allow, d.Reason)
		}
	}
}

// TestExampleDecisions checks what the examples' comments and docs say they allow.
func TestExampleDecisions(t *testing.T) {
	load := func(name string) *config.Config {
		cfg, err := config.Load(filepath.Join("../../examples", name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return cfg
	}
	t.Run("github-actions", func(t *testing.T) {
		checkDecisions(t, load("github-actions.toml"), []decisionCase{
			{"org job, own repository", ghaJob("myorg/api", "refs/heads/feature"), "push", "myorg/api", true},
			{"other org", ghaJob("evil/api", "refs/heads/main"), "pull", "myorg/api", false},
			{"production from main", ghaJob("myorg/api", "refs/heads/main"), "push", "production/api", true},
			{"production from a branch", ghaJob("myorg/api", "refs/heads/feature"), "pull", "production/api", false},
			{"production from another repository", ghaJob("myorg/docs", "refs/heads/main"), "push", "production", false},
			{"dev from a branch", ghaJob("myorg/docs", "refs/heads/x"), "push", "dev/docs", true},
			{"anonymous", nil, "pull", "dev/docs", false},
		})
	})
	t.Run("static-users", func(t *testing.T) {
		checkDecisions(t, load("static-users.toml"), []decisionCase{
			{"alice deletes", staticUser("alice"), "delete", "team/app", true},
			{"ci-bot pulls", staticUser("ci-bot"), "pull", "team/app", true},
			{"ci-bot pushes ci/", staticUser("ci-bot"), "push", "ci/app", true},
			{"ci-bot pushes elsewhere", staticUser("ci-bot"), "push", "team/app", false},
			{"ci-bot deletes", staticUser("ci-bot"), "delete", "ci/app", false},
			{"someone else", staticUser("mallory"), "pull", "ci/app", false},
			{"anonymous", nil, "pull", "ci/app", false},
		})
	})
	t.Run("kubernetes", func(t *testing.T) {
		ci := &policy.Identity{ID: "oidc:kubernetes:system:serviceaccount:ci:builder", Groups: []string{"k8s", "k8s:ci"},
			OIDC: &policy.OIDC{ProviderName: "kubernetes"}}
		flux := &policy.Identity{ID: "oidc:kubernetes:system:serviceaccount:flux-system:x", Groups: []string{"k8s", "k8s:flux-system"},
			OIDC: &policy.OIDC{ProviderName: "kubernetes"}}
		checkDecisions(t, load("kubernetes.toml"), []decisionCase{
			{"ci pushes ci/", ci, "push", "ci/base", true},
			{"ci pushes elsewhere", ci, "push", "apps/base", false},
			{"flux pulls", flux, "pull", "ci/base", true},
			{"flux pushes", flux, "push", "ci/base", false},
			{"anonymous", nil, "pull", "ci/base", false},
		})
	})
	t.Run("gitlab", func(t *testing.T) {
		job := &policy.Identity{ID: "oidc:gitlab:mygroup/App@main", OIDC: &policy.OIDC{ProviderName: "gitlab",
			Claims: map[string]any{"project_path": "mygroup/App", "ref": "main"}}}
		checkDecisions(t, load("gitlab.toml"), []decisionCase{
			{"own path", job, "push", "mygroup/app", true},
			{"below own path", job, "push", "mygroup/app/cache", true},
			{"prefix is not a path", job, "push", "mygroup/application", false},
			{"pull anything", job, "pull", "mygroup/other", true},
			{"anonymous", nil, "pull", "mygroup/app", false},
		})
	})
	t.Run("generic", func(t *testing.T) {
		user := &policy.Identity{ID: "oidc:ci:jane", Username: "jane", OIDC: &policy.OIDC{ProviderName: "ci"}}
		writer := &policy.Identity{ID: "oidc:ci:joe", Username: "joe", Groups: []string{"registry-writers"}, OIDC: &policy.OIDC{ProviderName: "ci"}}
		checkDecisions(t, load("generic.toml"), []decisionCase{
			{"pull", user, "pull", "team/app", true},
			{"own namespace", user, "push", "users/jane/tool", true},
			{"other namespace", user, "push", "users/joe/tool", false},
			{"writer deletes", writer, "delete", "team/app", true},
			{"anonymous", nil, "pull", "team/app", false},
		})
	})
}

// angosCompleteExample is the "Complete Example" of the Angos GitHub Actions
// guide (seed 000), as written, without its [server.tls] table (the
// certificate files do not exist here).
var angosCompleteExample = seedtest.Without(seedtest.AngosComplete, "server.tls")

// TestAngosCompleteExample: an Angos file brought over loads as written, with
// its access policies.
func TestAngosCompleteExample(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(path, []byte(angosCompleteExample), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("config.Load:\n%v", err)
	}
	if err := server.Check(cfg); err != nil {
		t.Fatalf("server.Check:\n%v", err)
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

	if cfg.Global.AccessPolicy != nil {
		t.Errorf("global policy: %+v", cfg.Global.AccessPolicy)
	}
	if len(cfg.Repositories) != 2 {
		t.Fatalf("repositories: %+v", cfg.Repositories)
	}
	for _, r := range cfg.Repositories {
		if r.AccessPolicy == nil || r.AccessPolicy.DefaultAllow || len(r.AccessPolicy.Rules) != 1 {
			t.Errorf("repository %q: policy %+v", r.Key, r.AccessPolicy)
		}
	}
	checkDecisions(t, cfg, []decisionCase{
		{"production, main of myorg/api", ghaJob("myorg/api", "refs/heads/main"), "push", "production", true},
		{"below production, main of myorg/web", ghaJob("myorg/web", "refs/heads/main"), "push", "production/web", true},
		{"production pull, main of myorg/worker", ghaJob("myorg/worker", "refs/heads/main"), "pull", "production/worker/x", true},
		{"production from a branch", ghaJob("myorg/api", "refs/heads/dev"), "push", "production", false},
		{"production from another repository", ghaJob("myorg/docs", "refs/heads/main"), "push", "production", false},
		{"production, static user", staticUser("alice"), "pull", "production", false},
		{"production, anonymous", nil, "pull", "production", false},
		{"dev, any branch of the org", ghaJob("myorg/anything", "refs/heads/feature"), "push", "dev", true},
		{"below dev", ghaJob("myorg/x", "refs/heads/main"), "push", "dev/api/x", true},
		{"dev, another org", ghaJob("evil/x", "refs/heads/main"), "push", "dev", false},
		{"devtools is not below dev", ghaJob("myorg/api", "refs/heads/main"), "push", "devtools", false},
		{"no policy covers myorg/api", ghaJob("myorg/api", "refs/heads/main"), "push", "myorg/api", false},
	})
}
