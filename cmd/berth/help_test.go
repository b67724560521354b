package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berth-registry/berth/internal/auth/oidc"
	"github.com/berth-registry/berth/internal/auth/users"
	"github.com/berth-registry/berth/internal/testutil"
)

// Every command answers -h, -help, --help and `berth help <command>` with its
// own usage on stdout and exit status 0.
func TestCommandHelp(t *testing.T) {
	cmds := []struct {
		args []string // the command, before the help flag
		want string   // in its usage
	}{
		{[]string{"serve"}, "berth serve [-c FILE]"},
		{[]string{"server"}, "berth serve [-c FILE]"},
		{[]string{"config"}, "berth config check -c FILE"},
		{[]string{"config", "check"}, "berth config check -c FILE"},
		{[]string{"policy"}, "berth policy explain"},
		{[]string{"policy", "explain"}, "berth policy explain"},
		{[]string{"gc"}, "berth gc [-c FILE] [--dry-run]"},
		{[]string{"hash-password"}, "berth hash-password [-a bcrypt|argon2id]"},
		{[]string{"dev-issuer"}, "berth dev-issuer [flags]"},
		{[]string{"login"}, "berth login REGISTRY --provider NAME"},
		{[]string{"logout"}, "berth logout REGISTRY"},
		{[]string{"version"}, "berth version"},
		{[]string{"help"}, "berth help [COMMAND]"},
	}
	for _, c := range cmds {
		forms := [][]string{
			append(append([]string(nil), c.args...), "-h"),
			append(append([]string(nil), c.args...), "-help"),
			append(append([]string(nil), c.args...), "--help"),
			append([]string{"help"}, c.args...),
		}
		for _, args := range forms {
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				code, stdout, stderr := runCmd(t, args...)
				if code != exitOK || !strings.Contains(stdout, c.want) || stderr != "" {
					t.Errorf("exit %d, stdout %q, stderr %q; want 0 and %q on stdout", code, stdout, stderr, c.want)
				}
			})
		}
	}
	if code, _, stderr := runCmd(t, "help", "frobnicate"); code != exitUsage || !strings.Contains(stderr, `unknown command "frobnicate"`) {
		t.Errorf("help frobnicate: %d %q", code, stderr)
	}
}

// dev-issuer's usage names every flag it has.
func TestDevIssuerUsageListsFlags(t *testing.T) {
	_, stdout, _ := runCmd(t, "dev-issuer", "-h")
	fs, _ := devIssuerFlags(io.Discard)
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		n++
		if !strings.Contains(stdout, "-"+f.Name+" ") && !strings.Contains(stdout, "-"+f.Name+"\n") {
			t.Errorf("usage does not list -%s:\n%s", f.Name, stdout)
		}
	})
	if n < 8 {
		t.Errorf("only %d flags", n)
	}
}

var warnRE = regexp.MustCompile(`level=WARN msg="((?:[^"\\]|\\.)*)"`)

// serveWarnings starts `berth serve -c file` until it listens and returns the
// messages it logged at WARN level before that.
func serveWarnings(t *testing.T, file string) []string {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stdout, stderr testutil.Buffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"serve", "-c", file}, strings.NewReader(""), &stdout, &stderr) }()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(stderr.String(), `msg=listening`); {
		if time.Now().After(deadline) {
			t.Fatalf("no listening line:\n%s", stderr.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	var out []string
	for _, m := range warnRE.FindAllStringSubmatch(stderr.String(), -1) {
		s, err := strconv.Unquote(`"` + m[1] + `"`)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// config check prints the warnings serve logs at startup.
func TestConfigCheckWarnsLikeServe(t *testing.T) {
	dir := t.TempDir()
	hash, err := users.Hash("s3cret", "bcrypt")
	if err != nil {
		t.Fatal(err)
	}
	base := "[server]\nbind_address = \"127.0.0.1\"\nport = 0\n[blob_store.fs]\nroot_dir = '" + filepath.Join(dir, "data") + "'\n"
	configs := map[string]string{
		"open": base,
		"no policy": base + `[auth.oidc.github-actions]
provider = "github"
`,
		"ui without token service": base + `[ui]
enabled = true
[auth.identity.alice]
username = "alice"
password = '` + hash + `'
[auth.token]
enabled = false
[global.access_policy]
rules = ["true"]
`,
	}
	for name, content := range configs {
		t.Run(name, func(t *testing.T) {
			file := writeFile(t, content)
			want := serveWarnings(t, file)
			if len(want) == 0 {
				t.Fatal("serve logged no warning")
			}
			code, stdout, stderr := runCmd(t, "config", "check", "-c", file)
			if code != exitOK || stdout != "config OK\n" {
				t.Fatalf("config check: %d %q %q", code, stdout, stderr)
			}
			var got []string
			for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
				w, ok := strings.CutPrefix(line, file+": warning: ")
				if !ok {
					t.Fatalf("not a warning line: %q", line)
				}
				got = append(got, w)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("config check warns\n%q\nserve warns\n%q", got, want)
			}
		})
	}
}

// berth serve --addr / --port change the listener without a configuration file.
func TestServeAddrFlag(t *testing.T) {
	port := strconv.Itoa(testutil.FreePort(t))
	t.Chdir(t.TempDir()) // the default storage is ./berth-data
	for _, args := range [][]string{{"serve", "--addr", "127.0.0.1:" + port}, {"serve", "--port", port}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var stdout, stderr testutil.Buffer
			done := make(chan int, 1)
			go func() { done <- run(ctx, args, strings.NewReader(""), &stdout, &stderr) }()
			for deadline := time.Now().Add(10 * time.Second); !strings.Contains(stderr.String(), "msg=listening"); {
				select {
				case code := <-done:
					t.Fatalf("exit %d:\n%s", code, stderr.String())
				default:
				}
				if time.Now().After(deadline) {
					t.Fatalf("no listening line:\n%s", stderr.String())
				}
				time.Sleep(5 * time.Millisecond)
			}
			resp, err := http.Get("http://127.0.0.1:" + port + "/healthz")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("healthz %d", resp.StatusCode)
			}
			cancel()
			if code := <-done; code != 0 {
				t.Errorf("exit %d", code)
			}
		})
	}
	for _, args := range [][]string{
		{"serve", "--port", "70000"},
		{"serve", "--addr", "nohost"},
		{"serve", "--port", "5001", "--addr", ":5002"},
		{"serve", "-c", writeFile(t, ""), "--port", "5001"},
	} {
		if code, _, stderr := runCmd(t, args...); code != exitUsage {
			t.Errorf("%q: exit %d %q", args, code, stderr)
		}
	}
}

