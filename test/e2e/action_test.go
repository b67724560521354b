package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/crypto/bcrypt"
	"sigs.k8s.io/yaml"
)

// ghAction is the subset of a composite action's metadata the harness runs.
// It is decoded strictly: a key the harness does not know fails the test,
// so action.yml cannot grow something the harness silently skips.
type ghAction struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Author      string `json:"author"`
	Branding    struct {
		Icon  string `json:"icon"`
		Color string `json:"color"`
	} `json:"branding"`
	Inputs map[string]struct {
		Description string `json:"description"`
		Required    bool   `json:"required"`
		Default     string `json:"default"`
	} `json:"inputs"`
	Runs struct {
		Using string   `json:"using"`
		Steps []ghStep `json:"steps"`
	} `json:"runs"`
}

type ghStep struct {
	Name  string            `json:"name"`
	If    string            `json:"if"`
	Uses  string            `json:"uses"`
	With  map[string]string `json:"with"`
	Shell string            `json:"shell"`
	Env   map[string]string `json:"env"`
	Run   string            `json:"run"`
}

// actionRunner emulates what a GitHub-hosted runner does with a composite
// action: expressions over inputs, github and runner; `if:` conditions;
// `run:` steps in bash with -eo pipefail; GITHUB_PATH and GITHUB_ENV
// carried to the following steps. `uses: actions/setup-go` is the one
// action it does not run: it checks the Go it would set up is here.
type actionRunner struct {
	t       *testing.T
	root    string // GITHUB_ACTION_PATH: the repository's root
	inputs  map[string]string
	env     map[string]string
	path    []string // GITHUB_PATH entries, newest first
	ghPath  string
	ghEnv   string
	runTemp string
}

var ghExpr = regexp.MustCompile(`\$\{\{\s*([^}]*?)\s*\}\}`)

func (r *actionRunner) value(expr string) string {
	r.t.Helper()
	switch {
	case strings.HasPrefix(expr, "inputs."):
		v, ok := r.inputs[strings.TrimPrefix(expr, "inputs.")]
		if !ok {
			r.t.Fatalf("action.yml: expression %q names no input", expr)
		}
		return v
	case expr == "github.action_path":
		return r.root
	case expr == "runner.temp":
		return r.runTemp
	}
	r.t.Fatalf("action.yml: the harness does not know the expression %q", expr)
	return ""
}

func (r *actionRunner) expand(s string) string {
	return ghExpr.ReplaceAllStringFunc(s, func(m string) string {
		return r.value(ghExpr.FindStringSubmatch(m)[1])
	})
}

var ghCond = regexp.MustCompile(`^(inputs\.[\w-]+)\s*(==|!=)\s*'([^']*)'$`)

func (r *actionRunner) cond(s string) bool {
	r.t.Helper()
	s = strings.TrimSpace(s)
	if s == "" {
		return true
	}
	m := ghCond.FindStringSubmatch(s)
	if m == nil {
		r.t.Fatalf("action.yml: the harness does not know the condition %q", s)
	}
	return (r.value(m[1]) == m[3]) == (m[2] == "==")
}

func (r *actionRunner) environ(extra map[string]string) []string {
	env := make([]string, 0, len(r.env)+len(extra)+1)
	for k, v := range r.env {
		if k != "PATH" {
			env = append(env, k+"="+v)
		}
	}
	for k, v := range extra {
		env = append(env, k+"="+r.expand(v))
	}
	return append(env, "PATH="+strings.Join(append(append([]string{}, r.path...), r.env["PATH"]), string(os.PathListSeparator)))
}

// bash runs a script as a `run:` step with `shell: bash` does.
func (r *actionRunner) bash(script string, env map[string]string) (string, error) {
	r.t.Helper()
	f := filepath.Join(r.runTemp, fmt.Sprintf("step-%d.sh", time.Now().UnixNano()))
	if err := os.WriteFile(f, []byte(script), 0o600); err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute) // a guard, not an assertion
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "--noprofile", "--norc", "-eo", "pipefail", f)
	cmd.Env = r.environ(env)
	cmd.Dir = r.env["HOME"]
	out, err := cmd.CombinedOutput()
	r.absorb()
	return string(out), err
}

// absorb reads what a step appended to GITHUB_PATH and GITHUB_ENV.
func (r *actionRunner) absorb() {
	r.t.Helper()
	if b, err := os.ReadFile(r.ghPath); err == nil {
		r.path = nil
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if p := strings.TrimSpace(sc.Text()); p != "" {
				r.path = append([]string{p}, r.path...)
			}
		}
	}
	if b, err := os.ReadFile(r.ghEnv); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				r.env[k] = v
			}
		}
	}
}

