package policy

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
)

// gha is an identity from a GitHub Actions ID token.
func gha(claims map[string]any) *Identity {
	return &Identity{
		ID:       "oidc:github-actions:" + fmt.Sprint(claims["repository"]),
		Username: fmt.Sprint(claims["repository"]),
		ClientIP: "203.0.113.7",
		OIDC:     &OIDC{ProviderName: "github-actions", Claims: claims},
	}
}

func ghaClaims(kv ...string) map[string]any {
	c := map[string]any{
		"iss":         "https://token.actions.githubusercontent.com",
		"sub":         "repo:myorg/api:ref:refs/heads/main",
		"repository":  "myorg/api",
		"ref":         "refs/heads/main",
		"actor":       "someone",
		"workflow":    "build.yml",
		"environment": "",
		"run_number":  float64(42), // JSON numbers decode as float64
	}
	for i := 0; i+1 < len(kv); i += 2 {
		c[kv[i]] = kv[i+1]
	}
	return c
}

var staticUser = &Identity{ID: "user:alice", Username: "alice", Groups: []string{"admins"}, ClientIP: "10.1.2.3"}

func push(repo string) Request {
	return Request{Action: "push", Operation: "put-manifest", Repository: repo, Reference: "v1", Method: "PUT"}
}

func pull(repo string) Request {
	return Request{Action: "pull", Operation: "get-manifest", Repository: repo, Reference: "v1", Method: "GET"}
}

func mustCompile(t testing.TB, c Config) *Engine {
	t.Helper()
	e, err := Compile(c)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return e
}

// decide runs Decide and Explain and checks that they agree.
func decide(t *testing.T, e *Engine, in Input) Decision {
	t.Helper()
	d := e.Decide(context.Background(), in)
	ex := e.Explain(context.Background(), in)
	if ex.Decision.Allowed != d.Allowed || ex.Decision.Policy != d.Policy || ex.Decision.Rule != d.Rule {
		t.Errorf("Explain decided %+v, Decide %+v", ex.Decision, d)
	}
	return d
}

// seed holds every policy expression of the user's description
// (seeds/000), unchanged.
var seed = struct {
	global, myapp, mainOnly, releases, workflows, environments, actors, prodComplete, devComplete string
}{
	global: `identity.oidc != null && identity.oidc.claims['repository'].startsWith('myorg/')`,
	myapp: `identity.oidc != null &&
identity.oidc.claims["repository"].matches("^myorg/(app1|app2|app3)$")`,
	mainOnly: `identity.oidc != null &&
identity.oidc.claims["ref"] == "refs/heads/main" &&
identity.oidc.claims["repository"].startsWith("myorg/")`,
	// TOML's ''' literal strings keep the two backslashes: CEL sees \\. in a
	// string literal, i.e. the regex \. (a literal dot).
	releases: `identity.oidc != null &&
identity.oidc.claims["ref"].matches("^refs/tags/v[0-9]+\\.[0-9]+\\.[0-9]+$")`,
	workflows: `identity.oidc != null &&
identity.oidc.claims["workflow"].matches("^(deploy|release)\\.yml$")`,
	environments: `identity.oidc != null &&
identity.oidc.claims["environment"] == "production"`,
	actors: `identity.oidc != null &&
identity.oidc.claims["actor"] in ["myuser", "dependabot[bot]", "renovate[bot]"]`,
	prodComplete: `identity.oidc != null &&
identity.oidc.provider_name == "github-actions" &&
identity.oidc.claims["ref"] == "refs/heads/main" &&
identity.oidc.claims["repository"].matches("^myorg/(api|web|worker)$")`,
	devComplete: `identity.oidc != null &&
identity.oidc.claims["repository"].startsWith("myorg/")`,
}

