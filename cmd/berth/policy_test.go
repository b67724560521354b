package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/berth-registry/berth/internal/seedtest"

	"github.com/berth-registry/berth/internal/auth/users"
	"github.com/berth-registry/berth/internal/devissuer"
)

// explainSeedExample is the Complete Example of the GitHub Actions guide
// (seed 000) with its [server.tls] table removed.
var explainSeedExample = seedtest.Without(seedtest.AngosComplete, "server.tls")

func explainSeedConfig(t *testing.T, issuerLines string) string {
	t.Helper()
	return writeFile(t, seedtest.WithProviderKeys(explainSeedExample, issuerLines))
}

func explainClaimsFile(t *testing.T, claims map[string]any) string {
	t.Helper()
	b, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "claims.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func explainGHClaims(repo, ref string) map[string]any {
	owner, _, _ := strings.Cut(repo, "/")
	return map[string]any{
		"iss": "https://token.actions.githubusercontent.com", "aud": "https://github.com/" + owner,
		"sub": "repo:" + repo + ":ref:" + ref, "repository": repo, "repository_owner": owner,
		"ref": ref, "actor": "octocat", "run_attempt": 1,
	}
}

type explainCase struct {
	name string
	args []string
	code int
	want []string // substrings of stdout
}

func checkExplain(t *testing.T, cases []explainCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, stderr := runCmd(t, c.args...)
			if code != c.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, c.code, stdout, stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout)
				}
			}
		})
	}
}

func TestPolicyExplainClaims(t *testing.T) {
	cfg := explainSeedConfig(t, "")
	explain := func(claims map[string]any, repo, action string, more ...string) []string {
		args := []string{"policy", "explain", "-c", cfg, "--claims", explainClaimsFile(t, claims), "--provider", "github-actions",
			"--repository", repo, "--action", action}
		return append(args, more...)
	}
	main := explainGHClaims("myorg/api", "refs/heads/main")
	noRef := explainGHClaims("myorg/api", "refs/heads/main")
	delete(noRef, "ref")
	checkExplain(t, []explainCase{
		{"main branch may push to production", explain(main, "production/app", "push"), 0, []string{
			"identity: claims from ",
			"  id:        oidc:github-actions:https://token.actions.githubusercontent.com/repo:myorg/api:ref:refs/heads/main\n",
			"  provider:  github-actions\n",
			`    repository: "myorg/api"` + "\n",
			"    run_attempt: 1\n",
			"  operation:  put-manifest\n",
			`policy repository.production.access_policy (default deny): allowed by rule 0`,
			"  rule 0: true\n",
			`identity.oidc.claims["ref"] == "refs/heads/main" &&`,
			`decision: ALLOWED by repository.production.access_policy, rule 0` + "\n",
		}},
		{"feature branch may not push to production", explain(explainGHClaims("myorg/api", "refs/heads/feature"), "production/app", "push"), 3, []string{
			"  rule 0: false\n",
			`decision: DENIED by repository.production.access_policy, by its default (no rule matched)`,
			"the server answers 403 DENIED",
		}},
		{"other organisation may not pull from production", explain(explainGHClaims("otherorg/api", "refs/heads/main"), "production/app", "pull"), 3, []string{
			"  operation:  get-manifest\n", "DENIED",
		}},
		{"feature branch may push to dev", explain(explainGHClaims("myorg/api", "refs/heads/feature"), "dev/x", "push", "--operation", "start-upload"), 0, []string{
			"  operation:  start-upload\n", `decision: ALLOWED by repository.dev.access_policy, rule 0`,
		}},
		{"unconfigured namespace", explain(main, "other/x", "push"), 3, []string{
			"no access policy applies to this repository", "decision: DENIED (no policy decided)",
			`no access policy covers repository "other/x"`,
		}},
		{"missing claim fails closed", explain(noRef, "production/app", "push"), 3, []string{
			"  rule 0: error: ", `decision: DENIED by repository.production.access_policy, rule 0`,
		}},
		{"anonymous", []string{"policy", "explain", "-c", cfg, "--anonymous", "--repository", "production/app", "--action", "pull"}, 3, []string{
			"identity: anonymous", "  id:        anonymous\n", "  rule 0: false\n",
			"the server answers 401 with an authentication challenge",
		}},
		{"-c before the command", []string{"-c", cfg, "policy", "explain", "--anonymous", "--repository", "dev/x", "--action", "delete"}, 3, []string{
			"  operation:  delete-manifest\n",
		}},
	})
}

