package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/berth-registry/berth/internal/s3test"
	"github.com/berth-registry/berth/internal/testutil"
	"github.com/berth-registry/berth/test/imagebuild"
)

// TestImage builds berth's image the way make image does (the release
// binaries, then cmd/berth-image writing an OCI layout and pushing), pushes
// it into a running berth, pulls it back and inspects it: an OCI index of
// linux/amd64 and linux/arm64, each image's config (numeric non-root user,
// entrypoint, cmd, port, volume, working directory, labels) and files (the
// released binaries for the right machine, static; the user entry; the CA
// certificates; /data owned by the user; a default config that berth config
// check accepts). Then it runs the host platform's berth binary from the
// image: berth version prints the release stamps, and it serves a real
// push and pull (go-containerregistry). A second build gives the same index
// digest.
func TestImage(t *testing.T) {
	if s3test.OnS3() {
		t.Skip("packaging does not depend on the storage: run in the filesystem pass only (make test's time)")
	}
	root := repoRoot(t)
	bin := releaseBuild(t)
	bins := releaseBinaries(t)
	rel, err := imagebuild.ReadRelease(bin)
	if err != nil {
		t.Fatal(err)
	}
	reg := startBerth(t, t.TempDir())
	ref := reg.host() + "/berth/berth:" + strings.ReplaceAll(rel.Version, "+", "_")
	layoutDir := filepath.Join(t.TempDir(), "image")

	// make image's command: the OCI layout and a push.
	cmd := exec.Command("go", "run", "./cmd/berth-image", "-root", root, "-bin", bin, "-o", layoutDir, "-push", ref, "-insecure")
	cmd.Dir = filepath.Join(root, "test")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("berth-image: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	idx, err := remote.Index(mustRef(t, ref), ggcrOpts(ctx)...)
	if err != nil {
		t.Fatalf("pull the index: %v", err)
	}
	// The layout holds the same index, named by the version.
	lp, err := layout.ImageIndexFromPath(layoutDir)
	if err != nil {
		t.Fatalf("read the OCI layout: %v", err)
	}
	lm, err := lp.IndexManifest()
	if err != nil || len(lm.Manifests) != 1 || lm.Manifests[0].Digest != digestOf(t, idx) ||
		lm.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != rel.Version {
		t.Fatalf("OCI layout index.json: %+v (err %v), want the index %s named %s", lm, err, digestOf(t, idx), rel.Version)
	}
	// Reproducible: building again gives the same digest.
	again, err := imagebuild.Build(imagebuild.Options{BinDir: bin, RootFS: filepath.Join(root, "deploy", "image", "rootfs"), Binaries: bins})
	if err != nil {
		t.Fatal(err)
	}
	if digestOf(t, again) != digestOf(t, idx) {
		t.Errorf("a second build: index %s, the first %s", digestOf(t, again), digestOf(t, idx))
	}

	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if mt, _ := idx.MediaType(); mt != types.OCIImageIndex {
		t.Errorf("index media type %s", mt)
	}
	var plats []string
	var baseDigests []v1.Hash
	hostFiles := map[string]tarFile{}
	for _, d := range im.Manifests {
		if d.Platform == nil {
			t.Fatalf("index entry %s without a platform", d.Digest)
		}
		p := d.Platform.OS + "/" + d.Platform.Architecture
		plats = append(plats, p)
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.OS != d.Platform.OS || cf.Architecture != d.Platform.Architecture {
			t.Errorf("%s: config says %s/%s", p, cf.OS, cf.Architecture)
		}
		c := cf.Config
		if c.User != "65532:65532" {
			t.Errorf("%s: user %q, want the numeric non-root 65532:65532", p, c.User)
		}
		if !slices.Equal(c.Entrypoint, []string{"/usr/local/bin/berth"}) || !slices.Equal(c.Cmd, []string{"serve", "-c", "/etc/berth/config.toml"}) {
			t.Errorf("%s: entrypoint %q cmd %q", p, c.Entrypoint, c.Cmd)
		}
		if !reflect.DeepEqual(c.ExposedPorts, map[string]struct{}{"5000/tcp": {}}) || !reflect.DeepEqual(c.Volumes, map[string]struct{}{"/data": {}}) || c.WorkingDir != "/data" {
			t.Errorf("%s: ports %v volumes %v workdir %q", p, c.ExposedPorts, c.Volumes, c.WorkingDir)
		}
		if want := imagebuild.Labels(rel); !reflect.DeepEqual(c.Labels, want) {
			t.Errorf("%s: labels %v, want %v", p, c.Labels, want)
		}
		if c.Labels["org.opencontainers.image.revision"] != rel.Commit || c.Labels["org.opencontainers.image.version"] != rel.Version {
			t.Errorf("%s: labels %v do not name the release %+v", p, c.Labels, rel)
		}
		layers, err := img.Layers()
		if err != nil || len(layers) != 2 {
			t.Fatalf("%s: %d layers (%v), want 2 (base, binaries)", p, len(layers), err)
		}
		baseDigests = append(baseDigests, digestOf(t, layers[0]))
		files := imageFiles(t, img)
		machine := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[d.Platform.Architecture]
		var inBin []string
		for name, f := range files {
			if dir, base := filepath.Split(name); dir == "usr/local/bin/" && base != "" {
				inBin = append(inBin, base)
				if f.mode != 0o755 || f.uid != 0 {
					t.Errorf("%s: %s mode %o uid %d", p, name, f.mode, f.uid)
				}
				checkELF(t, p+": "+name, f.data, machine)
			}
		}
		sort.Strings(inBin)
		if want := slices.Sorted(slices.Values(bins)); !slices.Equal(inBin, want) {
			t.Errorf("%s: /usr/local/bin holds %q, want scripts/release.sh --list %q", p, inBin, want)
		}
		if d.Platform.Architecture == runtime.GOARCH {
			hostFiles = files
		}
	}
	if !slices.Equal(plats, []string{"linux/amd64", "linux/arm64"}) {
		t.Errorf("platforms %q, want linux/amd64 and linux/arm64", plats)
	}
	if len(baseDigests) == 2 && baseDigests[0] != baseDigests[1] {
		t.Errorf("the base layer differs between platforms: %v", baseDigests)
	}
	if len(hostFiles) == 0 {
		t.Skipf("no image for this machine's architecture %s to run", runtime.GOARCH)
	}

	// The base files.
	if f := hostFiles["etc/passwd"]; !strings.Contains(string(f.data), "\nberth:x:65532:65532:") {
		t.Errorf("/etc/passwd has no berth user 65532:\n%s", f.data)
	}
	if f, ok := hostFiles["data/"]; !ok || f.uid != 65532 || f.gid != 65532 || f.typ != tar.TypeDir {
		t.Errorf("/data: %+v (present %v), want a directory owned by 65532:65532", f, ok)
	}
	ca, _ := os.ReadFile(imagebuild.CACerts)
	if f := hostFiles["etc/ssl/certs/ca-certificates.crt"]; len(f.data) == 0 || !bytes.Equal(f.data, ca) {
		t.Errorf("the image's CA certificates (%d bytes) are not this machine's (%d bytes)", len(f.data), len(ca))
	}

	// Run the image's binary for this machine.
	dir := t.TempDir()
	exe := filepath.Join(dir, "berth")
	if err := os.WriteFile(exe, hostFiles["usr/local/bin/berth"].data, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(exe, "version").Output()
	if want := "berth " + rel.Version + " (commit " + rel.Commit + ", built " + rel.Date.Format(time.RFC3339) + ")\n"; err != nil || string(out) != want {
		t.Errorf("the image's berth version: %q (%v), want %q", out, err, want)
	}
	conf := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(conf, hostFiles["etc/berth/config.toml"].data, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(exe, "config", "check", "-c", conf).CombinedOutput(); err != nil || !strings.Contains(string(out), "config OK") {
		t.Errorf("berth config check of the image's /etc/berth/config.toml: %v\n%s", err, out)
	}

	// Serve with it: a real push and pull. berthBin is what startBerth runs
	// (no test of this package runs in parallel).
	saved := berthBin
	berthBin = exe
	srv := startBerth(t, t.TempDir())
	berthBin = saved
	want, err := random.Image(2048, 2)
	if err != nil {
		t.Fatal(err)
	}
	r := mustRef(t, srv.host()+"/smoke/image:v1")
	if err := remote.Write(r, want, ggcrOpts(ctx)...); err != nil {
		t.Fatalf("push to the image's berth: %v", err)
	}
	got, err := remote.Image(r, ggcrOpts(ctx)...)
	if err != nil {
		t.Fatalf("pull from the image's berth: %v", err)
	}
	compareImages(t, "the image's berth", want, got)
	if !strings.Contains(srv.logSettled(), "version="+rel.Version+" ") {
		t.Errorf("the berth that served is not the image's (its log does not name version %s)", rel.Version)
	}
}

// tarFile is one entry of an image's filesystem.
type tarFile struct {
	typ      byte
	mode     int64
	uid, gid int
	data     []byte
}

// imageFiles reads every layer of img (no whiteouts: the image has none).
func imageFiles(t testing.TB, img v1.Image) map[string]tarFile {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]tarFile{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("layer: %v", err)
			}
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[h.Name] = tarFile{typ: h.Typeflag, mode: h.Mode, uid: h.Uid, gid: h.Gid, data: data}
		}
		rc.Close()
	}
	return files
}