func TestSeedSnippets(t *testing.T) {
	type tc struct {
		name  string
		id    *Identity
		allow bool
	}
	tests := []struct {
		name  string
		rule  string
		cases []tc
	}{
		{"global org", seed.global, []tc{
			{"org repo", gha(ghaClaims()), true},
			{"other org", gha(ghaClaims("repository", "evil/api")), false},
			{"prefix trick", gha(ghaClaims("repository", "myorgx/api")), false},
			{"static user", staticUser, false},
			{"anonymous", nil, false},
		}},
		{"specific repositories", seed.myapp, []tc{
			{"app2", gha(ghaClaims("repository", "myorg/app2")), true},
			{"app4", gha(ghaClaims("repository", "myorg/app4")), false},
			{"suffix", gha(ghaClaims("repository", "myorg/app1-fork")), false},
			{"static user", staticUser, false},
		}},
		{"main branch only", seed.mainOnly, []tc{
			{"main", gha(ghaClaims()), true},
			{"feature", gha(ghaClaims("ref", "refs/heads/feature")), false},
			{"main of other org", gha(ghaClaims("repository", "evil/api")), false},
		}},
		{"release tags only", seed.releases, []tc{
			{"v1.2.3", gha(ghaClaims("ref", "refs/tags/v1.2.3")), true},
			{"v10.20.30", gha(ghaClaims("ref", "refs/tags/v10.20.30")), true},
			{"v1x2x3: the dots are literal", gha(ghaClaims("ref", "refs/tags/v1x2x3")), false},
			{"v1.2", gha(ghaClaims("ref", "refs/tags/v1.2")), false},
			{"v1.2.3-rc1", gha(ghaClaims("ref", "refs/tags/v1.2.3-rc1")), false},
			{"branch", gha(ghaClaims("ref", "refs/heads/main")), false},
		}},
		{"specific workflows", seed.workflows, []tc{
			{"deploy.yml", gha(ghaClaims("workflow", "deploy.yml")), true},
			{"release.yml", gha(ghaClaims("workflow", "release.yml")), true},
			{"deployxyml", gha(ghaClaims("workflow", "deployxyml")), false},
			{"build.yml", gha(ghaClaims()), false},
		}},
		{"specific environments", seed.environments, []tc{
			{"production", gha(ghaClaims("environment", "production")), true},
			{"staging", gha(ghaClaims("environment", "staging")), false},
		}},
		{"specific actors", seed.actors, []tc{
			{"myuser", gha(ghaClaims("actor", "myuser")), true},
			{"dependabot", gha(ghaClaims("actor", "dependabot[bot]")), true},
			{"renovate", gha(ghaClaims("actor", "renovate[bot]")), true},
			{"someone", gha(ghaClaims()), false},
			{"anonymous", nil, false},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// As a global policy and as a repository policy.
			for _, c := range []Config{
				{Global: &Source{Rules: []string{tt.rule}}},
				{Repositories: map[string]*Source{"myapp": {Rules: []string{tt.rule}}}},
			} {
				e := mustCompile(t, c)
				for _, k := range tt.cases {
					d := decide(t, e, Input{Identity: k.id, Request: push("myapp")})
					if d.Allowed != k.allow {
						t.Errorf("%s: Allowed = %v, want %v (%s)", k.name, d.Allowed, k.allow, d.Reason)
					}
					if k.allow && d.Rule != 0 || !k.allow && d.Rule != -1 {
						t.Errorf("%s: Rule = %d (%s)", k.name, d.Rule, d.Reason)
					}
				}
			}
		})
	}
}

// completeExample is the seed's Complete Example.
func completeExample(open bool) Config {
	return Config{
		Open: open,
		Repositories: map[string]*Source{
			"production": {DefaultAllow: false, Rules: []string{seed.prodComplete}, Line: 17},
			"dev":        {DefaultAllow: false, Rules: []string{seed.devComplete}, Line: 26},
		},
	}
}

