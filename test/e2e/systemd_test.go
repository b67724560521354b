package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-registry/berth/internal/s3test"
	"github.com/berth-registry/berth/internal/testutil"
)

// systemdUnit parses a unit file: section → key → values in order (a key
// may repeat; an empty assignment is kept as "").
func systemdUnit(t testing.TB, path string) map[string]map[string][]string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	unit := map[string]map[string][]string{}
	section := ""
	for i, l := range strings.Split(string(raw), "\n") {
		l = strings.TrimSpace(l)
		switch {
		case l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, ";"):
		case strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]"):
			section = l[1 : len(l)-1]
			unit[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(l, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not KEY=VALUE in a section: %q", path, i+1, l)
			}
			unit[section][strings.TrimSpace(k)] = append(unit[section][strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	return unit
}

// TestSystemdUnit checks deploy/systemd/berth.service: the hardening keys,
// that ExecStart's command line is one berth serve accepts (it is run, with
// the shipped deploy/systemd/config.toml moved to a temporary directory),
// that ExecReload's SIGHUP reloads the configuration and that SIGTERM stops
// berth cleanly; and, where systemd-analyze exists, that systemd finds
// nothing to say about the unit.
func TestSystemdUnit(t *testing.T) {
	if s3test.OnS3() {
		t.Skip("packaging does not depend on the storage: run in the filesystem pass only (make test's time)")
	}
	root := repoRoot(t)
	unitPath := filepath.Join(root, "deploy", "systemd", "berth.service")
	unit := systemdUnit(t, unitPath)
	svc := unit["Service"]
	if svc == nil || unit["Unit"] == nil || unit["Install"] == nil {
		t.Fatalf("sections %v, want Unit, Service, Install", unit)
	}
	want := map[string]string{
		"DynamicUser":           "yes",
		"StateDirectory":        "berth",
		"ProtectSystem":         "strict",
		"ReadWritePaths":        "%S/berth",
		"NoNewPrivileges":       "yes",
		"PrivateTmp":            "yes",
		"ProtectHome":           "yes",
		"PrivateDevices":        "yes",
		"CapabilityBoundingSet": "",
		"AmbientCapabilities":   "",
		"RestrictSUIDSGID":      "yes",
		"ProtectKernelTunables": "yes",
		"ProtectKernelModules":  "yes",
		"ProtectControlGroups":  "yes",
		"ExecReload":            "/bin/kill -HUP $MAINPID",
	}
	for k, v := range want {
		if got := svc[k]; len(got) != 1 || got[0] != v {
			t.Errorf("[Service] %s = %q, want exactly %q", k, got, v)
		}
	}
	if u := svc["User"]; len(u) > 0 && (u[0] == "root" || u[0] == "0") {
		t.Errorf("[Service] User=%s", u[0])
	}
	if got := unit["Install"]["WantedBy"]; !slices.Equal(got, []string{"multi-user.target"}) {
		t.Errorf("[Install] WantedBy = %q", got)
	}
	exec0 := svc["ExecStart"]
	if len(exec0) != 1 {
		t.Fatalf("ExecStart = %q, want one command", exec0)
	}
	argv := strings.Fields(exec0[0])
	if argv[0] != "/usr/local/bin/berth" || len(argv) < 2 || argv[1] != "serve" {
		t.Fatalf("ExecStart = %q, want /usr/local/bin/berth serve ...", exec0[0])
	}

	// The shipped config, its root_dir moved to a temporary directory and
	// the port to any free one: as the unit starts it, otherwise.
	data := t.TempDir()
	cfg, err := os.ReadFile(filepath.Join(root, "deploy", "systemd", "config.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cfg), `root_dir = "/var/lib/berth"`) || !strings.Contains(string(cfg), "port = 5000") {
		t.Fatalf("deploy/systemd/config.toml does not store in the unit's StateDirectory on port 5000:\n%s", cfg)
	}
	cfgS := strings.Replace(string(cfg), `root_dir = "/var/lib/berth"`, fmt.Sprintf("root_dir = %q", data), 1)
	cfgS = strings.Replace(cfgS, "port = 5000", "port = 0", 1)
	cfgPath := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(cfgPath, []byte(cfgS), 0o644); err != nil {
		t.Fatal(err)
	}
	args := slices.Clone(argv[1:])
	for i, a := range args {
		if a == "/etc/berth/config.toml" {
			args[i] = cfgPath
		}
	}
	if slices.Equal(args, argv[1:]) {
		t.Fatalf("ExecStart %q does not read /etc/berth/config.toml", exec0[0])
	}
	out, err := exec.Command(berthBin, "config", "check", "-c", cfgPath).CombinedOutput()
	if err != nil {
		t.Fatalf("berth config check of deploy/systemd/config.toml: %v\n%s", err, out)
	}

	cmd := exec.Command(berthBin, args...)
	cmd.Dir = data
	logs := &testutil.Buffer{}
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 256)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			fmt.Fprintln(logs, sc.Text())
			lines <- sc.Text()
		}
		_, _ = io.Copy(io.Discard, pipe)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	waitLog := func(what string) {
		t.Helper()
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("berth exited before logging %q:\n%s", what, logs.Tail(30))
				}
				if strings.Contains(l, what) {
					return
				}
			case <-ctx.Done():
				_ = cmd.Process.Kill()
				t.Fatalf("no %q in berth's log:\n%s", what, logs.Tail(30))
			}
		}
	}
	waitLog("listening")
	// ExecReload: kill -HUP $MAINPID.
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog("SIGHUP: reloading configuration")
	waitLog("configuration reloaded")
	// systemctl stop: SIGTERM (KillSignal's default), a clean exit.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for range lines {
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("berth after SIGTERM: %v\n%s", err, logs.Tail(20))
	}

	// systemd's own check, with ExecStart pointing at the test's binary
	// (verify requires it to exist): any message is a finding.
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze not installed: the unit is not verified by systemd")
		return
	}
	raw, _ := os.ReadFile(unitPath)
	vdir := t.TempDir()
	vunit := filepath.Join(vdir, "berth.service")
	if err := os.WriteFile(vunit, []byte(strings.Replace(string(raw), "ExecStart=/usr/local/bin/berth", "ExecStart="+berthBin, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	v := exec.Command(sa, "verify", "--man=no", vunit)
	v.Dir = vdir
	if out, err := v.CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