// runAction runs every step of the action; it returns the output so far and
// the first step's error.
func (r *actionRunner) runAction(a *ghAction) (string, error) {
	r.t.Helper()
	var log strings.Builder
	for _, s := range a.Runs.Steps {
		if !r.cond(s.If) {
			fmt.Fprintf(&log, "## %s: skipped (if: %s)\n", s.Name, s.If)
			continue
		}
		switch {
		case s.Uses != "":
			if !strings.HasPrefix(s.Uses, "actions/setup-go@") {
				r.t.Fatalf("action.yml: the harness runs no action %q", s.Uses)
			}
			// setup-go installs the Go of go-version-file; here it must
			// be the one this machine has.
			gomod := r.expand(s.With["go-version-file"])
			if _, err := os.Stat(gomod); err != nil {
				r.t.Fatalf("setup-go: go-version-file: %v", err)
			}
			if _, err := os.Stat(r.expand(s.With["cache-dependency-path"])); err != nil {
				r.t.Fatalf("setup-go: cache-dependency-path: %v", err)
			}
			if _, err := exec.LookPath("go"); err != nil {
				r.t.Fatalf("setup-go: %v", err)
			}
			fmt.Fprintf(&log, "## %s: %s (emulated: go is on PATH, %s exists)\n", s.Name, s.Uses, gomod)
		case s.Run != "":
			if s.Shell != "bash" {
				r.t.Fatalf("action.yml: step %q: shell %q, want bash (composite steps must name it)", s.Name, s.Shell)
			}
			out, err := r.bash(r.expand(s.Run), s.Env)
			fmt.Fprintf(&log, "## %s\n%s", s.Name, out)
			if err != nil {
				return log.String(), fmt.Errorf("step %q: %w", s.Name, err)
			}
		default:
			r.t.Fatalf("action.yml: step %q neither uses nor runs", s.Name)
		}
	}
	return log.String(), nil
}

func loadAction(t *testing.T, root string) *ghAction {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "action.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var a ghAction
	if err := yaml.UnmarshalStrict(b, &a); err != nil {
		t.Fatalf("action.yml: %v", err)
	}
	if a.Runs.Using != "composite" {
		t.Fatalf("action.yml: runs.using %q, want composite", a.Runs.Using)
	}
	return &a
}