func TestCompleteExample(t *testing.T) {
	e := mustCompile(t, completeExample(false))
	other := gha(ghaClaims())
	other.OIDC.ProviderName = "gitlab"
	tests := []struct {
		name   string
		id     *Identity
		req    Request
		allow  bool
		policy string
	}{
		{"production main api", gha(ghaClaims()), push("production"), true, `repository."production".access_policy`},
		{"production main web below", gha(ghaClaims("repository", "myorg/web")), push("production/web"), true, `repository."production".access_policy`},
		{"production main worker pull", gha(ghaClaims("repository", "myorg/worker")), pull("production/worker/x"), true, `repository."production".access_policy`},
		{"production branch", gha(ghaClaims("ref", "refs/heads/dev")), push("production"), false, `repository."production".access_policy`},
		{"production tag", gha(ghaClaims("ref", "refs/tags/v1.0.0")), push("production"), false, `repository."production".access_policy`},
		{"production other repo", gha(ghaClaims("repository", "myorg/docs")), push("production"), false, `repository."production".access_policy`},
		{"production other provider", other, push("production"), false, `repository."production".access_policy`},
		{"production static user", staticUser, pull("production"), false, `repository."production".access_policy`},
		{"production anonymous", nil, pull("production"), false, `repository."production".access_policy`},
		{"dev any branch", gha(ghaClaims("ref", "refs/heads/feature", "repository", "myorg/anything")), push("dev"), true, `repository."dev".access_policy`},
		{"dev below", gha(ghaClaims("repository", "myorg/x")), push("dev/api/x"), true, `repository."dev".access_policy`},
		{"dev other org", gha(ghaClaims("repository", "evil/x")), push("dev"), false, `repository."dev".access_policy`},
		{"dev prefix is a namespace, not a string prefix", gha(ghaClaims()), push("devtools"), false, ""},
		{"other namespace", gha(ghaClaims()), push("staging"), false, ""},
		{"other namespace anonymous", nil, pull("staging/app"), false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := decide(t, e, Input{Identity: tt.id, Request: tt.req})
			if d.Allowed != tt.allow || d.Policy != tt.policy {
				t.Errorf("got %+v, want allowed=%v policy=%q", d, tt.allow, tt.policy)
			}
		})
	}

	// Open mode: uncovered namespaces are allowed, covered ones still
	// decided by their policy.
	open := mustCompile(t, completeExample(true))
	if d := decide(t, open, Input{Request: push("staging")}); !d.Allowed || d.Policy != "" || d.Rule != -1 {
		t.Errorf("open, uncovered: %+v", d)
	}
	if d := decide(t, open, Input{Request: push("production")}); d.Allowed {
		t.Errorf("open, production anonymous: %+v", d)
	}
}

func TestDefaultOrdering(t *testing.T) {
	admins := `"admins" in identity.groups`
	alice := `identity.username == "alice"`
	never := `false`
	tests := []struct {
		name     string
		src      Source
		id       *Identity
		allow    bool
		rule     int
		inReason string
	}{
		{"deny default, first true allows", Source{Rules: []string{never, admins, alice}}, staticUser, true, 1, "allowed by rule 1"},
		{"deny default, none true", Source{Rules: []string{never, admins}}, &Identity{ID: "user:bob", Username: "bob"}, false, -1, "denied by default"},
		{"allow default, first true denies", Source{DefaultAllow: true, Rules: []string{never, alice, admins}}, staticUser, false, 1, "denied by rule 1"},
		{"allow default, none true", Source{DefaultAllow: true, Rules: []string{never, alice}}, &Identity{ID: "user:bob", Username: "bob"}, true, -1, "allowed by default"},
		{"deny default, no rules", Source{}, staticUser, false, -1, "denied by default"},
		{"allow default, no rules", Source{DefaultAllow: true}, staticUser, true, -1, "allowed by default"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := tt.src
			e := mustCompile(t, Config{Repositories: map[string]*Source{"app": &src}})
			d := decide(t, e, Input{Identity: tt.id, Request: pull("app")})
			if d.Allowed != tt.allow || d.Rule != tt.rule || !strings.Contains(d.Reason, tt.inReason) {
				t.Errorf("got %+v, want allowed=%v rule=%d reason~%q", d, tt.allow, tt.rule, tt.inReason)
			}
			if d.Policy != `repository."app".access_policy` {
				t.Errorf("Policy = %q", d.Policy)
			}
		})
	}
}