func checkELF(t testing.TB, what string, b []byte, machine elf.Machine) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Errorf("%s: %v", what, err)
		return
	}
	if f.Machine != machine {
		t.Errorf("%s: machine %v, want %v", what, f.Machine, machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s: dynamically linked", what)
		}
	}
}

// TestImageMatchesDockerfile parses the Dockerfile's final stage and checks
// that it says what the daemonless build (test/imagebuild) does: the base
// (scratch), user, working directory, volume, port, environment, entrypoint,
// cmd and labels, and that its build stage takes the binaries from
// scripts/release.sh and the base files from deploy/image/rootfs, so that
// the two cannot drift apart.
func TestImageMatchesDockerfile(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	stages := dockerfileStages(string(raw))
	if len(stages) < 2 {
		t.Fatalf("Dockerfile: %d stages, want a build stage and the final one", len(stages))
	}
	build, final := stages[len(stages)-2], stages[len(stages)-1]
	if final.from != "scratch" {
		t.Errorf("final stage FROM %q, want scratch", final.from)
	}
	one := func(instr string) string {
		v := final.instr[instr]
		if len(v) != 1 {
			t.Errorf("Dockerfile: %d %s instructions in the final stage, want 1", len(v), instr)
			return ""
		}
		return v[0]
	}
	if got := one("USER"); got != imagebuild.User {
		t.Errorf("USER %q, image %q", got, imagebuild.User)
	}
	if got := one("WORKDIR"); got != imagebuild.WorkingDir {
		t.Errorf("WORKDIR %q, image %q", got, imagebuild.WorkingDir)
	}
	if got := jsonArray(t, one("VOLUME")); !slices.Equal(got, imagebuild.Volumes) {
		t.Errorf("VOLUME %q, image %q", got, imagebuild.Volumes)
	}
	if got := strings.Fields(one("EXPOSE")); !slices.Equal(got, imagebuild.ExposedPorts) {
		t.Errorf("EXPOSE %q, image %q", got, imagebuild.ExposedPorts)
	}
	if got := words(one("ENV")); !slices.Equal(got, imagebuild.Env) {
		t.Errorf("ENV %q, image %q", got, imagebuild.Env)
	}
	if got := jsonArray(t, one("ENTRYPOINT")); !slices.Equal(got, imagebuild.Entrypoint) {
		t.Errorf("ENTRYPOINT %q, image %q", got, imagebuild.Entrypoint)
	}
	if got := jsonArray(t, one("CMD")); !slices.Equal(got, imagebuild.Cmd) {
		t.Errorf("CMD %q, image %q", got, imagebuild.Cmd)
	}
	labels := map[string]string{}
	for _, l := range final.instr["LABEL"] {
		for _, w := range words(l) {
			k, v, ok := strings.Cut(w, "=")
			if !ok {
				t.Errorf("LABEL %q: not KEY=VALUE", w)
			}
			labels[k] = v
		}
	}
	// The release's labels come from build arguments; the rest are constants.
	want := imagebuild.Labels(imagebuild.Release{Version: "${VERSION}", Commit: "${COMMIT}"})
	want["org.opencontainers.image.created"] = "${CREATED}"
	if !reflect.DeepEqual(labels, want) {
		t.Errorf("Dockerfile labels %v,\nimage labels %v", labels, want)
	}
	// The same binaries and base files.
	run := strings.Join(build.instr["RUN"], "\n")
	for _, s := range []string{"scripts/release.sh", "deploy/image/rootfs", imagebuild.CACerts, "/tmp"} {
		if !strings.Contains(run, s) {
			t.Errorf("Dockerfile build stage: no %s", s)
		}
	}
	if copies := strings.Join(final.instr["COPY"], "\n"); !strings.Contains(copies, "--chown="+imagebuild.User+" /data /data") {
		t.Errorf("Dockerfile: /data not copied owned by %s:\n%s", imagebuild.User, copies)
	}
}