// devIssuerProc runs `berth dev-issuer` and reads the issuer URL and the
// Actions variables from what it prints.
func devIssuerProc(t *testing.T, ttl time.Duration) (issuer, requestURL, requestToken string) {
	t.Helper()
	cmd := exec.Command(berthBin, "dev-issuer", "--addr", "127.0.0.1:0", "--state-dir", t.TempDir(), "--ttl", ttl.String())
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	sc := bufio.NewScanner(stdout)
	for sc.Scan() && (issuer == "" || requestURL == "" || requestToken == "") {
		line := strings.TrimSpace(sc.Text())
		if v, ok := strings.CutPrefix(line, "issuer:"); ok {
			issuer = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(line, "export ACTIONS_ID_TOKEN_REQUEST_URL="); ok {
			requestURL = strings.Trim(v, "'")
		}
		if v, ok := strings.CutPrefix(line, "export ACTIONS_ID_TOKEN_REQUEST_TOKEN="); ok {
			requestToken = strings.Trim(v, "'")
		}
	}
	go func() { _, _ = bufio.NewReader(stdout).WriteTo(devNull{}) }()
	if issuer == "" || requestURL == "" || requestToken == "" {
		t.Fatalf("berth dev-issuer printed no issuer or Actions variables (scan: %v)", sc.Err())
	}
	return issuer, requestURL, requestToken
}

type devNull struct{}

func (devNull) Write(p []byte) (int, error) { return len(p), nil }

// TestGitHubAction runs the repository's action.yml the way a GitHub runner
// runs a composite action, in an emulated Actions job whose ID tokens come
// from `berth dev-issuer` and live 3 seconds: the action builds berth and
// the helper from its own checkout, logs in, and the job's later steps push
// and pull with crane and oras after the ID token has expired. Without
// `permissions: id-token: write` the action fails saying so.
func TestGitHubAction(t *testing.T) {
	const ttl = 3 * time.Second
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/berth-registry/berth").Output()
	if err != nil {
		t.Fatal(err)
	}
	root := strings.TrimSpace(string(out))
	action := loadAction(t, root)
	issuer, reqURL, reqTok := devIssuerProc(t, ttl)

	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	p := startBerthWith(t, t.TempDir(), fmt.Sprintf(`
[auth.oidc.github-actions]
provider = "github"
issuer = %q
audiences = ["berth"]
clock_skew = "1s"

[auth.identity.alice]
username = "alice"
password = %q

[global.access_policy]
default_allow = false
rules = [
  "identity.username == 'alice'",
  "identity.oidc != null && identity.oidc.claims.repository == 'myorg/api' && request.repository.startsWith('myorg/')",
]
`, issuer, string(hash)))
	host := p.host()
	base := host + "/myorg/base:v1"
	ref, err := name.ParseReference(base, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(2048, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "alice", Password: "secret"})); err != nil {
		t.Fatalf("seed push: %v", err)
	}
	digest, _ := img.Digest()

	gocache, err := exec.Command("go", "env", "GOCACHE", "GOMODCACHE", "GOPATH").Output()
	if err != nil {
		t.Fatal(err)
	}
	goenv := strings.Fields(string(gocache))
	newRunner := func(t *testing.T, inputs map[string]string, actionsEnv bool) *actionRunner {
		home, tmp := t.TempDir(), t.TempDir()
		r := &actionRunner{t: t, root: root, runTemp: tmp, inputs: map[string]string{},
			ghPath: filepath.Join(tmp, "github_path"), ghEnv: filepath.Join(tmp, "github_env")}
		for k, in := range action.Inputs {
			r.inputs[k] = in.Default
		}
		for k, v := range inputs {
			if _, ok := action.Inputs[k]; !ok {
				t.Fatalf("action.yml has no input %q", k)
			}
			r.inputs[k] = v
		}
		for k, in := range action.Inputs {
			if in.Required && r.inputs[k] == "" {
				t.Fatalf("input %q is required", k)
			}
		}
		r.env = map[string]string{
			"HOME": home, "PATH": os.Getenv("PATH"), "CI": "true", "GITHUB_ACTIONS": "true",
			"GITHUB_ACTION_PATH": root, "GITHUB_PATH": r.ghPath, "GITHUB_ENV": r.ghEnv,
			"GITHUB_OUTPUT": filepath.Join(tmp, "github_output"), "RUNNER_TEMP": tmp,
			"GOCACHE": goenv[0], "GOMODCACHE": goenv[1], "GOPATH": goenv[2], "GOFLAGS": os.Getenv("GOFLAGS"),
			"GOPROXY": os.Getenv("GOPROXY"), "GOTOOLCHAIN": os.Getenv("GOTOOLCHAIN"),
		}
		if actionsEnv {
			r.env["ACTIONS_ID_TOKEN_REQUEST_URL"] = reqURL
			r.env["ACTIONS_ID_TOKEN_REQUEST_TOKEN"] = reqTok
		}
		for _, f := range []string{r.ghPath, r.ghEnv} {
			writeFile(t, f, nil)
		}
		return r
	}

	t.Run("login and push after the ID token expired", func(t *testing.T) {
		crane, oras := needClient(t, "crane"), needClient(t, "oras")
		r := newRunner(t, map[string]string{"registry": "http://" + host, "provider": "github-actions", "audience": "berth"}, true)
		log, err := r.runAction(action)
		if err != nil {
			t.Fatalf("%v\n%s", err, log)
		}
		for _, want := range []string{"installed berth and docker-credential-berth", `credHelpers["` + host + `"] = "berth"`} {
			if !strings.Contains(log, want) {
				t.Fatalf("the action's output lacks %q:\n%s", want, log)
			}
		}
		// The installed binaries are the ones later steps find.
		if len(r.path) != 1 || !strings.HasPrefix(r.path[0], r.runTemp) {
			t.Fatalf("GITHUB_PATH: %q", r.path)
		}
		time.Sleep(ttl + 2*time.Second) // the ID token the login used has expired
		job := fmt.Sprintf(`
command -v docker-credential-berth
%[1]s copy --insecure %[3]s %[4]s/myorg/api:ci
%[1]s digest --insecure %[4]s/myorg/api:ci
echo "built in the job" > artifact.txt
%[2]s push --plain-http %[4]s/myorg/api:artifact artifact.txt
%[2]s pull --plain-http -o pulled %[4]s/myorg/api:artifact
cat pulled/artifact.txt
`, crane, oras, base, host)
		out, err := r.bash(job, nil)
		if err != nil {
			t.Fatalf("the job's push after the ID token expired: %v\n%s", err, out)
		}
		if !strings.Contains(out, filepath.Join(r.runTemp, "berth-bin", "docker-credential-berth")) ||
			!strings.Contains(out, digest.String()) || !strings.Contains(out, "built in the job") {
			t.Fatalf("job output:\n%s", out)
		}
	})

	t.Run("without id-token: write", func(t *testing.T) {
		r := newRunner(t, map[string]string{"registry": "http://" + host, "provider": "github-actions", "audience": "berth", "install": "none"}, false)
		log, err := r.runAction(action)
		if err == nil || !strings.Contains(log, "permissions: id-token: write") {
			t.Fatalf("the action without an ID token endpoint: %v\n%s", err, log)
		}
	})
}