func TestPolicyExplainUser(t *testing.T) {
	hash, err := users.Hash("s3cret", "bcrypt")
	if err != nil {
		t.Fatal(err)
	}
	cfg := writeFile(t, `[auth.identity.alice]
username = "alice"
password = '`+hash+`'

[repository."team/*".access_policy]
default_allow = false
rules = ['identity.id == "user:alice" && request.tags.all(t, t != "latest")']
`)
	explain := func(user string, more ...string) []string {
		return append([]string{"policy", "explain", "-c", cfg, "--user", user, "--repository", "team/app", "--action", "push"}, more...)
	}
	checkExplain(t, []explainCase{
		{"alice", explain("alice", "--reference", "v1"), 0, []string{
			"identity: static user (password NOT checked)", "  id:        user:alice\n", "  username:  alice\n", "  oidc:      null\n",
			"  reference:  v1\n", `decision: ALLOWED by repository."team/*".access_policy, rule 0`,
		}},
		{"alice pushing latest", explain("alice", "--reference", "latest"), 3, []string{"  rule 0: false\n", "the server answers 403 DENIED"}},
		{"bob", explain("bob"), 3, []string{`note: no static user "bob" is configured`, "  id:        user:bob\n", "DENIED"}},
	})
}

func TestPolicyExplainUsage(t *testing.T) {
	cfg := explainSeedConfig(t, "")
	claims := explainClaimsFile(t, explainGHClaims("myorg/api", "refs/heads/main"))
	base := []string{"--repository", "dev/x", "--action", "push"}
	cases := []struct {
		args   []string
		stderr string
	}{
		{[]string{"policy"}, `"policy" needs a subcommand`},
		{[]string{"policy", "show"}, `"policy" needs a subcommand`},
		{append([]string{"policy", "explain", "-c", cfg}, base...), "give exactly one of --token, --claims, --user, --anonymous"},
		{append([]string{"policy", "explain", "-c", cfg, "--anonymous", "--user", "x"}, base...), "give exactly one of"},
		{append([]string{"policy", "explain", "--anonymous"}, base...), "needs -c FILE"},
		{append([]string{"policy", "explain", "-c", cfg, "--claims", claims}, base...), "--claims needs --provider NAME"},
		{append([]string{"policy", "explain", "-c", cfg, "--user", "x", "--no-verify"}, base...), "--no-verify goes with --token"},
		{append([]string{"policy", "explain", "-c", cfg, "--user", "x", "--provider", "p"}, base...), "--provider goes with --token or --claims"},
		{[]string{"policy", "explain", "-c", cfg, "--anonymous", "--action", "push"}, "needs --repository"},
		{[]string{"policy", "explain", "-c", cfg, "--anonymous", "--repository", "x", "--action", "write"}, `--action must be pull, push or delete, not "write"`},
		{append([]string{"policy", "explain", "-c", cfg, "--anonymous", "--operation", "get-manifest"}, base...), `--operation "get-manifest" is not a push operation`},
		{append([]string{"policy", "explain", "-c", cfg, "--anonymous", "--frobnicate"}, base...), "flag provided but not defined: -frobnicate"},
		{append([]string{"policy", "explain", "-c", cfg, "--anonymous", "stray"}, base...), `unexpected argument "stray"`},
	}
	for _, c := range cases {
		code, stdout, stderr := runCmd(t, c.args...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, c.stderr) || !strings.Contains(stderr, "Usage:") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 2 and %q", c.args, code, stdout, stderr, c.stderr)
		}
	}
	if code, stdout, _ := runCmd(t, "policy", "explain", "-h"); code != 0 || !strings.Contains(stdout, "usage: berth policy explain") {
		t.Errorf("-h: %d %q", code, stdout)
	}

	// Errors (exit 1): the command line is right, what it names is not.
	bad := writeFile(t, "[repository.\"x\".access_policy]\nrules = ['identity.nope']\n")
	errs := []struct {
		args   []string
		stderr string
	}{
		{append([]string{"policy", "explain", "-c", filepath.Join(t.TempDir(), "missing.toml"), "--anonymous"}, base...), "no such file"},
		{append([]string{"policy", "explain", "-c", bad, "--anonymous"}, base...), "repository.x.access_policy.rules[0]"},
		{append([]string{"policy", "explain", "-c", cfg, "--claims", claims, "--provider", "gitlab"}, base...), `no OIDC provider "gitlab" is configured`},
		{append([]string{"policy", "explain", "-c", cfg, "--claims", cfg, "--provider", "github-actions"}, base...), "--claims " + cfg},
		{append([]string{"policy", "explain", "-c", cfg, "--token", "not-a-jwt", "--no-verify"}, base...), "not a compact JWT"},
	}
	for _, c := range errs {
		code, stdout, stderr := runCmd(t, c.args...)
		if code != 1 || stdout != "" || !strings.Contains(stderr, c.stderr) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 1 and %q", c.args, code, stdout, stderr, c.stderr)
		}
	}
}