// devIssuerProc is a running `berth dev-issuer`.
type devIssuerProc struct {
	cancel context.CancelFunc
	done   chan int
	out    *testutil.Buffer
}

func startDevIssuer(t *testing.T, args ...string) *devIssuerProc {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	p := &devIssuerProc{cancel: cancel, done: make(chan int, 1), out: &testutil.Buffer{}}
	var stderr testutil.Buffer
	go func() {
		p.done <- run(ctx, append([]string{"dev-issuer"}, args...), strings.NewReader(""), p.out, &stderr)
	}()
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(p.out.String(), "issuer:"); {
		select {
		case code := <-p.done:
			t.Fatalf("dev-issuer exited %d: %s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("dev-issuer did not start: %s", stderr.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	return p
}

func (p *devIssuerProc) stop(t *testing.T) {
	p.cancel()
	if code := <-p.done; code != 0 {
		t.Fatalf("dev-issuer exit %d", code)
	}
}

// mint asks the dev issuer's GitHub token endpoint for a token, like a job.
func mintDev(t *testing.T, base string) (string, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/gh/token?api-version=2.0&audience=berth", nil)
	req.Header.Set("Authorization", "bearer dev-request-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v struct{ Value string }
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || resp.StatusCode != 200 {
		t.Fatalf("token endpoint: %d %v", resp.StatusCode, err)
	}
	parts := strings.Split(v.Value, ".")
	header, claims := map[string]any{}, map[string]any{}
	for i, dst := range []map[string]any{header, claims} {
		b, err := base64URLDecode(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &dst); err != nil {
			t.Fatal(err)
		}
	}
	claims["kid"] = header["kid"]
	return v.Value, claims
}

// A restarted dev issuer signs with the key it had: a token minted before the
// restart verifies after it, and a verifier that knew the old key set accepts
// new tokens without waiting for an unknown-kid refetch.
func TestDevIssuerKeepsKeyAcrossRestarts(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	addr := "127.0.0.1:" + strconv.Itoa(testutil.FreePort(t))
	base := "http://" + addr

	p := startDevIssuer(t, "--addr", addr, "--state-dir", state)
	before, claims := mintDev(t, base)
	v, _, err := oidc.New([]oidc.ProviderConfig{{Name: "github-actions", Preset: "github", Issuer: base, Audiences: []string{"berth"}}}, oidc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if _, err := v.VerifyFor(t.Context(), "github-actions", before); err != nil {
		t.Fatalf("before restart: %v", err)
	}
	p.stop(t)

	fi, err := os.Stat(filepath.Join(state, "signing-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}

	p = startDevIssuer(t, "--addr", addr, "--state-dir", state)
	defer p.stop(t)
	after, claims2 := mintDev(t, base)
	if claims["kid"] != claims2["kid"] {
		t.Errorf("kid changed across restart: %v -> %v", claims["kid"], claims2["kid"])
	}
	// The verifier that cached the old key set accepts the new token at once.
	if _, err := v.VerifyFor(t.Context(), "github-actions", after); err != nil {
		t.Errorf("token minted after restart, old verifier: %v", err)
	}
	// A fresh verifier (fetching the restarted issuer's keys) accepts the old token.
	v2, _, err := oidc.New([]oidc.ProviderConfig{{Name: "github-actions", Preset: "github", Issuer: base, Audiences: []string{"berth"}}}, oidc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer v2.Close()
	if _, err := v2.VerifyFor(t.Context(), "github-actions", before); err != nil {
		t.Errorf("token minted before restart: %v", err)
	}
}

// The dev issuer's default claims describe one consistent job.
func TestDevIssuerClaimsConsistent(t *testing.T) {
	addr := "127.0.0.1:" + strconv.Itoa(testutil.FreePort(t))
	p := startDevIssuer(t, "--addr", addr, "--state-dir", t.TempDir(), "--repository", "acme/web", "--ref", "refs/tags/v1.0.0")
	defer p.stop(t)
	_, c := mintDev(t, "http://"+addr)
	want := map[string]any{
		"repository":       "acme/web",
		"repository_owner": "acme",
		"ref":              "refs/tags/v1.0.0",
		"ref_type":         "tag",
		"sub":              "repo:acme/web:ref:refs/tags/v1.0.0",
		"workflow_ref":     "acme/web/.github/workflows/release.yml@refs/tags/v1.0.0",
		"job_workflow_ref": "acme/web/.github/workflows/release.yml@refs/tags/v1.0.0",
	}
	for k, v := range want {
		if c[k] != v {
			t.Errorf("%s = %v, want %v", k, c[k], v)
		}
	}
}

func base64URLDecode(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(s)
}