type dockerStage struct {
	from  string
	instr map[string][]string
}

// dockerfileStages parses a Dockerfile's instructions (continuation lines
// joined, comments dropped) into stages.
func dockerfileStages(src string) []dockerStage {
	var stages []dockerStage
	var lines []string
	var cur strings.Builder
	for _, l := range strings.Split(src, "\n") {
		tl := strings.TrimSpace(l)
		if strings.HasPrefix(tl, "#") || (tl == "" && cur.Len() == 0) {
			continue
		}
		if strings.HasSuffix(tl, "\\") {
			cur.WriteString(strings.TrimSuffix(tl, "\\") + " ")
			continue
		}
		cur.WriteString(tl)
		lines = append(lines, cur.String())
		cur.Reset()
	}
	for _, l := range lines {
		instr, args, _ := strings.Cut(l, " ")
		instr, args = strings.ToUpper(instr), strings.TrimSpace(args)
		if instr == "FROM" {
			f := strings.Fields(args)
			from := ""
			for _, w := range f {
				if !strings.HasPrefix(w, "--") {
					from = w
					break
				}
			}
			stages = append(stages, dockerStage{from: from, instr: map[string][]string{}})
			continue
		}
		if len(stages) > 0 {
			s := stages[len(stages)-1]
			s.instr[instr] = append(s.instr[instr], args)
		}
	}
	return stages
}

