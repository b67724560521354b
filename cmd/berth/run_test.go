package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/berth-registry/berth/internal/testutil"
)

func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb testutil.Buffer
	code = run(t.Context(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "berth.toml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestUsage(t *testing.T) {
	tests := []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{nil, 0, "Usage:", ""},
		{[]string{"help"}, 0, "berth config check -c FILE", ""},
		{[]string{"-h"}, 0, "Usage:", ""},
		{[]string{"serve", "-h"}, 0, "usage: berth serve", ""},
		{[]string{"frobnicate"}, 2, "", `berth: unknown command "frobnicate"`},
		{[]string{"-x"}, 2, "", "flag provided but not defined: -x"},
		{[]string{"serve", "extra"}, 2, "", `serve: unexpected argument "extra"`},
		{[]string{"config"}, 2, "", `"config" needs a subcommand`},
		{[]string{"config", "lint"}, 2, "", `"config" needs a subcommand`},
		{[]string{"config", "check"}, 2, "", "config check needs -c FILE"},
		{[]string{"version", "x"}, 2, "", "version takes no arguments"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, stdout, stderr := runCmd(t, tt.args...)
			if code != tt.code || !strings.Contains(stdout, tt.stdout) || !strings.Contains(stderr, tt.stderr) {
				t.Errorf("code %d, stdout %q, stderr %q", code, stdout, stderr)
			}
			if tt.code == 2 && !strings.Contains(stderr, "Usage:") {
				t.Errorf("usage error without usage: %q", stderr)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	code, stdout, _ := runCmd(t, "version")
	if code != 0 || !strings.HasPrefix(stdout, "berth ") {
		t.Errorf("version: %d %q", code, stdout)
	}
	version = "v9.8.7"
	t.Cleanup(func() { version = "" })
	if _, stdout, _ := runCmd(t, "version"); stdout != "berth v9.8.7\n" {
		t.Errorf("version with -ldflags: %q", stdout)
	}
	// make release stamps the commit and the date too.
	commit, date = "0123456789abcdef0123456789abcdef01234567", "2026-12-08T00:36:31Z"
	t.Cleanup(func() { commit, date = "", "" })
	want := "berth v9.8.7 (commit 0123456789abcdef0123456789abcdef01234567, built 2026-12-08T00:36:31Z)\n"
	if _, stdout, _ := runCmd(t, "version"); stdout != want {
		t.Errorf("version with the release stamps: %q, want %q", stdout, want)
	}
}

func TestConfigCheck(t *testing.T) {
	good := writeFile(t, "[server]\nport = 5001\n[log]\nformat = \"json\"\n")
	code, stdout, stderr := runCmd(t, "config", "check", "-c", good)
	// Valid, and open: it says so, as serve would.
	if code != 0 || stdout != "config OK\n" || stderr != good+": warning: registry is open: anyone who can reach it may push, pull and delete; configure [auth] before exposing it\n" {
		t.Errorf("good file: %d %q %q", code, stdout, stderr)
	}
	// -c before the command works too.
	if code, stdout, _ := runCmd(t, "-c", good, "config", "check"); code != 0 || stdout != "config OK\n" {
		t.Errorf("-c first: %d %q", code, stdout)
	}

	bad := writeFile(t, `[server]
port = "x"
colour = 1
[auth.oidc.github-actions]
provider = "githup"
[log]
level = "loud"
`)
	code, stdout, stderr = runCmd(t, "config", "check", "-c", bad)
	want := bad + `:2: server.port: must be an integer, got string "x"
` + bad + `:3: server.colour: unknown key
` + bad + `:5: auth.oidc.github-actions.provider: "githup" is not one of github, gitlab, kubernetes, generic
` + bad + `:7: log.level: "loud" is not one of debug, info, warn, error
`
	if code != 1 || stdout != "" || stderr != want {
		t.Errorf("bad file: code %d, stdout %q, stderr:\n%s\nwant:\n%s", code, stdout, stderr, want)
	}

	code, _, stderr = runCmd(t, "config", "check", "-c", filepath.Join(t.TempDir(), "missing.toml"))
	if code != 1 || !strings.Contains(stderr, "no such file") {
		t.Errorf("missing file: %d %q", code, stderr)
	}
}

func TestServeBadConfig(t *testing.T) {
	bad := writeFile(t, "[server.tls]\n")
	for _, args := range [][]string{{"serve", "-c", bad}, {"-c", bad, "server"}} {
		code, _, stderr := runCmd(t, args...)
		if code != 1 || !strings.Contains(stderr, bad+":1: server.tls.server_certificate_bundle: is required") {
			t.Errorf("%v: %d %q", args, code, stderr)
		}
	}
}

var addrRE = regexp.MustCompile(`"msg":"listening","addr":"([^"]+)"`)

// serve and the Angos spelling both run the server until the context ends.
func TestServe(t *testing.T) {
	for _, spelling := range [][]string{{"serve", "-c"}, {"-c", "", "server"}} {
		t.Run(spelling[0], func(t *testing.T) {
			dir := t.TempDir()
			file := writeFile(t, `[server]
bind_address = "127.0.0.1"
port = 0
[blob_store.fs]
root_dir = '`+filepath.Join(dir, "data")+`'
[log]
format = "json"
level = "debug"
`)
			args := append([]string(nil), spelling...)
			if args[0] == "serve" {
				args = append(args, file)
			} else {
				args[1] = file
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var stdout, stderr testutil.Buffer
			done := make(chan int, 1)
			go func() { done <- run(ctx, args, strings.NewReader(""), &stdout, &stderr) }()

			var addr string
			for deadline := time.Now().Add(5 * time.Second); addr == ""; {
				if m := addrRE.FindStringSubmatch(stderr.String()); m != nil {
					addr = m[1]
				} else if time.Now().After(deadline) {
					t.Fatalf("no listening line:\n%s", stderr.String())
				}
				time.Sleep(5 * time.Millisecond)
			}
			resp, err := http.Get("http://" + addr + "/healthz")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != "ok" {
				t.Errorf("GET /healthz = %d %q", resp.StatusCode, body)
			}

			cancel()
			select {
			case code := <-done:
				if code != 0 {
					t.Errorf("exit code %d\n%s", code, stderr.String())
				}
			case <-time.After(10 * time.Second):
				t.Fatal("serve did not stop")
			}
			// Every log line is JSON, as configured.
			for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
				if !json.Valid([]byte(line)) {
					t.Errorf("not a JSON log line: %q", line)
				}
			}
			if !strings.Contains(stderr.String(), `"level":"WARN","msg":"registry is open`) {
				t.Errorf("no open-registry warning:\n%s", stderr.String())
			}
		})
	}
}

func TestLoadDefaults(t *testing.T) {
	cfg, err := load("")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ListenAddr() != "0.0.0.0:5000" || cfg.BlobStore.FS.RootDir != "./berth-data" {
		t.Errorf("defaults: %s %s", cfg.ListenAddr(), cfg.BlobStore.FS.RootDir)
	}
}

func TestHashPassword(t *testing.T) {
	for _, alg := range []string{"bcrypt", "argon2id"} {
		var out, errb strings.Builder
		code := run(t.Context(), []string{"hash-password", "-a", alg}, strings.NewReader("s3cret\n"), &out, &errb)
		h := strings.TrimSpace(out.String())
		if code != 0 || !(strings.HasPrefix(h, "$2") || strings.HasPrefix(h, "$argon2id$")) {
			t.Fatalf("%s: code %d out %q err %q", alg, code, out.String(), errb.String())
		}
		// The hash is accepted as a static user's password.
		cfg := writeFile(t, "[auth.identity.alice]\nusername = \"alice\"\npassword = '"+h+"'\n")
		if code, stdout, stderr := runCmd(t, "config", "check", "-c", cfg); code != 0 {
			t.Fatalf("%s hash refused by config check: %s %s", alg, stdout, stderr)
		}
	}
	var out, errb strings.Builder
	if code := run(t.Context(), []string{"hash-password"}, strings.NewReader(""), &out, &errb); code == 0 {
		t.Fatal("empty password accepted")
	}
}

func TestConfigCheckCompilesClaimMapping(t *testing.T) {
	cfg := writeFile(t, `[auth.oidc.ci]
provider = "generic"
issuer = "https://issuer.example"
audiences = ["berth"]
[auth.oidc.ci.claim_mapping]
username = "claims.sub +"
`)
	code, _, stderr := runCmd(t, "config", "check", "-c", cfg)
	if code != 1 || !strings.Contains(stderr, "auth.oidc.ci.claim_mapping.username") {
		t.Fatalf("code %d stderr %q", code, stderr)
	}
}

// Two providers of one issuer: fine with disjoint audiences, refused (naming
// both) when a token could select either.
func TestConfigCheckSharedIssuer(t *testing.T) {
	cfg := func(audB string) string {
		return `[auth.oidc.ci]
issuer = "https://issuer.example"
audiences = ["berth-ci", "shared"]
[auth.oidc.deploy]
issuer = "https://issuer.example"
audiences = [` + audB + `]
claim_mapping.username = "'deploy/' + claims.sub"
`
	}
	good := writeFile(t, cfg(`"berth-deploy"`))
	if code, stdout, stderr := runCmd(t, "config", "check", "-c", good); code != 0 || stdout != "config OK\n" {
		t.Errorf("disjoint audiences: %d %q %q", code, stdout, stderr)
	}
	bad := writeFile(t, cfg(`"berth-deploy", "shared"`))
	code, stdout, stderr := runCmd(t, "config", "check", "-c", bad)
	want := bad + `:5: auth.oidc.deploy.issuer: "https://issuer.example" is also the issuer of provider "ci" and both accept the audience "shared"`
	if code != 1 || stdout != "" || !strings.HasPrefix(stderr, want) {
		t.Errorf("overlapping audiences: %d %q\n%s\nwant prefix\n%s", code, stdout, stderr, want)
	}
}