// gitlabTemplate is the subset of deploy/gitlab/berth-login.gitlab-ci.yml
// the harness runs, decoded strictly.
type gitlabTemplate struct {
	BerthLogin struct {
		IDTokens map[string]struct {
			Aud string `json:"aud"`
		} `json:"id_tokens"`
		BeforeScript []string `json:"before_script"`
	} `json:".berth-login"`
}

// TestGitLabSnippet runs the GitLab CI/CD template's before_script as a job
// that extends .berth-login would: GitLab puts the ID token its id_tokens:
// declares (a GitLab-shaped token of the in-repo issuer living 3 seconds,
// with the template's aud) in BERTH_ID_TOKEN, and the job's script pushes
// with crane after that token has expired.
func TestGitLabSnippet(t *testing.T) {
	const ttl = 3 * time.Second
	crane := needClient(t, "crane")
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/berth-registry/berth").Output()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "deploy", "gitlab", "berth-login.gitlab-ci.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var tpl gitlabTemplate
	if err := yaml.UnmarshalStrict(b, &tpl); err != nil {
		t.Fatalf("berth-login.gitlab-ci.yml: %v", err)
	}
	idt, ok := tpl.BerthLogin.IDTokens["BERTH_ID_TOKEN"]
	if !ok || idt.Aud != "$BERTH_AUDIENCE" || len(tpl.BerthLogin.BeforeScript) == 0 {
		t.Fatalf(".berth-login: %+v", tpl.BerthLogin)
	}

	iss := newIssuer(t)
	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	p := startBerthWith(t, t.TempDir(), fmt.Sprintf(`
[auth.oidc.gitlab]
provider = "gitlab"
issuer = %q
audiences = ["https://registry.example.com"]
clock_skew = "1s"

[auth.identity.alice]
username = "alice"
password = %q

[global.access_policy]
default_allow = false
rules = [
  "identity.username == 'alice'",
  "identity.oidc != null && request.repository.startsWith(identity.oidc.claims['project_path'] + '/')",
]
`, iss.URL(), string(hash)))
	host := p.host()
	ref, err := name.ParseReference(host+"/mygroup/app/base:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(2048, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "alice", Password: "secret"})); err != nil {
		t.Fatalf("seed push: %v", err)
	}
	digest, _ := img.Digest()

	const audience = "https://registry.example.com"
	bin := t.TempDir()
	for _, f := range []string{berthBin, filepath.Join(buildCredentialHelper(t), "docker-credential-berth")} {
		if err := os.Symlink(f, filepath.Join(bin, filepath.Base(f))); err != nil {
			t.Fatal(err)
		}
	}
	// GitLab mints the token when the job starts.
	now := time.Now()
	idToken := iss.Mint(map[string]any{
		"aud": audience, "sub": "project_path:mygroup/app:ref_type:branch:ref:main",
		"namespace_path": "mygroup", "project_path": "mygroup/app", "ref": "main", "ref_type": "branch",
		"pipeline_source": "push", "user_login": "dev",
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(ttl).Unix(),
	})
	home := t.TempDir()
	env := append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME=", "XDG_CACHE_HOME=", "XDG_RUNTIME_DIR=",
		"DOCKER_CONFIG=", "REGISTRY_AUTH_FILE=",
		"PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
		"CI=true", "GITLAB_CI=true",
		"BERTH_REGISTRY=http://"+host, "BERTH_PROVIDER=gitlab", "BERTH_AUDIENCE="+audience,
		"BERTH_ID_TOKEN="+idToken)
	// GitLab runs before_script and script in one shell, each line failing the job.
	job := strings.Join(tpl.BerthLogin.BeforeScript, "\n") + fmt.Sprintf(`
sleep %d
%s copy --insecure "$BERTH_REGISTRY/mygroup/app/base:v1" "$BERTH_REGISTRY/mygroup/app/api:ci"
%s digest --insecure "$BERTH_REGISTRY/mygroup/app/api:ci"
`, int((ttl+2*time.Second)/time.Second), crane, crane)
	job = strings.ReplaceAll(job, "$BERTH_REGISTRY/mygroup", host+"/mygroup")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a guard, not an assertion
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-e", "-c", job)
	cmd.Env, cmd.Dir = env, home
	got, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the GitLab job: %v\n%s", err, got)
	}
	if !strings.Contains(string(got), `credHelpers["`+host+`"] = "berth"`) || !strings.Contains(string(got), digest.String()) {
		t.Fatalf("the GitLab job's output:\n%s", got)
	}
}