func jsonArray(t testing.TB, s string) []string {
	t.Helper()
	var v []string
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Errorf("%q: not a JSON array (exec form): %v", s, err)
	}
	return v
}

// words splits s at spaces outside double quotes and drops the quotes.
func words(s string) []string {
	var out []string
	var w strings.Builder
	inQ, has := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && inQ && i+1 < len(s):
			i++
			w.WriteByte(s[i])
		case c == '"':
			inQ, has = !inQ, true
		case (c == ' ' || c == '\t') && !inQ:
			if w.Len() > 0 || has {
				out = append(out, w.String())
			}
			w.Reset()
			has = false
		default:
			w.WriteByte(c)
		}
	}
	if w.Len() > 0 || has {
		out = append(out, w.String())
	}
	return out
}

// BenchmarkStartupToReady measures what an operator waits for after a
// (re)start: from exec of the release berth binary (linux, this machine's
// architecture, stripped) with the image's default configuration (its
// root_dir an empty temporary directory, bound to 127.0.0.1) to the first
// 200 from GET /readyz, polled every millisecond. It reports the median and
// the slowest of b.N starts (docs/benchmarks.md):
//
//	cd test && go test -run '^$' -bench StartupToReady -benchtime 20x ./e2e/
func BenchmarkStartupToReady(b *testing.B) {
	bin := filepath.Join(releaseBuild(b), "linux_"+runtime.GOARCH, "berth")
	raw, err := os.ReadFile(filepath.Join(repoRoot(b), "deploy", "image", "rootfs", "etc", "berth", "config.toml"))
	if err != nil {
		b.Fatal(err)
	}
	client := &http.Client{Timeout: time.Second}
	var took []time.Duration
	for i := 0; i < b.N; i++ {
		dir := b.TempDir()
		port := testutil.FreePort(b)
		cfg := strings.Replace(string(raw), `bind_address = "0.0.0.0"`, `bind_address = "127.0.0.1"`, 1)
		cfg = strings.Replace(cfg, "port = 5000", "port = "+strconv.Itoa(port), 1)
		cfg = strings.Replace(cfg, `root_dir = "/data"`, "root_dir = "+strconv.Quote(dir), 1)
		cfgPath := filepath.Join(dir, "config.toml")
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
			b.Fatal(err)
		}
		u := "http://127.0.0.1:" + strconv.Itoa(port) + "/readyz"
		cmd := exec.Command(bin, "serve", "-c", cfgPath)
		cmd.Dir = dir
		start := time.Now()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		for {
			resp, err := client.Get(u)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Since(start) > 30*time.Second {
				_ = cmd.Process.Kill()
				b.Fatalf("no 200 from %s within 30s (last: %v)", u, err)
			}
			time.Sleep(time.Millisecond)
		}
		took = append(took, time.Since(start))
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "median-ms")
	b.ReportMetric(float64(took[len(took)-1].Microseconds())/1000, "max-ms")
}