func TestFailClosed(t *testing.T) {
	tests := []struct {
		name     string
		src      Source
		id       *Identity
		rule     int
		inReason string
	}{
		{"missing claim", Source{Rules: []string{`identity.oidc.claims['missing'] == 'x'`}}, gha(ghaClaims()), 0, "no such key: missing"},
		{"missing claim stops later allowing rules", Source{Rules: []string{`identity.oidc.claims['missing'] == 'x'`, `true`}}, gha(ghaClaims()), 0, "no such key"},
		{"missing claim under default allow", Source{DefaultAllow: true, Rules: []string{`identity.oidc.claims['missing'] == 'x'`}}, gha(ghaClaims()), 0, "no such key"},
		{"null oidc", Source{DefaultAllow: true, Rules: []string{`false`, `identity.oidc.claims['repository'] == 'x'`}}, staticUser, 1, "identity.oidc is null"},
		{"non-bool result", Source{Rules: []string{`identity.oidc.claims['repository']`}}, gha(ghaClaims()), 0, "rule returned string, not bool"},
		{"non-bool under default allow", Source{DefaultAllow: true, Rules: []string{`identity.oidc.claims['run_number']`}}, gha(ghaClaims()), 0, "rule returned double, not bool"},
		{"wrong claim type", Source{Rules: []string{`identity.oidc.claims['run_number'].startsWith('4')`}}, gha(ghaClaims()), 0, "no such overload"},
		{"bad runtime regex", Source{Rules: []string{`identity.username.matches(identity.oidc.claims['ref'])`}}, gha(ghaClaims("ref", "(")), 0, "rule 0 failed"},
		{"bad runtime cidr", Source{Rules: []string{`ip_in_cidr(identity.client_ip, identity.username)`}}, staticUser, 0, "invalid CIDR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := tt.src
			e := mustCompile(t, Config{Repositories: map[string]*Source{"app": &src}})
			d := decide(t, e, Input{Identity: tt.id, Request: push("app")})
			if d.Allowed || d.Rule != tt.rule || !strings.Contains(d.Reason, tt.inReason) || !strings.Contains(d.Reason, "fail closed") {
				t.Errorf("got %+v, want denied by rule %d, reason~%q", d, tt.rule, tt.inReason)
			}
			for _, r := range src.Rules {
				if strings.Contains(d.Reason, r) {
					t.Errorf("Reason %q contains the rule text", d.Reason)
				}
			}
		})
	}
}

func TestCompileErrors(t *testing.T) {
	_, err := Compile(Config{
		Global: &Source{Line: 3, Rules: []string{
			`identity.oidc != null`,
			`identity.usernam == "x"`, // typo in a field
		}},
		Repositories: map[string]*Source{
			"production": {Rules: []string{
				`identity.username`, // not bool
				``,                  // empty
				"request.action == 'push' &&\n  requets.repository == 'x'", // undeclared, line 2
				`ip_in_cidr(identity.client_ip, "10.0.0.0/33")`,            // bad constant CIDR
				`identity.groups.all(a, identity.groups.all(b, identity.groups.all(c, a + b + c != "")))`,
				`identity.username.matches("(")`, // constant regex that does not compile
			}},
			"Bad_Key": {Rules: []string{`true`}},
			"team/*":  {Rules: []string{`true`}},
			"*/api":   {Rules: []string{`true`}},
		},
	})
	var ce *CompileError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want *CompileError", err)
	}
	want := []struct {
		key          string
		rule         int
		line, column int
		msg          string
	}{
		{"global.access_policy", 1, 1, 9, "undefined field 'usernam'"},
		{`repository."team/*".access_policy`, -1, 0, 0, "ambiguous"},
		{`repository."Bad_Key".access_policy`, -1, 0, 0, "not a valid repository path component"},
		{`repository."production".access_policy`, 0, 0, 0, "must evaluate to bool, not string"},
		{`repository."production".access_policy`, 1, 0, 0, "must not be empty"},
		{`repository."production".access_policy`, 2, 2, 3, "undeclared reference to 'requets'"},
		{`repository."production".access_policy`, 3, 1, 32, "invalid CIDR"},
		{`repository."production".access_policy`, 4, 0, 0, "worst-case cost"},
		{`repository."production".access_policy`, 5, 0, 0, "error parsing regexp"},
	}
	for _, w := range want {
		found := slices.ContainsFunc(ce.Problems, func(p Problem) bool {
			return p.Key == w.key && p.Rule == w.rule && p.Line == w.line && p.Column == w.column && strings.Contains(p.Message, w.msg)
		})
		if !found {
			t.Errorf("missing problem %+v", w)
		}
	}
	if len(ce.Problems) != len(want) {
		t.Errorf("got %d problems, want %d:\n%v", len(ce.Problems), len(want), err)
	}
	msg := err.Error()
	for _, s := range []string{"global.access_policy.rules[1] (line 3): 1:9: undefined field", `repository."production".access_policy.rules[2]: 2:3:`} {
		if !strings.Contains(msg, s) {
			t.Errorf("error text lacks %q:\n%s", s, msg)
		}
	}
}

