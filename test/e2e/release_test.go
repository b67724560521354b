package e2e

import (
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-registry/berth/internal/s3test"
)

// The release binaries the image and release tests share: scripts/release.sh
// for linux/amd64 and linux/arm64 (the image's platforms), built once per test
// binary and removed by TestMain. Cross-compiling costs: see
// docs/benchmarks.md ("Release binaries and the image").
var releaseBuilt struct {
	once sync.Once
	dir  string
	out  string
	err  error
}

// releasePlatforms are what releaseBuild builds.
var releasePlatforms = []string{"linux/amd64", "linux/arm64"}

func releaseBuild(t testing.TB) string {
	t.Helper()
	root := repoRoot(t)
	releaseBuilt.once.Do(func() {
		releaseBuilt.dir, releaseBuilt.err = os.MkdirTemp("", "berth-e2e-release-")
		if releaseBuilt.err != nil {
			return
		}
		cmd := exec.Command(filepath.Join(root, "scripts", "release.sh"), append([]string{releaseBuilt.dir}, releasePlatforms...)...)
		cmd.Env = append(os.Environ(), "TZ=UTC")
		var out []byte
		out, releaseBuilt.err = cmd.CombinedOutput()
		releaseBuilt.out = string(out)
	})
	if releaseBuilt.err != nil {
		t.Fatalf("scripts/release.sh: %v\n%s", releaseBuilt.err, releaseBuilt.out)
	}
	return releaseBuilt.dir
}

// removeReleaseBuild removes releaseBuild's directory (TestMain).
func removeReleaseBuild() {
	if releaseBuilt.dir != "" {
		os.RemoveAll(releaseBuilt.dir)
	}
}

// repoRoot is the product module's directory (the checkout's root).
func repoRoot(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/berth-registry/berth").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		t.Fatalf("go list -m github.com/berth-registry/berth: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// releaseBinaries is scripts/release.sh --list.
func releaseBinaries(t testing.TB) []string {
	t.Helper()
	out, err := exec.Command(filepath.Join(repoRoot(t), "scripts", "release.sh"), "--list").Output()
	if err != nil {
		t.Fatalf("scripts/release.sh --list: %v", err)
	}
	bins := strings.Fields(string(out))
	for _, want := range []string{"berth", "berth-credential-provider"} {
		if !strings.Contains(" "+strings.Join(bins, " ")+" ", " "+want+" ") {
			t.Fatalf("scripts/release.sh --list = %q: %s missing", bins, want)
		}
	}
	return bins
}

// gitStamp is what scripts/release.sh stamps without overrides: the commit
// and its date, or ok=false outside a git checkout.
func gitStamp(t testing.TB) (commit, date string, ok bool) {
	t.Helper()
	root := repoRoot(t)
	c, err1 := exec.Command("git", "-C", root, "rev-parse", "HEAD").Output()
	ct, err2 := exec.Command("git", "-C", root, "log", "-1", "--format=%ct").Output()
	if err1 != nil || err2 != nil {
		return "", "", false
	}
	sec, err := strconv.ParseInt(strings.TrimSpace(string(ct)), 10, 64)
	if err != nil {
		t.Fatalf("git log -1 --format=%%ct: %q", ct)
	}
	return strings.TrimSpace(string(c)), time.Unix(sec, 0).UTC().Format(time.RFC3339), true
}

// TestReleaseReproducible builds the linux/amd64 release a second time, from
// another working directory, with another time zone and temporary directory,
// and compares every binary byte for byte with the first build. It checks
// what makes them reproducible and usable: the stamps are the commit and its
// date (not the time of the build), no path of the checkout is in a binary,
// each is static and stripped, and SHA256SUMS verifies. Only linux/amd64 is
// built twice (and linux/arm64 once, shared with TestImage): darwin is left
// to make release, to keep make test's time down.
func TestReleaseReproducible(t *testing.T) {
	if s3test.OnS3() {
		t.Skip("packaging does not depend on the storage: run in the filesystem pass only (make test's time)")
	}
	root := repoRoot(t)
	a := releaseBuild(t)
	b := t.TempDir()
	cmd := exec.Command(filepath.Join(root, "scripts", "release.sh"), b, "linux/amd64")
	cmd.Dir = t.TempDir()
	tmp := t.TempDir()
	cmd.Env = append(os.Environ(), "TZ=Pacific/Kiritimati", "TMPDIR="+tmp)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("second build: %v\n%s", err, out)
	}
	bins := releaseBinaries(t)
	for _, bin := range bins {
		ab, err := os.ReadFile(filepath.Join(a, "linux_amd64", bin))
		if err != nil {
			t.Fatal(err)
		}
		bb, err := os.ReadFile(filepath.Join(b, "linux_amd64", bin))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ab, bb) {
			t.Errorf("%s: two builds of one commit differ (%d and %d bytes)", bin, len(ab), len(bb))
		}
		if bytes.Contains(ab, []byte(root)) {
			t.Errorf("%s contains the checkout's path %s (-trimpath missing?)", bin, root)
		}
		checkStaticStripped(t, filepath.Join(a, "linux_amd64", bin), elf.EM_X86_64)
		checkStaticStripped(t, filepath.Join(a, "linux_arm64", bin), elf.EM_AARCH64)
	}
	envA, _ := os.ReadFile(filepath.Join(a, "release.env"))
	envB, _ := os.ReadFile(filepath.Join(b, "release.env"))
	if len(envA) == 0 || !bytes.Equal(envA, envB) {
		t.Errorf("release.env differs:\n%s\n%s", envA, envB)
	}

	// berth version prints the stamps: the commit and the commit's date.
	out, err := exec.Command(filepath.Join(a, "linux_amd64", "berth"), "version").Output()
	if err != nil {
		t.Fatalf("berth version: %v", err)
	}
	if commit, date, ok := gitStamp(t); ok {
		if want := "(commit " + commit + ", built " + date + ")\n"; !strings.HasSuffix(string(out), want) {
			t.Errorf("berth version = %q, want the suffix %q", out, want)
		}
	} else if !strings.Contains(string(out), "(commit ") {
		t.Errorf("berth version = %q: no stamps", out)
	}

	// SHA256SUMS lists every binary and verifies.
	sums, err := os.ReadFile(filepath.Join(a, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	if n, want := strings.Count(string(sums), "\n"), len(bins)*len(releasePlatforms); n != want {
		t.Errorf("SHA256SUMS has %d lines, want %d:\n%s", n, want, sums)
	}
	check := exec.Command("sha256sum", "-c", "SHA256SUMS")
	check.Dir = a
	if out, err := check.CombinedOutput(); err != nil {
		t.Errorf("sha256sum -c SHA256SUMS: %v\n%s", err, out)
	}
}

// checkStaticStripped checks that path is an ELF executable for machine with
// no dynamic loader (static) and no symbol table (stripped).
func checkStaticStripped(t testing.TB, path string, machine elf.Machine) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Errorf("%s: %v", path, err)
		return
	}
	defer f.Close()
	if f.Machine != machine {
		t.Errorf("%s: machine %v, want %v", path, f.Machine, machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("%s: dynamically linked (%v)", path, p.Type)
		}
	}
	if f.Section(".symtab") != nil {
		t.Errorf("%s: not stripped (has .symtab)", path)
	}
}