// TestPolicyExplainToken: the fake issuer plays GitHub Actions.
func TestPolicyExplainToken(t *testing.T) {
	iss, err := devissuer.New(devissuer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer iss.Close()
	cfg := explainSeedConfig(t, "issuer = '"+iss.URL()+"'\naudiences = [\"berth\"]\n")
	mint := func(repo, ref, aud string) string {
		c := iss.GitHubClaims(aud)
		owner, _, _ := strings.Cut(repo, "/")
		c["repository"], c["repository_owner"], c["ref"], c["sub"] = repo, owner, ref, "repo:"+repo+":ref:"+ref
		return iss.Mint(c)
	}
	good := mint("myorg/api", "refs/heads/main", "berth")
	feature := mint("myorg/api", "refs/heads/feature", "berth")
	otherAud := mint("myorg/api", "refs/heads/main", "https://github.com/myorg")
	foreign, err := devissuer.New(devissuer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer foreign.Close()
	unknownIssuer := foreign.Mint(map[string]any{"sub": "x", "aud": "berth"})

	explain := func(tok string, more ...string) []string {
		return append([]string{"policy", "explain", "-c", cfg, "--token", tok, "--repository", "production/app", "--action", "push"}, more...)
	}
	cases := []struct {
		name   string
		args   []string
		code   int
		stdout []string
		stderr string
	}{
		{"verified, allowed", explain(good), 0, []string{
			"identity: OIDC ID token, verified", "  id:        oidc:github-actions:" + iss.URL() + "/repo:myorg/api:ref:refs/heads/main\n",
			`    ref: "refs/heads/main"` + "\n", `decision: ALLOWED by repository.production.access_policy, rule 0`,
		}, ""},
		{"verified as a Basic login", explain(good, "--provider", "github-actions"), 0, []string{"ALLOWED"}, ""},
		{"verified, denied", explain(feature), 3, []string{`    ref: "refs/heads/feature"` + "\n", "DENIED"}, ""},
		{"wrong audience", explain(otherAud), 1, nil, "token refused (the server would answer 401)"},
		{"unknown issuer", explain(unknownIssuer), 1, nil, "token refused"},
		{"unknown provider", explain(good, "--provider", "gitlab"), 1, nil, `no OIDC provider "gitlab"`},
		{"not verified", explain(otherAud, "--no-verify"), 0, []string{"its signature was NOT verified", "ALLOWED"}, ""},
		{"not verified, wrong provider", explain(good, "--no-verify", "--provider", "ci"), 1, nil, `is provider "github-actions"'s, not "ci"'s`},
		{"not verified, unknown issuer", explain(unknownIssuer, "--no-verify"), 1, nil, "no [auth.oidc.*] provider has the issuer"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, stderr := runCmd(t, c.args...)
			if code != c.code || !strings.Contains(stderr, c.stderr) {
				t.Fatalf("exit %d, want %d; stderr %q, want %q\nstdout:\n%s", code, c.code, stderr, c.stderr, stdout)
			}
			for _, w := range c.stdout {
				if !strings.Contains(stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout)
				}
			}
			// The token is never printed, not even its signature.
			tok := c.args[slices.Index(c.args, "--token")+1]
			sig := tok[strings.LastIndexByte(tok, '.')+1:]
			if strings.Contains(stdout+stderr, sig) {
				t.Errorf("the token is printed:\n%s\n%s", stdout, stderr)
			}
		})
	}
}

// policy explain routes a token as the server does: by iss and aud when two
// providers share the issuer, and a username that names no provider only to
// a provider with accept_any_username.
func TestPolicyExplainSharedIssuer(t *testing.T) {
	iss, err := devissuer.New(devissuer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer iss.Close()
	cfg := writeFile(t, `[auth.oidc.ci]
issuer = "`+iss.URL()+`"
audiences = ["ci"]
claim_mapping.username = "'ci/' + claims.sub"
accept_any_username = true
[auth.oidc.deploy]
issuer = "`+iss.URL()+`"
audiences = ["deploy"]
claim_mapping.username = "'deploy/' + claims.sub"
[global.access_policy]
rules = ['identity.id != "anonymous"']
`)
	ci := iss.Mint(map[string]any{"aud": "ci", "sub": "job"})
	deploy := iss.Mint(map[string]any{"aud": "deploy", "sub": "argo"})
	explain := func(tok string, more ...string) []string {
		return append([]string{"policy", "explain", "-c", cfg, "--token", tok, "--repository", "a", "--action", "pull"}, more...)
	}
	checkExplain(t, []explainCase{
		{"ci token", explain(ci), 0, []string{"  id:        oidc:ci:ci/job\n"}},
		{"deploy token", explain(deploy), 0, []string{"  id:        oidc:deploy:deploy/argo\n"}},
		{"deploy token, not verified", explain(deploy, "--no-verify"), 0, []string{"  id:        oidc:deploy:deploy/argo\n"}},
		{"any username, opted in", explain(ci, "--provider", "oauth"), 0, []string{"  id:        oidc:ci:ci/job\n"}},
	})
	code, _, stderr := runCmd(t, explain(deploy, "--provider", "oauth")...)
	if code != 1 || !strings.Contains(stderr, `no OIDC provider "oauth" is configured: oidc: deploy: username "oauth" names no provider; the token's issuer`) {
		t.Errorf("any username, not opted in: %d %s", code, stderr)
	}
}