func TestRepositoryKeys(t *testing.T) {
	keys := []string{"dev", "dev/*", "dev/api", "team/*", "app/**", "a/*/c", "a/b/**", "x/*/**", "*/*/*/*/cache"}
	c := Config{Repositories: map[string]*Source{}}
	for _, k := range keys {
		c.Repositories[k] = &Source{Rules: []string{`true`}}
	}
	e := mustCompile(t, c)
	tests := map[string]string{
		"dev":           "dev",
		"dev/x":         "dev/*",
		"dev/api":       "dev/api",
		"dev/api/x":     "dev/api",
		"dev/x/y":       "dev",
		"devtools":      "",
		"team":          "",
		"team/api":      "team/*",
		"team/api/x":    "",
		"app":           "app/**",
		"app/x/y/z":     "app/**",
		"app/cache":     "app/**",
		"q/r/s/t/cache": "*/*/*/*/cache",
		"a/b/c":         "a/*/c", // same literals; a/b/** has a "**"
		"a/b/d":         "a/b/**",
		"x":             "",
		"x/y":           "x/*/**",
		"x/y/z":         "x/*/**",
		"":              "",
		"dev/":          "",
		"/dev":          "",
		"dev//x":        "",
	}
	for repo, want := range tests {
		if got := e.Covering(repo); got != want {
			t.Errorf("Covering(%q) = %q, want %q", repo, got, want)
		}
	}
	e = mustCompile(t, Config{Repositories: map[string]*Source{"**/cache": {}, "**": {}, "*": {}}})
	for repo, want := range map[string]string{"cache": "**/cache", "a/b/cache": "**/cache", "a": "*", "a/b": "**", "a/cache/b": "**"} {
		if got := e.Covering(repo); got != want {
			t.Errorf("Covering(%q) = %q, want %q", repo, got, want)
		}
	}
}

func TestRepositoryKeyErrors(t *testing.T) {
	tests := []struct {
		keys []string
		msg  string // "" = compiles
	}{
		{[]string{"team/*", "*/api"}, `"team/api"`},
		{[]string{"dev", "dev/**"}, `ambiguous`},
		{[]string{"app/**", "**/cache"}, `ambiguous`},
		{[]string{"*/*", "a/**"}, ``},  // a/** has more literals
		{[]string{"a/*", "a/*/*"}, ``}, // never the same name
		{[]string{"a/*/b", "a/b/*"}, `"a/b/b"`},
		{[]string{"**", "*"}, ``}, // * has fewer **
		{[]string{"**", "**/**"}, `redundant`},
		{[]string{"app-*"}, `whole path component`},
		{[]string{"a//b"}, `empty path component`},
		{[]string{"UPPER"}, `not a valid`},
		{[]string{""}, `must not be empty`},
		{[]string{strings.Repeat("a", 256)}, `longer than`},
	}
	for _, tt := range tests {
		c := Config{Repositories: map[string]*Source{}}
		for _, k := range tt.keys {
			c.Repositories[k] = &Source{Rules: []string{`true`}}
		}
		_, err := Compile(c)
		switch {
		case tt.msg == "" && err != nil:
			t.Errorf("%q: %v", tt.keys, err)
		case tt.msg != "" && (err == nil || !strings.Contains(err.Error(), tt.msg)):
			t.Errorf("%q: err = %v, want ~%q", tt.keys, err, tt.msg)
		}
	}
}

func TestGlobalAndRepository(t *testing.T) {
	e := mustCompile(t, Config{
		Global: &Source{Rules: []string{`identity.oidc != null && identity.oidc.claims['repository'].startsWith('myorg/')`}},
		Repositories: map[string]*Source{
			"production": {Rules: []string{`identity.oidc != null && identity.oidc.claims['ref'] == 'refs/heads/main'`}},
		},
	})
	tests := []struct {
		name   string
		id     *Identity
		repo   string
		allow  bool
		policy string
	}{
		{"both allow", gha(ghaClaims()), "production", true, `repository."production".access_policy`},
		{"global denies", gha(ghaClaims("repository", "evil/x")), "production", false, "global.access_policy"},
		{"repository denies", gha(ghaClaims("ref", "refs/heads/x")), "production", false, `repository."production".access_policy`},
		{"only global covers", gha(ghaClaims("ref", "refs/heads/x")), "staging", true, "global.access_policy"},
		{"only global covers, denied", gha(ghaClaims("repository", "evil/x")), "staging", false, "global.access_policy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := decide(t, e, Input{Identity: tt.id, Request: push(tt.repo)})
			if d.Allowed != tt.allow || d.Policy != tt.policy {
				t.Errorf("got %+v, want allowed=%v policy=%q", d, tt.allow, tt.policy)
			}
		})
	}
	d := e.Decide(context.Background(), Input{Identity: gha(ghaClaims()), Request: push("production")})
	if !strings.Contains(d.Reason, "global.access_policy: allowed by rule 0") || !strings.Contains(d.Reason, `repository."production".access_policy: allowed by rule 0`) {
		t.Errorf("Reason = %q, want both policies", d.Reason)
	}
}

func TestWithoutRepository(t *testing.T) {
	catalog := Request{Action: "pull", Operation: "list-catalog", Method: "GET"}
	none := mustCompile(t, Config{Repositories: map[string]*Source{"dev": {Rules: []string{`true`}}}})
	if d := decide(t, none, Input{Identity: staticUser, Request: catalog}); !d.Allowed {
		t.Errorf("authenticated, no global: %+v", d)
	}
	if d := decide(t, none, Input{Request: catalog}); d.Allowed {
		t.Errorf("anonymous, no global: %+v", d)
	}
	if d := decide(t, none, Input{Identity: &Identity{ID: AnonymousID, ClientIP: "10.0.0.1"}, Request: catalog}); d.Allowed {
		t.Errorf("anonymous by ID, no global: %+v", d)
	}
	open := mustCompile(t, Config{Open: true})
	if d := decide(t, open, Input{Request: catalog}); !d.Allowed {
		t.Errorf("open, anonymous: %+v", d)
	}
	if d := decide(t, open, Input{Request: push("anything/at/all")}); !d.Allowed {
		t.Errorf("open, push: %+v", d)
	}
	global := mustCompile(t, Config{Global: &Source{Rules: []string{`request.repository == "" && "admins" in identity.groups`}}})
	if d := decide(t, global, Input{Identity: staticUser, Request: catalog}); !d.Allowed || d.Policy != "global.access_policy" {
		t.Errorf("global allows: %+v", d)
	}
	if d := decide(t, global, Input{Identity: &Identity{ID: "user:bob"}, Request: catalog}); d.Allowed {
		t.Errorf("global denies: %+v", d)
	}
}

func TestAnonymous(t *testing.T) {
	e := mustCompile(t, Config{Repositories: map[string]*Source{
		"public": {Rules: []string{`identity.oidc == null && identity.id == "anonymous" && identity.username == "" && size(identity.groups) == 0 && request.action == "pull"`}},
		"guard":  {Rules: []string{`identity.oidc != null && identity.oidc.claims["repository"] == "x"`, `!has(identity.oidc)`}},
	}})
	if d := decide(t, e, Input{Request: pull("public/x")}); !d.Allowed {
		t.Errorf("anonymous pull: %+v", d)
	}
	if d := decide(t, e, Input{Request: push("public/x")}); d.Allowed {
		t.Errorf("anonymous push: %+v", d)
	}
	if d := decide(t, e, Input{Request: pull("guard")}); !d.Allowed || d.Rule != 1 {
		t.Errorf("guarded rule is false, not an error: %+v", d)
	}
}

func TestRequestFieldsAndHelpers(t *testing.T) {
	id := &Identity{ID: "user:ci", Username: "ci", Groups: []string{"builders", "ops"}, ClientIP: "10.20.30.40"}
	req := Request{Action: "push", Operation: "mount-blob", Repository: "team/api", Reference: "v1.0.0", Tags: []string{"v1", "latest"},
		Digest: "sha256:" + strings.Repeat("a", 64), From: "team/base", ArtifactType: "application/vnd.example", Method: "POST"}
	rules := []string{
		`request.action == "push" && request.operation == "mount-blob"`,
		`request.repository == "team/api" && request.namespace == request.repository`,
		`request.reference == "v1.0.0" && "latest" in request.tags && request.tags.size() == 2`,
		`request.digest.startsWith("sha256:") && request.from == "team/base" && request.artifact_type == "application/vnd.example" && request.method == "POST"`,
		`ip_in_cidr(identity.client_ip, "10.0.0.0/8") && !ip_in_cidr(identity.client_ip, "192.168.0.0/16") && !ip_in_cidr("", "10.0.0.0/8")`,
		`cidr("10.0.0.0/8").containsIP(identity.client_ip) && ip(identity.client_ip).family() == 4`,
		`ip_in_cidr("::ffff:10.1.1.1", "10.0.0.0/8") && ip_in_cidr("2001:db8::1", "2001:db8::/32")`,
		`identity.groups.exists(g, g == "ops") && identity.username.upperAscii() == "CI" && identity.id.split(":")[1] == "ci"`,
		`request.repository.split("/")[0] == "team" && ["a", "b"].distinct().size() == 2`,
		`has(identity.username) && !has(identity.oidc)`,
		`type(identity) != type(request)`,
	}
	for i, r := range rules {
		e := mustCompile(t, Config{Repositories: map[string]*Source{"team/*": {Rules: []string{r}}}})
		if d := decide(t, e, Input{Identity: id, Request: req}); !d.Allowed {
			t.Errorf("rule %d %s: %+v", i, r, d)
		}
	}
	// Claims are JSON: nested objects, arrays and numbers work.
	claims := map[string]any{"groups": []any{"a", "b"}, "nested": map[string]any{"k": "v"}, "n": float64(3), "b": true}
	e := mustCompile(t, Config{Global: &Source{Rules: []string{
		`"b" in identity.oidc.claims.groups && identity.oidc.claims.nested.k == "v" && identity.oidc.claims.n == 3 && identity.oidc.claims.b`,
	}}})
	if d := decide(t, e, Input{Identity: &Identity{ID: "oidc:x:y", OIDC: &OIDC{ProviderName: "x", Claims: claims}}, Request: pull("a")}); !d.Allowed {
		t.Errorf("json claims: %+v", d)
	}
	// A claim of bool type decides alone (dyn output).
	e = mustCompile(t, Config{Global: &Source{Rules: []string{`identity.oidc.claims["b"]`}}})
	if d := decide(t, e, Input{Identity: &Identity{ID: "oidc:x:y", OIDC: &OIDC{Claims: claims}}, Request: pull("a")}); !d.Allowed {
		t.Errorf("bool claim: %+v", d)
	}
	// Nil claims are an empty map.
	e = mustCompile(t, Config{Global: &Source{Rules: []string{`size(identity.oidc.claims) == 0 && identity.oidc.provider_name == "p"`}}})
	if d := decide(t, e, Input{Identity: &Identity{ID: "oidc:p:y", OIDC: &OIDC{ProviderName: "p"}}, Request: pull("a")}); !d.Allowed {
		t.Errorf("nil claims: %+v", d)
	}
}

func TestCost(t *testing.T) {
	// Linear over groups: accepted at load (the estimate is within the
	// budget), stopped at run time when the groups are far more than a
	// token can carry.
	rule := `identity.groups.exists(g, g.startsWith("blocked-"))`
	e := mustCompile(t, Config{Global: &Source{DefaultAllow: true, Rules: []string{rule}}})
	few := &Identity{ID: "user:a", Groups: []string{"x", "y"}}
	if d := decide(t, e, Input{Identity: few, Request: pull("a")}); !d.Allowed {
		t.Errorf("few groups: %+v", d)
	}
	many := &Identity{ID: "user:a"}
	many.Groups = slices.Repeat([]string{"g"}, 400_000)
	if d := decide(t, e, Input{Identity: many, Request: pull("a")}); d.Allowed || !strings.Contains(d.Reason, "cost limit") {
		t.Errorf("many groups: %+v", d)
	}
	// Cubic: refused at load.
	_, err := Compile(Config{Global: &Source{Rules: []string{
		`identity.groups.exists(a, identity.groups.exists(b, identity.groups.exists(c, a + b + c == "nope")))`,
	}}})
	if err == nil || !strings.Contains(err.Error(), "worst-case cost") {
		t.Errorf("cubic rule: %v", err)
	}
}

func TestContext(t *testing.T) {
	e := mustCompile(t, Config{Global: &Source{DefaultAllow: true, Rules: []string{`identity.groups.exists(g, g == "blocked")`}}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	in := Input{Identity: &Identity{ID: "user:a", Groups: make([]string, 1000)}, Request: pull("a")}
	if d := e.Decide(ctx, in); d.Allowed || !strings.Contains(d.Reason, "fail closed") {
		t.Errorf("cancelled: %+v", d)
	}
	if d := e.Decide(context.Background(), in); !d.Allowed {
		t.Errorf("not cancelled: %+v", d)
	}
}

func TestExplain(t *testing.T) {
	e := mustCompile(t, Config{
		Global: &Source{Rules: []string{`identity.oidc != null`, `identity.oidc.claims['missing'] == 'x'`}},
		Repositories: map[string]*Source{
			"production": {Rules: []string{`false`, seed.prodComplete, `identity.oidc.claims['repository']`}},
		},
	})
	ex := e.Explain(context.Background(), Input{Identity: gha(ghaClaims()), Request: push("production/api")})
	if !ex.Decision.Allowed || ex.Decision.Policy != `repository."production".access_policy` || ex.Decision.Rule != 1 {
		t.Errorf("Decision = %+v", ex.Decision)
	}
	want := []PolicyTrace{
		{Key: "global.access_policy", Outcome: "allowed by rule 0", Rules: []RuleTrace{
			{0, `identity.oidc != null`, "true"},
			{1, `identity.oidc.claims['missing'] == 'x'`, "error: no such key: missing"},
		}},
		{Key: `repository."production".access_policy`, Outcome: "allowed by rule 1", Rules: []RuleTrace{
			{0, `false`, "false"},
			{1, seed.prodComplete, "true"},
			{2, `identity.oidc.claims['repository']`, "error: rule returned string, not bool"},
		}},
	}
	if len(ex.Policies) != len(want) {
		t.Fatalf("Policies = %+v", ex.Policies)
	}
	for i, w := range want {
		got := ex.Policies[i]
		if got.Key != w.Key || got.Outcome != w.Outcome || !slices.Equal(got.Rules, w.Rules) {
			t.Errorf("policy %d:\n got %+v\nwant %+v", i, got, w)
		}
	}
	// Global denial still traces the repository policy.
	ex = e.Explain(context.Background(), Input{Identity: staticUser, Request: push("production")})
	if ex.Decision.Allowed || ex.Decision.Policy != "global.access_policy" || ex.Decision.Rule != 1 || len(ex.Policies) != 2 || ex.Policies[0].Outcome != "denied: rule 1 failed" {
		t.Errorf("static user: %+v", ex)
	}
	if ex.Policies[1].Outcome != "denied: rule 2 failed" {
		t.Errorf("repository outcome = %q", ex.Policies[1].Outcome)
	}
	// Nothing covers: no traces.
	ex = mustCompile(t, Config{}).Explain(context.Background(), Input{Identity: staticUser, Request: push("x")})
	if ex.Decision.Allowed || len(ex.Policies) != 0 || !strings.Contains(ex.Decision.Reason, "no access policy covers") {
		t.Errorf("uncovered: %+v", ex)
	}
}

// Policies with more rules than one combined CEL program can hold (the
// parser's nesting limit) are evaluated rule by rule, with the same result.
func TestManyRules(t *testing.T) {
	for _, n := range []int{1, 20, 300, 1000} {
		rules := make([]string, n)
		for i := range rules {
			rules[i] = fmt.Sprintf(`identity.username == "user%d" // rule %d`, i, i)
		}
		rules = append(rules, `identity.oidc.claims["x"] == "y"`)
		e := mustCompile(t, Config{Global: &Source{Rules: rules}})
		if combined := e.global.all != nil; combined != (n <= 20) {
			t.Errorf("%d rules: combined program = %v", n, combined)
		}
		for _, i := range []int{0, n / 2, n - 1} {
			d := decide(t, e, Input{Identity: &Identity{ID: "user:x", Username: fmt.Sprintf("user%d", i)}, Request: pull("a")})
			if !d.Allowed || d.Rule != i {
				t.Errorf("%d rules, user%d: %+v", n, i, d)
			}
		}
		d := decide(t, e, Input{Identity: &Identity{ID: "user:x", Username: "nobody"}, Request: pull("a")})
		if d.Allowed || d.Rule != n || !strings.Contains(d.Reason, "fail closed") {
			t.Errorf("%d rules, nobody: %+v", n, d)
		}
	}
}

func TestConcurrentDecide(t *testing.T) {
	e := mustCompile(t, completeExample(false))
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 200 {
				repo := "myorg/api"
				if (i+j)%2 == 1 {
					repo = "evil/api"
				}
				d := e.Decide(context.Background(), Input{Identity: gha(ghaClaims("repository", repo)), Request: push("production")})
				if d.Allowed != (repo == "myorg/api") {
					t.Errorf("concurrent: %+v", d)
					return
				}
			}
		})
	}
	wg.Wait()
}

// The policy package must stay free of HTTP and configuration (design
// principle 8).
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep == "net/http" || strings.HasPrefix(dep, "github.com/berth-registry/berth/") && dep != "github.com/berth-registry/berth/internal/policy" {
			t.Errorf("internal/policy depends on %s", dep)
		}
	}
}
