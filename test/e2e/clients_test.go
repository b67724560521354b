package e2e

// Real command-line registry clients (crane, oras, regctl, skopeo, cosign,
// podman) driven with os/exec against a berth process. The clients are
// installed by scripts/install-test-clients.sh; docs/clients.md says which
// versions and why others are left out.
//
// A client that is not installed skips its test, unless BERTH_REQUIRE_CLIENTS=1
// (CI), which makes it a failure. Every client runs with HOME, DOCKER_CONFIG,
// XDG_* and the containers-* configuration pointed at a temporary directory,
// and with HTTP(S)_PROXY pointed at a local black hole, so that no test reads
// or writes the user's configuration and no client reaches past loopback.
// Every image is made here from local bytes; results are checked by digest and
// by content, not by exit codes alone.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/crypto/bcrypt"
)

// bigLayerSize is larger than every client's single-request or chunk
// threshold, so the big layers go through chunked / streamed uploads.
const bigLayerSize = 20 << 20

// clientCmdTimeout bounds one client command.
const clientCmdTimeout = 5 * time.Minute

// ---- finding the clients ----

var goBinDirs = sync.OnceValue(func() []string {
	out, err := exec.Command("go", "env", "GOBIN", "GOPATH").Output()
	if err != nil {
		return nil
	}
	var dirs []string
	vals := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(vals) > 0 && strings.TrimSpace(vals[0]) != "" {
		dirs = append(dirs, strings.TrimSpace(vals[0])) // GOBIN
	}
	if len(vals) > 1 {
		for _, gp := range filepath.SplitList(strings.TrimSpace(vals[1])) {
			if gp != "" {
				dirs = append(dirs, filepath.Join(gp, "bin"))
			}
		}
	}
	return dirs
})

// needClient returns the path of the named CLI: from PATH, else from the
// directory `go install` puts binaries in. When it is missing the test is
// skipped, or fails when BERTH_REQUIRE_CLIENTS=1.
func needClient(t *testing.T, tool string) string {
	t.Helper()
	if p, err := exec.LookPath(tool); err == nil {
		return p
	}
	for _, dir := range goBinDirs() {
		p := filepath.Join(dir, tool)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	msg := fmt.Sprintf("%s is not installed (not on PATH nor in the go install directory); run scripts/install-test-clients.sh", tool)
	if os.Getenv("BERTH_REQUIRE_CLIENTS") == "1" {
		t.Fatalf("%s (BERTH_REQUIRE_CLIENTS=1)", msg)
	}
	t.Skip(msg)
	return ""
}

// ---- running the clients in a sandboxed environment ----

// clientSandbox runs CLIs with a private HOME and configuration.
type clientSandbox struct {
	t    *testing.T
	p    *berthProc
	home string
	work string // scratch files for the test
	env  []string
	// proxyHits counts connections the clients tried to make to anything
	// but loopback (they all land on the black-hole proxy).
	proxyHits *atomic.Int64
}

// envDropped are the variables not inherited from the test's environment.
var envDropped = regexp.MustCompile(`(?i)^(HOME|DOCKER_[A-Z_]*|REGCTL_[A-Z_]*|REGISTRY_AUTH_FILE|XDG_[A-Z_]*|CONTAINERS_[A-Z_]*|COSIGN_[A-Z_]*|SIGSTORE_[A-Z_]*|TUF_ROOT|ORAS_[A-Z_]*|HTTP_PROXY|HTTPS_PROXY|ALL_PROXY|NO_PROXY|SSL_CERT_[A-Z_]*)=`)

func newClientSandbox(t *testing.T, p *berthProc) *clientSandbox {
	t.Helper()
	home := t.TempDir()
	s := &clientSandbox{t: t, p: p, home: home, work: t.TempDir(), proxyHits: new(atomic.Int64)}

	// A proxy that drops every connection: a client that tries to reach the
	// internet (cosign's TUF refresh, for one) fails at once on loopback.
	// Go's proxy selection never proxies loopback, so berth is reached
	// directly.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.proxyHits.Add(1)
			c.Close()
		}
	}()
	proxy := "http://" + l.Addr().String()

	dirs := map[string]string{
		"DOCKER_CONFIG":   filepath.Join(home, ".docker"),
		"XDG_CONFIG_HOME": filepath.Join(home, ".config"),
		"XDG_DATA_HOME":   filepath.Join(home, ".local", "share"),
		"XDG_CACHE_HOME":  filepath.Join(home, ".cache"),
		"XDG_RUNTIME_DIR": filepath.Join(home, "run"),
		"REGCTL_DIR":      filepath.Join(home, ".regctl"),
		"TMP":             filepath.Join(home, "tmp"),
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	regConf := filepath.Join(home, "registries.conf")
	writeFile(t, regConf, []byte("unqualified-search-registries = []\n"))
	// podman push stats REGISTRY_AUTH_FILE: an empty one, no credentials.
	writeFile(t, filepath.Join(home, "auth.json"), []byte(`{"auths":{}}`+"\n"))
	writeFile(t, filepath.Join(home, "policy.json"), []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`+"\n"))

	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return envDropped.MatchString(kv) })
	env = append(env,
		"HOME="+home,
		"DOCKER_CONFIG="+dirs["DOCKER_CONFIG"],
		"XDG_CONFIG_HOME="+dirs["XDG_CONFIG_HOME"],
		"XDG_DATA_HOME="+dirs["XDG_DATA_HOME"],
		"XDG_CACHE_HOME="+dirs["XDG_CACHE_HOME"],
		"XDG_RUNTIME_DIR="+dirs["XDG_RUNTIME_DIR"],
		"REGCTL_CONFIG="+filepath.Join(dirs["REGCTL_DIR"], "config.json"),
		"REGISTRY_AUTH_FILE="+filepath.Join(home, "auth.json"),
		"CONTAINERS_REGISTRIES_CONF="+regConf,
		"TUF_ROOT="+filepath.Join(home, ".sigstore", "root"),
		"HTTP_PROXY="+proxy,
		"HTTPS_PROXY="+proxy,
		"NO_PROXY=127.0.0.1,localhost,::1",
	)
	s.env = env
	t.Cleanup(func() {
		if n := s.proxyHits.Load(); n > 0 {
			t.Logf("clients tried %d connection(s) past loopback (all dropped by the black-hole proxy)", n)
		}
	})
	return s
}

// in returns a sandbox that runs commands in dir (created if missing).
func (s *clientSandbox) in(dir string) *clientSandbox {
	s.t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		s.t.Fatal(err)
	}
	c := *s
	c.work = dir
	return &c
}

// path returns a path in the scratch directory.
func (s *clientSandbox) path(elem ...string) string {
	return filepath.Join(append([]string{s.work}, elem...)...)
}

// clientResult is what one command did.
type clientResult struct {
	cmdline        string
	stdout, stderr string
	err            error
}

func (r clientResult) String() string {
	return fmt.Sprintf("$ %s\nerr: %v\nstdout:\n%s\nstderr:\n%s", r.cmdline, r.err, tailString(r.stdout, 3000), tailString(r.stderr, 3000))
}

func tailString(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// exec runs bin with args in the scratch directory, with extra environment
// variables and stdin, and returns what happened.
func (s *clientSandbox) exec(stdin []byte, extraEnv []string, bin string, args ...string) clientResult {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), clientCmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = s.work
	cmd.Env = append(slices.Clone(s.env), extraEnv...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 10 * time.Second
	line := filepath.Base(bin)
	for _, a := range args {
		if strings.ContainsAny(a, " \t\n\"'{}") {
			a = strconv.Quote(a)
		}
		line += " " + a
	}
	start := time.Now()
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (timed out after %s)", err, clientCmdTimeout)
	}
	s.t.Logf("$ %s  (%s, err=%v)", line, time.Since(start).Round(time.Millisecond), err)
	return clientResult{cmdline: line, stdout: stdout.String(), stderr: stderr.String(), err: err}
}

// run runs a command that must succeed and returns its stdout.
func (s *clientSandbox) run(bin string, args ...string) string {
	s.t.Helper()
	r := s.exec(nil, nil, bin, args...)
	if r.err != nil {
		s.t.Fatalf("client command failed:\n%s", r)
	}
	return r.stdout
}

// runEnv is run with extra environment variables.
func (s *clientSandbox) runEnv(extraEnv []string, bin string, args ...string) string {
	s.t.Helper()
	r := s.exec(nil, extraEnv, bin, args...)
	if r.err != nil {
		s.t.Fatalf("client command failed:\n%s", r)
	}
	return r.stdout
}

// fail runs a command that must fail and returns its result.
func (s *clientSandbox) fail(bin string, args ...string) clientResult {
	s.t.Helper()
	r := s.exec(nil, nil, bin, args...)
	if r.err == nil {
		s.t.Fatalf("client command succeeded, want a failure:\n%s", r)
	}
	return r
}

// ---- test content ----

// randBytes returns n deterministic pseudo-random bytes.
func randBytes(seed uint64, n int) []byte {
	var key [32]byte
	for i := range 4 {
		key[i*8] = byte(seed >> (8 * i))
	}
	key[31] = 0xb7
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(key).Read(b)
	return b
}

type tarEntry struct {
	name string
	data []byte
}

// tarBytes is a deterministic tar archive of regular files.
func tarBytes(t testing.TB, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{
			Name:     e.name,
			Mode:     0o644,
			Size:     int64(len(e.data)),
			ModTime:  time.Unix(1700000000, 0),
			Typeflag: tar.TypeReg,
			Format:   tar.FormatPAX,
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// layerFiles reads the regular files of a (possibly gzip-compressed) tar
// layer. Leading "./" and "/" are dropped from names.
func layerFiles(t testing.TB, b []byte) map[string][]byte {
	t.Helper()
	var r io.Reader = bytes.NewReader(b)
	if len(b) > 2 && b[0] == 0x1f && b[1] == 0x8b {
		zr, err := gzip.NewReader(r)
		if err != nil {
			t.Fatalf("gunzip layer: %v", err)
		}
		r = zr
	}
	files := map[string][]byte{}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read layer tar: %v", err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("read layer tar entry %s: %v", hdr.Name, err)
		}
		files[strings.TrimPrefix(strings.TrimPrefix(hdr.Name, "./"), "/")] = data
	}
	return files
}

// wantFiles checks that got holds every file of want with the same bytes.
func wantFiles(t testing.TB, what string, want, got map[string][]byte) {
	t.Helper()
	for _, n := range slices.Sorted(maps.Keys(want)) {
		g, ok := got[n]
		if !ok {
			t.Fatalf("%s: file %s missing (have %v)", what, n, slices.Sorted(maps.Keys(got)))
		}
		if !bytes.Equal(g, want[n]) {
			t.Fatalf("%s: file %s: %d bytes (%s) differ from the %d written (%s)", what, n, len(g), sha256Digest(g), len(want[n]), sha256Digest(want[n]))
		}
	}
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func wantEqual[T comparable](t testing.TB, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
}

var digestRE = regexp.MustCompile(`sha256:[0-9a-f]{64}`)

// digestIn returns the last sha256 digest in s.
func digestIn(t testing.TB, what, s string) string {
	t.Helper()
	all := digestRE.FindAllString(s, -1)
	if len(all) == 0 {
		t.Fatalf("%s: no digest in output %q", what, tailString(s, 500))
	}
	return all[len(all)-1]
}

func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func wantContains(t testing.TB, what string, have []string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !slices.Contains(have, w) {
			t.Fatalf("%s: %q missing from %q", what, w, have)
		}
	}
}

// ---- reading berth directly, to check what the clients did ----

const manifestAcceptAll = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, " +
	"application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json"

// httpManifest GETs a manifest from berth and checks it hashes to its digest.
func httpManifest(t testing.TB, p *berthProc, repo, ref string) ([]byte, ociManifest) {
	t.Helper()
	resp, body := doReq(t, http.MethodGet, p.url("/v2/"+repo+"/manifests/"+ref), nil, map[string]string{"Accept": manifestAcceptAll})
	wantStatus(t, "GET manifest "+repo+":"+ref, resp, body, http.StatusOK)
	if dg := resp.Header.Get("Docker-Content-Digest"); dg != "" && dg != sha256Digest(body) {
		t.Fatalf("GET manifest %s:%s: Docker-Content-Digest %s, body hashes to %s", repo, ref, dg, sha256Digest(body))
	}
	if strings.HasPrefix(ref, "sha256:") && sha256Digest(body) != ref {
		t.Fatalf("GET manifest %s@%s: body hashes to %s", repo, ref, sha256Digest(body))
	}
	var m ociManifest
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("manifest %s:%s: %v", repo, ref, err)
	}
	return body, m
}

// httpBlob GETs a blob from berth and checks its digest.
func httpBlob(t testing.TB, p *berthProc, repo, dg string) []byte {
	t.Helper()
	resp, body := doReq(t, http.MethodGet, p.url("/v2/"+repo+"/blobs/"+dg), nil, nil)
	wantStatus(t, "GET blob "+repo+"@"+dg, resp, body, http.StatusOK)
	if sha256Digest(body) != dg {
		t.Fatalf("GET blob %s@%s: body hashes to %s", repo, dg, sha256Digest(body))
	}
	return body
}

// httpImageFiles reads every layer of an image from berth and returns the
// union of the files in them.
func httpImageFiles(t testing.TB, p *berthProc, repo, ref string) map[string][]byte {
	t.Helper()
	_, m := httpManifest(t, p, repo, ref)
	if len(m.Layers) == 0 {
		t.Fatalf("image %s:%s has no layers", repo, ref)
	}
	files := map[string][]byte{}
	for _, l := range m.Layers {
		b := httpBlob(t, p, repo, l.Digest)
		if int64(len(b)) != l.Size {
			t.Fatalf("layer %s of %s:%s: %d bytes, descriptor says %d", l.Digest, repo, ref, len(b), l.Size)
		}
		maps.Copy(files, layerFiles(t, b))
	}
	return files
}

// httpReferrers asks berth's referrers API directly.
func httpReferrers(t testing.TB, p *berthProc, repo, dg, artifactType string) []ociDescriptor {
	t.Helper()
	u := p.url("/v2/" + repo + "/referrers/" + dg)
	if artifactType != "" {
		u += "?artifactType=" + artifactType
	}
	resp, body := doReq(t, http.MethodGet, u, nil, nil)
	wantStatus(t, "GET referrers", resp, body, http.StatusOK)
	var idx ociIndex
	if err := json.Unmarshal(body, &idx); err != nil {
		t.Fatalf("referrers of %s@%s: %v", repo, dg, err)
	}
	return idx.Manifests
}

func httpTags(t testing.TB, p *berthProc, repo string) []string {
	t.Helper()
	resp, body := doReq(t, http.MethodGet, p.url("/v2/"+repo+"/tags/list"), nil, nil)
	wantStatus(t, "GET tags", resp, body, http.StatusOK)
	var tl struct {
		Tags []string `json:"tags"`
	}
	if err := json.Unmarshal(body, &tl); err != nil {
		t.Fatal(err)
	}
	return tl.Tags
}

func httpManifestStatus(t testing.TB, p *berthProc, repo, ref string) int {
	t.Helper()
	resp, _ := doReq(t, http.MethodHead, p.url("/v2/"+repo+"/manifests/"+ref), nil, map[string]string{"Accept": manifestAcceptAll})
	return resp.StatusCode
}

// berthRequest is one request line of berth's log.
type berthRequest struct {
	action, method, repo string
	status               int
	bytesIn              int64
}

var (
	logActionRE  = regexp.MustCompile(`\baction="?([a-z-]+)`)
	logMethodRE  = regexp.MustCompile(`\bmethod="?([A-Z]+)`)
	logRepoRE    = regexp.MustCompile(`\brepository="?([^"\s]*)`)
	logStatusRE  = regexp.MustCompile(`\bstatus="?(\d+)`)
	logBytesInRE = regexp.MustCompile(`\bbytes_in="?(\d+)`)
)

// berthRequests parses the request log lines berth wrote so far. ok is false
// when berth logs no request lines (then checks on them are skipped).
func berthRequests(p *berthProc) (reqs []berthRequest, ok bool) {
	for _, l := range strings.Split(p.stderr.Tail(1<<30), "\n") {
		if !strings.Contains(l, "msg=request") && !strings.Contains(l, `"msg":"request"`) {
			continue
		}
		ok = true
		var r berthRequest
		if m := logActionRE.FindStringSubmatch(l); m != nil {
			r.action = m[1]
		}
		if m := logMethodRE.FindStringSubmatch(l); m != nil {
			r.method = m[1]
		}
		if m := logRepoRE.FindStringSubmatch(l); m != nil {
			r.repo = m[1]
		}
		if m := logStatusRE.FindStringSubmatch(l); m != nil {
			r.status, _ = strconv.Atoi(m[1])
		}
		if m := logBytesInRE.FindStringSubmatch(l); m != nil {
			r.bytesIn, _ = strconv.ParseInt(m[1], 10, 64)
		}
		reqs = append(reqs, r)
	}
	return reqs, ok
}

// wantRequests checks from berth's request log that at least minCount
// requests with this action on this repository succeeded (2xx) and that the
// largest request body among them is at least minBytesIn. It returns how
// many there were (-1 when berth logs no request lines).
func wantRequests(t testing.TB, p *berthProc, action, repo string, minCount int, minBytesIn int64) int {
	t.Helper()
	// berth serve writes its info lines in batches every 100 ms
	// (internal/logbuf): the last requests' lines may still be on their
	// way, so count again for a while before judging.
	var n int
	var maxIn int64
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		reqs, ok := berthRequests(p)
		if !ok {
			if time.Now().Before(deadline) {
				continue
			}
			t.Logf("berth logs no request lines: not checking for %s on %s", action, repo)
			return -1
		}
		n, maxIn = 0, 0
		for _, r := range reqs {
			if r.action == action && r.repo == repo && r.status >= 200 && r.status < 300 {
				n++
				maxIn = max(maxIn, r.bytesIn)
			}
		}
		if n >= minCount && maxIn >= minBytesIn || time.Now().After(deadline) {
			break
		}
	}
	if n < minCount {
		t.Fatalf("berth log: %d successful %s requests on %s, want at least %d", n, action, repo, minCount)
	}
	if maxIn < minBytesIn {
		t.Fatalf("berth log: largest %s request body on %s is %d bytes, want at least %d", action, repo, maxIn, minBytesIn)
	}
	t.Logf("berth log: %d %s request(s) on %s, largest body %d bytes", n, action, repo, maxIn)
	return n
}

// ---- images built in Go for clients that copy from local layouts ----

// gzipLayerImage is an OCI image of gzip layers made from the given tars,
// with the given platform in its config.
func gzipLayerImage(t testing.TB, plat v1.Platform, tars ...[]byte) v1.Image {
	t.Helper()
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for _, tb := range tars {
		gz := gzipBytes(t, tb)
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(gz)), nil
		}, tarball.WithMediaType(types.OCILayer))
		if err != nil {
			t.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			t.Fatal(err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = plat.OS, plat.Architecture, plat.Variant
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func rawManifestOf(t testing.TB, m interface{ RawManifest() ([]byte, error) }) []byte {
	t.Helper()
	b, err := m.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ================================ crane ================================

// TestCrane drives go-containerregistry's crane: append (streamed upload of a
// 20 MiB layer), manifest/blob/digest reads, copy across repositories (blob
// mounts), tag, ls, catalog, mutate, a multi-arch index built with
// `crane index append` and copied, an OCI layout round trip (pull
// --format=oci, push) and deletes by tag and by digest.
func TestCrane(t *testing.T) {
	crane := needClient(t, "crane")
	p := startBerth(t, t.TempDir())
	s := newClientSandbox(t, p)
	host := p.host()
	c := func(args ...string) string { t.Helper(); return s.run(crane, append(args, "--insecure")...) }

	small := []tarEntry{{"etc/hello.txt", []byte("hello from crane\n")}, {"data/small.bin", randBytes(1, 64<<10)}}
	big := []tarEntry{{"data/big.bin", randBytes(2, bigLayerSize)}}
	writeFile(t, s.path("small.tar"), tarBytes(t, small...))
	writeFile(t, s.path("big.tar"), tarBytes(t, big...))
	wantAll := map[string][]byte{}
	for _, e := range append(slices.Clone(small), big...) {
		wantAll[e.name] = e.data
	}

	// Push: two layers onto an empty OCI base.
	ref := host + "/crane/app:v1"
	dg := digestIn(t, "crane append", c("append", "--oci-empty-base", "-f", s.path("small.tar"), "-f", s.path("big.tar"), "-t", ref))
	wantEqual(t, "crane digest", strings.TrimSpace(c("digest", ref)), dg)
	wantRequests(t, p, "patch-upload", "crane/app", 1, bigLayerSize)

	// Pull: manifest bytes hash to the digest, every layer's bytes to its
	// digest, and the files in them are the ones written.
	raw := []byte(c("manifest", ref))
	wantEqual(t, "crane manifest hash", sha256Digest(raw), dg)
	var m ociManifest
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "layer count", len(m.Layers), 2)
	got := map[string][]byte{}
	for _, l := range m.Layers {
		b := []byte(c("blob", host+"/crane/app@"+l.Digest))
		wantEqual(t, "crane blob hash", sha256Digest(b), l.Digest)
		wantEqual(t, "crane blob size", int64(len(b)), l.Size)
		maps.Copy(got, layerFiles(t, b))
	}
	wantFiles(t, "crane-pulled layers", wantAll, got)
	wantEqual(t, "crane config hash", sha256Digest([]byte(c("config", ref))), m.Config.Digest)

	// Copy to another repository: the blobs are mounted, not uploaded again.
	c("copy", ref, host+"/crane/copy:v1")
	wantEqual(t, "copied digest", strings.TrimSpace(c("digest", host+"/crane/copy:v1")), dg)
	wantRequests(t, p, "mount-blob", "crane/copy", 1, 0)
	wantFiles(t, "copied image (HTTP)", wantAll, httpImageFiles(t, p, "crane/copy", "v1"))

	// Tags.
	c("tag", ref, "v2")
	wantEqual(t, "tag v2 digest", strings.TrimSpace(c("digest", host+"/crane/app:v2")), dg)

	// Multi-arch: two platform variants, an index of them, and its copy.
	amd := digestIn(t, "crane mutate amd64", c("mutate", ref, "--set-platform", "linux/amd64", "-t", host+"/crane/app:amd64"))
	arm := digestIn(t, "crane mutate arm64", c("mutate", ref, "--set-platform", "linux/arm64/v8", "-t", host+"/crane/app:arm64"))
	if amd == arm || amd == dg {
		t.Fatalf("mutate --set-platform gave digests %s and %s (base %s)", amd, arm, dg)
	}
	c("index", "append", "-m", host+"/crane/app:amd64", "-m", host+"/crane/app:arm64", "-t", host+"/crane/multi:v1")
	idxRaw := []byte(c("manifest", host+"/crane/multi:v1"))
	idxDg := sha256Digest(idxRaw)
	var idx ociIndex
	if err := json.Unmarshal(idxRaw, &idx); err != nil {
		t.Fatal(err)
	}
	var children []string
	for _, d := range idx.Manifests {
		children = append(children, d.Digest)
	}
	if len(idx.Manifests) != 2 || !slices.Contains(children, amd) || !slices.Contains(children, arm) {
		t.Fatalf("index %s lists %v, want %s and %s", idxDg, children, amd, arm)
	}
	c("copy", host+"/crane/multi:v1", host+"/crane/multi-copy:v1")
	wantEqual(t, "copied index bytes", string(c("manifest", host+"/crane/multi-copy:v1")), string(idxRaw))
	wantEqual(t, "copied index arm64", strings.TrimSpace(s.run(crane, "digest", "--insecure", "--platform", "linux/arm64/v8", host+"/crane/multi-copy:v1")), arm)
	wantEqual(t, "copied index amd64", strings.TrimSpace(s.run(crane, "digest", "--insecure", "--platform", "linux/amd64", host+"/crane/multi-copy:v1")), amd)
	for _, child := range children {
		if st := httpManifestStatus(t, p, "crane/multi-copy", child); st != http.StatusOK {
			t.Fatalf("child %s of the copied index: HEAD status %d", child, st)
		}
	}

	// OCI layout round trip: pull from berth into a layout, check every
	// blob there, push the layout to a new repository.
	lay := s.path("layout")
	c("pull", "--format=oci", ref, lay)
	blobs, err := filepath.Glob(filepath.Join(lay, "blobs", "sha256", "*"))
	if err != nil || len(blobs) < 4 {
		t.Fatalf("OCI layout has %d blobs (%v), want manifest, config and 2 layers", len(blobs), err)
	}
	for _, b := range blobs {
		wantEqual(t, "layout blob "+filepath.Base(b), sha256Digest(readFile(t, b)), "sha256:"+filepath.Base(b))
	}
	c("push", lay, host+"/crane/from-layout:v1")
	wantEqual(t, "pushed layout digest", strings.TrimSpace(c("digest", host+"/crane/from-layout:v1")), dg)

	// Listings.
	wantEqual(t, "crane ls crane/app", strings.Join(lines(c("ls", host+"/crane/app")), ","), "amd64,arm64,v1,v2")
	wantContains(t, "crane catalog", lines(c("catalog", host)),
		"crane/app", "crane/copy", "crane/multi", "crane/multi-copy", "crane/from-layout")

	// Delete a tag: the other tags and the manifest stay.
	c("delete", host+"/crane/app:v2")
	wantEqual(t, "crane ls after tag delete", strings.Join(lines(c("ls", host+"/crane/app")), ","), "amd64,arm64,v1")
	wantEqual(t, "v1 after deleting v2", strings.TrimSpace(c("digest", ref)), dg)

	// Delete by digest: the manifest and the tag pointing at it are gone.
	c("delete", host+"/crane/copy@"+dg)
	r := s.fail(crane, "manifest", "--insecure", host+"/crane/copy@"+dg)
	if !strings.Contains(r.stderr, "MANIFEST_UNKNOWN") && !strings.Contains(r.stderr, "404") {
		t.Fatalf("manifest after delete: want MANIFEST_UNKNOWN / 404:\n%s", r)
	}
	s.fail(crane, "digest", "--insecure", host+"/crane/copy:v1")
	// The source repository is untouched.
	wantFiles(t, "crane/app after deleting the copy", wantAll, httpImageFiles(t, p, "crane/app", "v1"))
}

// ================================ oras ================================

// orasDesc is the part of oras' --format json output the tests read.
type orasDesc struct {
	Reference    string     `json:"reference"`
	MediaType    string     `json:"mediaType"`
	Digest       string     `json:"digest"`
	Size         int64      `json:"size"`
	ArtifactType string     `json:"artifactType"`
	Referrers    []orasDesc `json:"referrers"`
}

func orasJSON(t testing.TB, what, out string) orasDesc {
	t.Helper()
	var d orasDesc
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("%s: parse oras JSON: %v\n%s", what, err, tailString(out, 1000))
	}
	return d
}

// TestOras drives the oras CLI: push of files as an artifact (one of them
// 20 MiB), pull and compare bytes, manifest and blob fetch, attach referrers
// through the OCI 1.1 referrers API (and a referrer of a referrer), discover
// with and without an artifactType filter, copy with referrers to another
// repository, tag, repo tags / repo ls, and manifest delete.
func TestOras(t *testing.T) {
	oras := needClient(t, "oras")
	p := startBerth(t, t.TempDir())
	s := newClientSandbox(t, p)
	host := p.host()
	o := func(args ...string) string {
		t.Helper()
		// --plain-http must follow the subcommand.
		return s.run(oras, append(args, "--plain-http")...)
	}
	const (
		artType  = "application/vnd.berth.test.artifact"
		sigType  = "application/vnd.berth.test.signature"
		sbomType = "application/vnd.berth.test.sbom"
		refsAPI  = "v1.1-referrers-api"
	)

	files := map[string][]byte{
		"big.bin":    randBytes(10, bigLayerSize),
		"readme.txt": []byte("an oras artifact pushed to berth\n"),
	}
	for n, b := range files {
		writeFile(t, s.path("in", n), b)
	}

	// Push. oras names files after their paths as given: run it in their
	// directory.
	pushed := orasJSON(t, "oras push", s.in(s.path("in")).run(oras, "push", "--plain-http", "--format", "json", "--artifact-type", artType,
		host+"/oras/art:v1", "big.bin:application/octet-stream", "readme.txt:text/plain"))
	dg := pushed.Digest
	wantEqual(t, "oras resolve", strings.TrimSpace(o("resolve", host+"/oras/art:v1")), dg)
	wantRequests(t, p, "finish-upload", "oras/art", 1, bigLayerSize)

	// The manifest as oras sees it and as berth serves it.
	raw := []byte(o("manifest", "fetch", host+"/oras/art:v1"))
	wantEqual(t, "oras manifest fetch hash", sha256Digest(raw), dg)
	var m ociManifest
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "layers", len(m.Layers), 2)
	for _, l := range m.Layers {
		title := l.Annotations["org.opencontainers.image.title"]
		wantEqual(t, "layer "+title+" digest", l.Digest, sha256Digest(files[title]))
	}
	bigDg := sha256Digest(files["big.bin"])
	b := []byte(o("blob", "fetch", "--output", "-", host+"/oras/art@"+bigDg))
	wantEqual(t, "oras blob fetch", sha256Digest(b), bigDg)

	// Pull into an empty directory and compare bytes.
	o("pull", "-o", s.path("out"), host+"/oras/art:v1")
	for n, want := range files {
		if got := readFile(t, s.path("out", n)); !bytes.Equal(got, want) {
			t.Fatalf("oras pull: %s differs (%d bytes, want %d)", n, len(got), len(want))
		}
	}

	// Referrers: a signature and an SBOM on the artifact, a signature on
	// the SBOM. --distribution-spec forces the referrers API (no fallback to
	// the referrers tag scheme).
	writeFile(t, s.path("sig.txt"), []byte("signature bytes\n"))
	writeFile(t, s.path("sbom.json"), []byte(`{"packages":["berth"]}`))
	sig := orasJSON(t, "oras attach sig", o("attach", "--format", "json", "--distribution-spec", refsAPI,
		"--artifact-type", sigType, host+"/oras/art@"+dg, "sig.txt:text/plain"))
	sbom := orasJSON(t, "oras attach sbom", o("attach", "--format", "json", "--distribution-spec", refsAPI,
		"--artifact-type", sbomType, host+"/oras/art@"+dg, "sbom.json:application/json"))
	sbomSig := orasJSON(t, "oras attach sig of sbom", o("attach", "--format", "json", "--distribution-spec", refsAPI,
		"--artifact-type", sigType, host+"/oras/art@"+sbom.Digest, "sig.txt:text/plain"))

	checkTree := func(repo string) {
		t.Helper()
		tree := orasJSON(t, "oras discover", o("discover", "--format", "json", "--distribution-spec", refsAPI, host+"/"+repo+"@"+dg))
		byDigest := map[string]orasDesc{}
		for _, r := range tree.Referrers {
			byDigest[r.Digest] = r
		}
		if len(tree.Referrers) != 2 || byDigest[sig.Digest].ArtifactType != sigType || byDigest[sbom.Digest].ArtifactType != sbomType {
			t.Fatalf("oras discover %s: referrers %+v, want %s (%s) and %s (%s)", repo, tree.Referrers, sig.Digest, sigType, sbom.Digest, sbomType)
		}
		nested := byDigest[sbom.Digest].Referrers
		if len(nested) != 1 || nested[0].Digest != sbomSig.Digest {
			t.Fatalf("oras discover %s: referrers of the SBOM %+v, want %s", repo, nested, sbomSig.Digest)
		}
		filtered := orasJSON(t, "oras discover --artifact-type", o("discover", "--format", "json", "--distribution-spec", refsAPI,
			"--depth", "1", "--artifact-type", sigType, host+"/"+repo+"@"+dg))
		if len(filtered.Referrers) != 1 || filtered.Referrers[0].Digest != sig.Digest {
			t.Fatalf("oras discover %s --artifact-type %s: %+v, want only %s", repo, sigType, filtered.Referrers, sig.Digest)
		}
	}
	checkTree("oras/art")
	// The same through the API directly.
	refs := httpReferrers(t, p, "oras/art", dg, "")
	if len(refs) != 2 {
		t.Fatalf("GET referrers: %+v, want 2", refs)
	}
	if refs := httpReferrers(t, p, "oras/art", dg, sbomType); len(refs) != 1 || refs[0].Digest != sbom.Digest {
		t.Fatalf("GET referrers?artifactType=%s: %+v", sbomType, refs)
	}
	// The attached signature pulls back byte for byte.
	o("pull", "-o", s.path("sig-out"), host+"/oras/art@"+sig.Digest)
	wantEqual(t, "pulled signature", string(readFile(t, s.path("sig-out", "sig.txt"))), "signature bytes\n")

	// Copy with referrers to another repository (blob mounts).
	s.run(oras, "cp", "-r", "--from-plain-http", "--to-plain-http", host+"/oras/art:v1", host+"/oras/copy:v1")
	wantEqual(t, "copied digest", strings.TrimSpace(o("resolve", host+"/oras/copy:v1")), dg)
	checkTree("oras/copy")
	wantRequests(t, p, "mount-blob", "oras/copy", 1, 0)

	// Tags and catalog.
	o("tag", host+"/oras/art:v1", "v2", "v3")
	wantEqual(t, "oras repo tags", strings.Join(lines(o("repo", "tags", host+"/oras/art")), ","), "v1,v2,v3")
	wantContains(t, "oras repo ls", lines(o("repo", "ls", host)), "oras/art", "oras/copy")

	// Delete a referrer: discover no longer lists it.
	o("manifest", "delete", "--force", host+"/oras/art@"+sig.Digest)
	after := orasJSON(t, "oras discover after delete", o("discover", "--format", "json", "--distribution-spec", refsAPI, "--depth", "1", host+"/oras/art@"+dg))
	if len(after.Referrers) != 1 || after.Referrers[0].Digest != sbom.Digest {
		t.Fatalf("oras discover after deleting the signature: %+v, want only %s", after.Referrers, sbom.Digest)
	}
	// Delete by tag: oras resolves the tag and deletes the manifest, so
	// every tag of it goes; the copy in the other repository stays.
	o("manifest", "delete", "--force", host+"/oras/art:v3")
	wantEqual(t, "oras repo tags after manifest delete", strings.Join(lines(o("repo", "tags", host+"/oras/art")), ","), "")
	if st := httpManifestStatus(t, p, "oras/art", dg); st != http.StatusNotFound {
		t.Fatalf("deleted manifest: HEAD status %d, want 404", st)
	}
	s.fail(oras, "resolve", host+"/oras/art:v1", "--plain-http")
	wantEqual(t, "copy after deleting the original", strings.TrimSpace(o("resolve", host+"/oras/copy:v1")), dg)
	o("pull", "-o", s.path("copy-out"), host+"/oras/copy:v1")
	for n, want := range files {
		if got := readFile(t, s.path("copy-out", n)); !bytes.Equal(got, want) {
			t.Fatalf("oras pull of the copy: %s differs (%d bytes, want %d)", n, len(got), len(want))
		}
	}
}

// ================================ regctl ================================

// TestRegctl drives regclient's regctl: an image built with image create /
// image mod --layer-add (a 20 MiB layer sent in 1 MiB PATCH chunks, as
// configured with registry set --blob-max/--blob-chunk), blob get, manifest
// get, image copy across repositories, a multi-arch index (index create) and
// its copy, artifact put --subject / artifact list / artifact get, image copy
// --referrers, tag ls, repo ls, tag delete and manifest delete.
func TestRegctl(t *testing.T) {
	regctl := needClient(t, "regctl")
	p := startBerth(t, t.TempDir())
	s := newClientSandbox(t, p)
	host := p.host()
	r := func(args ...string) string { t.Helper(); return s.run(regctl, args...) }

	// Plain HTTP, and chunked uploads above 4 MiB in 1 MiB chunks.
	r("registry", "set", host, "--tls", "disabled", "--blob-max", strconv.Itoa(4<<20), "--blob-chunk", strconv.Itoa(1<<20))

	big := []tarEntry{{"data/big.bin", randBytes(20, bigLayerSize)}, {"etc/regctl.txt", []byte("made by regctl\n")}}
	writeFile(t, s.path("big.tar"), tarBytes(t, big...))
	wantAll := map[string][]byte{}
	for _, e := range big {
		wantAll[e.name] = e.data
	}

	repo := host + "/rc/app"
	r("image", "create", repo+":base", "--platform", "linux/amd64")
	r("image", "mod", repo+":base", "--create", "v1", "--layer-add", "tar="+s.path("big.tar"))
	dg := strings.TrimSpace(r("image", "digest", repo+":v1"))
	if !digestRE.MatchString(dg) {
		t.Fatalf("regctl image digest: %q", dg)
	}
	// 20 MiB in 1 MiB chunks.
	wantRequests(t, p, "patch-upload", "rc/app", bigLayerSize/(1<<20), 0)

	raw := []byte(r("manifest", "get", "--format", "raw-body", repo+":v1"))
	wantEqual(t, "manifest get hash", sha256Digest(raw), dg)
	var m ociManifest
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Layers) != 1 {
		t.Fatalf("image has %d layers, want 1", len(m.Layers))
	}
	layer := []byte(r("blob", "get", repo, m.Layers[0].Digest))
	wantEqual(t, "blob get hash", sha256Digest(layer), m.Layers[0].Digest)
	wantFiles(t, "regctl blob get", wantAll, layerFiles(t, layer))

	// Copy across repositories.
	r("image", "copy", repo+":v1", host+"/rc/copy:v1")
	wantEqual(t, "copied digest", strings.TrimSpace(r("image", "digest", host+"/rc/copy:v1")), dg)
	wantRequests(t, p, "mount-blob", "rc/copy", 1, 0)
	wantFiles(t, "copied image (HTTP)", wantAll, httpImageFiles(t, p, "rc/copy", "v1"))

	// Multi-arch: an arm64 variant, an index of both, and a copy of it.
	r("image", "mod", repo+":v1", "--create", "arm64", "--config-platform", "linux/arm64")
	arm := strings.TrimSpace(r("image", "digest", repo+":arm64"))
	r("index", "create", host+"/rc/multi:v1", "--ref", repo+":v1", "--ref", repo+":arm64")
	idxDg := strings.TrimSpace(r("image", "digest", host+"/rc/multi:v1"))
	r("image", "copy", host+"/rc/multi:v1", host+"/rc/multi-copy:v1")
	idxRaw := []byte(r("manifest", "get", "--format", "raw-body", host+"/rc/multi-copy:v1"))
	wantEqual(t, "copied index hash", sha256Digest(idxRaw), idxDg)
	var idx ociIndex
	if err := json.Unmarshal(idxRaw, &idx); err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) != 2 {
		t.Fatalf("index has %d manifests, want 2", len(idx.Manifests))
	}
	wantEqual(t, "index arm64", strings.TrimSpace(r("image", "digest", "--platform", "linux/arm64", host+"/rc/multi-copy:v1")), arm)
	wantEqual(t, "index amd64", strings.TrimSpace(r("image", "digest", "--platform", "linux/amd64", host+"/rc/multi-copy:v1")), dg)

	// Referrers: an SBOM artifact whose subject is the image.
	const sbomType = "application/vnd.berth.test.sbom"
	sbomBytes := []byte(`{"sbom":"regctl","n":1}`)
	writeFile(t, s.path("sbom.json"), sbomBytes)
	r("artifact", "put", "--subject", repo+":v1", "--artifact-type", sbomType,
		"-f", s.path("sbom.json"), "-m", "application/json")
	listed := r("artifact", "list", repo+":v1", "--format", "{{range .Descriptors}}{{.Digest}} {{.ArtifactType}}\n{{end}}")
	ls := lines(listed)
	if len(ls) != 1 || !strings.HasSuffix(ls[0], " "+sbomType) {
		t.Fatalf("regctl artifact list: %q, want one %s", listed, sbomType)
	}
	sbomDg := strings.Fields(ls[0])[0]
	wantEqual(t, "artifact get", r("artifact", "get", repo+"@"+sbomDg), string(sbomBytes))
	if refs := httpReferrers(t, p, "rc/app", dg, ""); len(refs) != 1 || refs[0].Digest != sbomDg || refs[0].ArtifactType != sbomType {
		t.Fatalf("GET referrers: %+v, want %s", refs, sbomDg)
	}
	r("image", "copy", "--referrers", repo+":v1", host+"/rc/with-refs:v1")
	copied := lines(r("artifact", "list", host+"/rc/with-refs:v1", "--format", "{{range .Descriptors}}{{.Digest}}\n{{end}}"))
	wantEqual(t, "referrers after image copy --referrers", strings.Join(copied, ","), sbomDg)

	// Listings.
	wantEqual(t, "regctl tag ls", strings.Join(lines(r("tag", "ls", repo)), ","), "arm64,base,v1")
	wantContains(t, "regctl repo ls", lines(r("repo", "ls", host)), "rc/app", "rc/copy", "rc/multi", "rc/multi-copy", "rc/with-refs")

	// Deletes: a tag, then a manifest by digest.
	r("tag", "delete", repo+":base")
	wantEqual(t, "regctl tag ls after delete", strings.Join(lines(r("tag", "ls", repo)), ","), "arm64,v1")
	wantEqual(t, "v1 after deleting base", strings.TrimSpace(r("image", "digest", repo+":v1")), dg)
	r("manifest", "delete", host+"/rc/copy@"+dg)
	s.fail(regctl, "manifest", "head", host+"/rc/copy@"+dg)
	if st := httpManifestStatus(t, p, "rc/copy", "v1"); st != http.StatusNotFound {
		t.Fatalf("tag rc/copy:v1 after deleting its manifest: HEAD status %d, want 404", st)
	}
}

// ================================ skopeo ================================

// layoutChild is one platform instance of a multi-arch index.
type layoutChild struct {
	img  v1.Image
	plat v1.Platform
}

// writeLayout writes an OCI image layout holding img under the ref name
// "image" and an index of children under "multi", and returns the index
// digest. The index JSON is written by hand: go-containerregistry adds an
// artifactType to index descriptors, and skopeo 1.9 then refuses to copy the
// index with --preserve-digests (it insists on converting it).
func writeLayout(t testing.TB, dir string, img v1.Image, children []layoutChild) string {
	t.Helper()
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "image"})); err != nil {
		t.Fatal(err)
	}
	type desc struct {
		MediaType string       `json:"mediaType"`
		Digest    string       `json:"digest"`
		Size      int          `json:"size"`
		Platform  *v1.Platform `json:"platform,omitempty"`
	}
	idx := struct {
		SchemaVersion int    `json:"schemaVersion"`
		MediaType     string `json:"mediaType"`
		Manifests     []desc `json:"manifests"`
	}{SchemaVersion: 2, MediaType: string(types.OCIImageIndex)}
	for _, c := range children {
		if err := lp.WriteImage(c.img); err != nil {
			t.Fatal(err)
		}
		raw := rawManifestOf(t, c.img)
		idx.Manifests = append(idx.Manifests, desc{MediaType: string(types.OCIManifestSchema1), Digest: sha256Digest(raw), Size: len(raw), Platform: &c.plat})
	}
	raw := mustJSON(t, idx)
	h, err := v1.NewHash(sha256Digest(raw))
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.WriteBlob(h, io.NopCloser(bytes.NewReader(raw))); err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendDescriptor(v1.Descriptor{MediaType: types.OCIImageIndex, Digest: h, Size: int64(len(raw)),
		Annotations: map[string]string{"org.opencontainers.image.ref.name": "multi"}}); err != nil {
		t.Fatal(err)
	}
	return h.String()
}

// TestSkopeo drives skopeo (containers/image): copy from an OCI layout made
// here (a 20 MiB layer) to berth, inspect, copy from berth to a dir: layout
// and back to another repository, copy between repositories, copy --all of
// a multi-arch index, list-tags and delete.
func TestSkopeo(t *testing.T) {
	skopeo := needClient(t, "skopeo")
	p := startBerth(t, t.TempDir())
	s := newClientSandbox(t, p)
	host := p.host()
	policy := "--policy=" + filepath.Join(s.home, "policy.json")
	sk := func(args ...string) string { t.Helper(); return s.run(skopeo, append([]string{policy}, args...)...) }

	small := []tarEntry{{"etc/skopeo.txt", []byte("copied by skopeo\n")}}
	big := []tarEntry{{"data/big.bin", randBytes(30, bigLayerSize)}}
	wantAll := map[string][]byte{}
	for _, e := range append(slices.Clone(small), big...) {
		wantAll[e.name] = e.data
	}
	img := gzipLayerImage(t, v1.Platform{OS: "linux", Architecture: "amd64"}, tarBytes(t, small...), tarBytes(t, big...))
	imgDg := digestOf(t, img).String()
	imgRaw := rawManifestOf(t, img)
	amd := gzipLayerImage(t, v1.Platform{OS: "linux", Architecture: "amd64"}, tarBytes(t, tarEntry{"arch", []byte("amd64\n")}))
	arm := gzipLayerImage(t, v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, tarBytes(t, tarEntry{"arch", []byte("arm64\n")}))
	lay := s.path("layout")
	idxDg := writeLayout(t, lay, img, []layoutChild{
		{amd, v1.Platform{OS: "linux", Architecture: "amd64"}},
		{arm, v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}},
	})

	// Push from the OCI layout, keeping the digests.
	dst := "docker://" + host + "/skopeo/app:v1"
	sk("copy", "--preserve-digests", "--dest-tls-verify=false", "oci:"+lay+":image", dst)
	wantRequests(t, p, "patch-upload", "skopeo/app", 1, bigLayerSize)
	raw := []byte(sk("inspect", "--raw", "--tls-verify=false", dst))
	if !bytes.Equal(raw, imgRaw) {
		t.Fatalf("skopeo inspect --raw: manifest differs from the layout's\n got %s\nwant %s", raw, imgRaw)
	}
	wantEqual(t, "skopeo inspect digest", strings.TrimSpace(sk("inspect", "--tls-verify=false", "--format", "{{.Digest}}", dst)), imgDg)
	wantFiles(t, "pushed image (HTTP)", wantAll, httpImageFiles(t, p, "skopeo/app", "v1"))

	// Pull into a dir: layout; every file there is the bytes berth has.
	dir := s.path("dir")
	sk("copy", "--src-tls-verify=false", dst, "dir:"+dir)
	wantEqual(t, "dir: manifest", string(readFile(t, filepath.Join(dir, "manifest.json"))), string(imgRaw))
	got := map[string][]byte{}
	var m ociManifest
	if err := json.Unmarshal(imgRaw, &m); err != nil {
		t.Fatal(err)
	}
	for _, l := range m.Layers {
		b := readFile(t, filepath.Join(dir, strings.TrimPrefix(l.Digest, "sha256:")))
		wantEqual(t, "dir: layer hash", sha256Digest(b), l.Digest)
		maps.Copy(got, layerFiles(t, b))
	}
	wantFiles(t, "skopeo dir: copy", wantAll, got)

	// dir: back to a new repository.
	sk("copy", "--preserve-digests", "--dest-tls-verify=false", "dir:"+dir, "docker://"+host+"/skopeo/from-dir:v1")
	wantEqual(t, "from-dir digest", strings.TrimSpace(sk("inspect", "--tls-verify=false", "--format", "{{.Digest}}", "docker://"+host+"/skopeo/from-dir:v1")), imgDg)

	// Registry to registry (cross-repository blob mount).
	sk("copy", "--preserve-digests", "--src-tls-verify=false", "--dest-tls-verify=false", dst, "docker://"+host+"/skopeo/copy:v1")
	raw = []byte(sk("inspect", "--raw", "--tls-verify=false", "docker://"+host+"/skopeo/copy:v1"))
	wantEqual(t, "copied manifest hash", sha256Digest(raw), imgDg)
	wantRequests(t, p, "mount-blob", "skopeo/copy", 1, 0)

	// Multi-arch index, all instances.
	multi := "docker://" + host + "/skopeo/multi:v1"
	sk("copy", "--all", "--preserve-digests", "--dest-tls-verify=false", "oci:"+lay+":multi", multi)
	wantEqual(t, "index hash", sha256Digest([]byte(sk("inspect", "--raw", "--tls-verify=false", multi))), idxDg)
	armDg := digestOf(t, arm).String()
	// Without --all skopeo picks the instance of the platform asked for.
	armDir := s.path("arm64")
	s.run(skopeo, policy, "--override-os", "linux", "--override-arch", "arm64", "--override-variant", "v8",
		"copy", "--src-tls-verify=false", multi, "dir:"+armDir)
	wantEqual(t, "arm64 instance", sha256Digest(readFile(t, filepath.Join(armDir, "manifest.json"))), armDg)
	wantFiles(t, "arm64 instance files", map[string][]byte{"arch": []byte("arm64\n")}, httpImageFiles(t, p, "skopeo/multi", armDg))
	sk("copy", "--all", "--preserve-digests", "--src-tls-verify=false", "--dest-tls-verify=false", multi, "docker://"+host+"/skopeo/multi-copy:v1")
	wantEqual(t, "copied index hash", sha256Digest([]byte(sk("inspect", "--raw", "--tls-verify=false", "docker://"+host+"/skopeo/multi-copy:v1"))), idxDg)

	// Tags.
	sk("copy", "--preserve-digests", "--src-tls-verify=false", "--dest-tls-verify=false", dst, "docker://"+host+"/skopeo/app:v2")
	var tl struct {
		Repository string
		Tags       []string
	}
	if err := json.Unmarshal([]byte(sk("list-tags", "--tls-verify=false", "docker://"+host+"/skopeo/app")), &tl); err != nil {
		t.Fatal(err)
	}
	slices.Sort(tl.Tags)
	wantEqual(t, "skopeo list-tags", strings.Join(tl.Tags, ","), "v1,v2")

	// Delete (skopeo resolves the tag and deletes the manifest by digest).
	sk("delete", "--tls-verify=false", "docker://"+host+"/skopeo/copy:v1")
	s.fail(skopeo, policy, "inspect", "--raw", "--tls-verify=false", "docker://"+host+"/skopeo/copy:v1")
	if st := httpManifestStatus(t, p, "skopeo/copy", imgDg); st != http.StatusNotFound {
		t.Fatalf("deleted manifest: HEAD status %d, want 404", st)
	}
	// Deleting the copy left the original alone.
	wantFiles(t, "skopeo/app after deleting the copy", wantAll, httpImageFiles(t, p, "skopeo/app", "v1"))
}

// ================================ cosign ================================

// pushTestImage pushes img to berth with go-containerregistry (so that the
// cosign test does not depend on another CLI) and returns its digest.
func pushTestImage(t testing.TB, p *berthProc, ref string, img v1.Image) string {
	t.Helper()
	r, err := name.ParseReference(p.host()+"/"+ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := remote.Write(r, img, remote.WithContext(ctx)); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	return digestOf(t, img).String()
}

// TestCosign drives sigstore's cosign with a local key pair and no
// transparency log: sign (signature stored under the sha256-<hex>.sig tag),
// verify, verify with the wrong key (must fail), sign with
// --registry-referrers-mode=oci-1-1 (stored as an OCI 1.1 referrer) and
// verify through the referrers API, attest / verify-attestation, and copy
// an image with its signatures to another repository.
func TestCosign(t *testing.T) {
	cosign := needClient(t, "cosign")
	p := startBerth(t, t.TempDir())
	s := newClientSandbox(t, p)
	host := p.host()
	env := []string{"COSIGN_PASSWORD=berth-test", "COSIGN_YES=true"}
	cs := func(args ...string) string { t.Helper(); return s.runEnv(env, cosign, args...) }

	img := gzipLayerImage(t, v1.Platform{OS: "linux", Architecture: "amd64"},
		tarBytes(t, tarEntry{"etc/cosign.txt", []byte("signed by cosign\n")}, tarEntry{"data.bin", randBytes(40, 256<<10)}))
	dg := pushTestImage(t, p, "cosign/app:v1", img)
	subject := host + "/cosign/app@" + dg

	// generate-key-pair writes cosign.key and cosign.pub in its directory.
	s.in(s.path("keys")).runEnv(env, cosign, "generate-key-pair")
	s.in(s.path("keys2")).runEnv(env, cosign, "generate-key-pair")
	key, pub := s.path("keys", "cosign.key"), s.path("keys", "cosign.pub")
	otherPub := s.path("keys2", "cosign.pub")

	verifyArgs := func(pubKey string, extra ...string) []string {
		return append([]string{"verify", "--key", pubKey, "--allow-insecure-registry", "--insecure-ignore-tlog=true", "--offline"}, append(extra, subject)...)
	}

	// Sign: the signature is a manifest under the sha256-<hex>.sig tag.
	cs("sign", "--key", key, "--allow-insecure-registry", "--tlog-upload=false", subject)
	sigTag := "sha256-" + strings.TrimPrefix(dg, "sha256:") + ".sig"
	wantContains(t, "tags after cosign sign", httpTags(t, p, "cosign/app"), "v1", sigTag)
	out := cs(verifyArgs(pub)...)
	if !strings.Contains(out, dg) {
		t.Fatalf("cosign verify output does not name %s:\n%s", dg, out)
	}
	if r := s.exec(nil, env, cosign, verifyArgs(otherPub)...); r.err == nil {
		t.Fatalf("cosign verify with the wrong key succeeded:\n%s", r)
	}

	// Sign again as an OCI 1.1 referrer; with the tag-scheme signature
	// deleted, verification must find it through the referrers API.
	oci11 := append(slices.Clone(env), "COSIGN_EXPERIMENTAL=1")
	s.runEnv(oci11, cosign, "sign", "--key", key, "--allow-insecure-registry", "--tlog-upload=false", "--registry-referrers-mode=oci-1-1", subject)
	refs := httpReferrers(t, p, "cosign/app", dg, "")
	if len(refs) != 1 || refs[0].ArtifactType != "application/vnd.dev.cosign.artifact.sig.v1+json" {
		t.Fatalf("referrers after cosign sign --registry-referrers-mode=oci-1-1: %+v", refs)
	}
	resp, body := doReq(t, http.MethodDelete, p.url("/v2/cosign/app/manifests/"+sigTag), nil, nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("DELETE %s: status %d: %s", sigTag, resp.StatusCode, body)
	}
	s.runEnv(oci11, cosign, verifyArgs(pub, "--experimental-oci11")...)
	if r := s.exec(nil, oci11, cosign, verifyArgs(otherPub, "--experimental-oci11")...); r.err == nil {
		t.Fatalf("cosign verify --experimental-oci11 with the wrong key succeeded:\n%s", r)
	}

	// Attestation under the .att tag.
	writeFile(t, s.path("predicate.json"), []byte(`{"builder":"berth e2e"}`))
	cs("attest", "--key", key, "--allow-insecure-registry", "--tlog-upload=false", "--type", "custom", "--predicate", s.path("predicate.json"), subject)
	wantContains(t, "tags after cosign attest", httpTags(t, p, "cosign/app"), "sha256-"+strings.TrimPrefix(dg, "sha256:")+".att")
	cs("verify-attestation", "--key", pub, "--allow-insecure-registry", "--insecure-ignore-tlog=true", "--offline", "--type", "custom", subject)

	// Sign by tag scheme again and copy the image with its signature and
	// attestation to another repository, then verify there.
	cs("sign", "--key", key, "--allow-insecure-registry", "--tlog-upload=false", subject)
	cs("copy", "--allow-insecure-registry", host+"/cosign/app:v1", host+"/cosign/copy:v1")
	copySubject := host + "/cosign/copy@" + dg
	wantContains(t, "tags after cosign copy", httpTags(t, p, "cosign/copy"), "v1", sigTag)
	cs("verify", "--key", pub, "--allow-insecure-registry", "--insecure-ignore-tlog=true", "--offline", copySubject)
}

// ================================ podman ================================

// TestPodman drives podman without a daemon, as root, with vfs storage in a
// temporary directory: build FROM scratch (a 20 MiB file), push, pull back
// and compare, push to another repository, search --list-tags, and a
// multi-arch manifest list pushed with manifest push --all.
func TestPodman(t *testing.T) {
	podman := needClient(t, "podman")
	p := startBerth(t, t.TempDir())
	s := newClientSandbox(t, p)
	host := p.host()

	// Storage and engine settings in the sandbox, not in /etc or /var.
	store := s.path("storage")
	writeFile(t, filepath.Join(s.home, "storage.conf"), fmt.Appendf(nil,
		"[storage]\ndriver = \"vfs\"\ngraphroot = %q\nrunroot = %q\n", filepath.Join(store, "graph"), filepath.Join(store, "run")))
	writeFile(t, filepath.Join(s.home, "containers.conf"), fmt.Appendf(nil,
		"[engine]\nevents_logger = \"none\"\ncgroup_manager = \"cgroupfs\"\nimage_copy_tmp_dir = %q\n", filepath.Join(s.home, "tmp")))
	s.env = append(s.env,
		"CONTAINERS_STORAGE_CONF="+filepath.Join(s.home, "storage.conf"),
		"CONTAINERS_CONF="+filepath.Join(s.home, "containers.conf"),
		"TMPDIR="+filepath.Join(s.home, "tmp"),
	)
	// vfs layers are plain directories: the temporary directory's cleanup
	// removes them.
	pm := func(args ...string) string { t.Helper(); return s.run(podman, args...) }

	wantAll := map[string][]byte{
		"data/big.bin":   randBytes(50, bigLayerSize),
		"etc/podman.txt": []byte("built by podman\n"),
	}
	ctxDir := s.path("ctx")
	writeFile(t, filepath.Join(ctxDir, "big.bin"), wantAll["data/big.bin"])
	writeFile(t, filepath.Join(ctxDir, "podman.txt"), wantAll["etc/podman.txt"])
	writeFile(t, filepath.Join(ctxDir, "Containerfile"), []byte("FROM scratch\nCOPY big.bin /data/big.bin\nCOPY podman.txt /etc/podman.txt\n"))

	ref := host + "/podman/app:v1"
	pm("build", "--format", "oci", "--platform", "linux/amd64", "-t", ref, ctxDir)
	digestFile := s.path("digest")
	pm("push", "--tls-verify=false", "--digestfile", digestFile, ref)
	dg := strings.TrimSpace(string(readFile(t, digestFile)))
	wantRequests(t, p, "patch-upload", "podman/app", 1, bigLayerSize)
	raw, _ := httpManifest(t, p, "podman/app", "v1")
	wantEqual(t, "pushed manifest hash", sha256Digest(raw), dg)
	wantFiles(t, "pushed image (HTTP)", wantAll, httpImageFiles(t, p, "podman/app", "v1"))

	// Pull back into empty storage.
	pm("rmi", "--all", "--force")
	pm("pull", "--tls-verify=false", ref)
	wantEqual(t, "pulled digest", strings.TrimSpace(pm("image", "inspect", "--format", "{{.Digest}}", ref)), dg)
	out := s.path("out")
	pm("save", "--format", "oci-dir", "-o", out, ref)
	var idx ociIndex
	if err := json.Unmarshal(readFile(t, filepath.Join(out, "index.json")), &idx); err != nil || len(idx.Manifests) != 1 {
		t.Fatalf("podman save index.json: %v %+v", err, idx)
	}
	var m ociManifest
	if err := json.Unmarshal(readFile(t, filepath.Join(out, "blobs", "sha256", strings.TrimPrefix(idx.Manifests[0].Digest, "sha256:"))), &m); err != nil {
		t.Fatal(err)
	}
	got := map[string][]byte{}
	for _, l := range m.Layers {
		maps.Copy(got, layerFiles(t, readFile(t, filepath.Join(out, "blobs", "sha256", strings.TrimPrefix(l.Digest, "sha256:")))))
	}
	wantFiles(t, "pulled and saved image", wantAll, got)

	// Push to another repository.
	pm("tag", ref, host+"/podman/copy:v1")
	pm("push", "--tls-verify=false", host+"/podman/copy:v1")
	wantRequests(t, p, "mount-blob", "podman/copy", 1, 0)
	wantFiles(t, "copied image (HTTP)", wantAll, httpImageFiles(t, p, "podman/copy", "v1"))
	pm("tag", ref, host+"/podman/app:v2")
	pm("push", "--tls-verify=false", host+"/podman/app:v2")
	// podman 4.3 ignores --format with --list-tags: "NAME TAG" table.
	var tags []string
	for _, l := range lines(pm("search", "--list-tags", "--tls-verify=false", host+"/podman/app")) {
		if f := strings.Fields(l); len(f) == 2 && f[0] == host+"/podman/app" {
			tags = append(tags, f[1])
		}
	}
	slices.Sort(tags)
	wantEqual(t, "podman search --list-tags", strings.Join(tags, ","), "v1,v2")

	// Multi-arch: FROM scratch builds need no emulation.
	writeFile(t, filepath.Join(ctxDir, "Containerfile.small"), []byte("FROM scratch\nCOPY podman.txt /etc/podman.txt\n"))
	for _, arch := range []string{"amd64", "arm64"} {
		// --no-cache: buildah 1.28 would reuse the first build for the
		// second platform.
		pm("build", "--no-cache", "--format", "oci", "--platform", "linux/"+arch, "-f", filepath.Join(ctxDir, "Containerfile.small"), "-t", "localhost/small:"+arch, ctxDir)
	}
	pm("manifest", "create", "localhost/multi:v1")
	pm("manifest", "add", "localhost/multi:v1", "containers-storage:localhost/small:amd64")
	pm("manifest", "add", "localhost/multi:v1", "containers-storage:localhost/small:arm64")
	pm("manifest", "push", "--all", "--tls-verify=false", "localhost/multi:v1", "docker://"+host+"/podman/multi:v1")
	raw, _ = httpManifest(t, p, "podman/multi", "v1")
	var list struct {
		Manifests []struct {
			Digest   string `json:"digest"`
			Platform struct {
				OS           string `json:"os"`
				Architecture string `json:"architecture"`
			} `json:"platform"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		t.Fatal(err)
	}
	var archs []string
	for _, d := range list.Manifests {
		wantFiles(t, "manifest list entry "+d.Platform.Architecture, map[string][]byte{"etc/podman.txt": wantAll["etc/podman.txt"]},
			httpImageFiles(t, p, "podman/multi", d.Digest))
		archs = append(archs, d.Platform.OS+"/"+d.Platform.Architecture)
	}
	slices.Sort(archs)
	wantEqual(t, "manifest list platforms", strings.Join(archs, ","), "linux/amd64,linux/arm64")
}

// TestClientsSeeDeniedPush: a push the policies deny reaches every client
// through the token flow as 403 DENIED with the policies' wording, never as
// UNAUTHORIZED (which sends people debugging their credentials).
func TestClientsSeeDeniedPush(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	p := startBerthWith(t, t.TempDir(), fmt.Sprintf(`
[auth.identity.alice]
username = "alice"
password = %q
[global.access_policy]
rules = ['identity.id != "anonymous" && (request.action == "pull" || request.repository.startsWith("dev/"))']
`, string(hash)))
	host := p.host()
	const reason = "alice may not push prod/app"
	img := gzipLayerImage(t, v1.Platform{OS: "linux", Architecture: "amd64"}, tarBytes(t, tarEntry{name: "hello.txt", data: []byte("hello\n")}))
	ref, err := name.ParseReference(host+"/dev/src:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "alice", Password: "secret"})); err != nil {
		t.Fatalf("push dev/src: %v", err)
	}
	wantDenied := func(t *testing.T, what, out string) {
		t.Helper()
		if !strings.Contains(out, "DENIED") && !strings.Contains(out, "denied") && !strings.Contains(out, "403") {
			t.Errorf("%s: output lacks DENIED/403:\n%s", what, out)
		}
		if !strings.Contains(out, reason) {
			t.Errorf("%s: output lacks the reason %q:\n%s", what, reason, out)
		}
		if strings.Contains(out, "UNAUTHORIZED") || strings.Contains(out, "insufficient_scope") {
			t.Errorf("%s: the refusal reads as a credential problem:\n%s", what, out)
		}
	}

	t.Run("crane", func(t *testing.T) {
		crane := needClient(t, "crane")
		s := newClientSandbox(t, p)
		s.run(crane, "auth", "login", host, "-u", "alice", "-p", "secret")
		r := s.fail(crane, "copy", "--insecure", host+"/dev/src:v1", host+"/prod/app:v1")
		wantDenied(t, "crane copy", r.stderr)
	})
	t.Run("oras", func(t *testing.T) {
		oras := needClient(t, "oras")
		s := newClientSandbox(t, p)
		s.run(oras, "login", host, "-u", "alice", "-p", "secret", "--plain-http")
		writeFile(t, s.path("a.txt"), []byte("artifact\n"))
		r := s.fail(oras, "push", host+"/prod/app:v1", "a.txt", "--plain-http")
		wantDenied(t, "oras push", r.stderr)
	})
	t.Run("regctl", func(t *testing.T) {
		regctl := needClient(t, "regctl")
		s := newClientSandbox(t, p)
		// Its ping fails (401, not logged in yet); the setting is kept.
		s.exec(nil, nil, regctl, "registry", "set", host, "--tls", "disabled")
		s.run(regctl, "registry", "login", host, "-u", "alice", "-p", "secret")
		r := s.fail(regctl, "image", "copy", host+"/dev/src:v1", host+"/prod/app:v1")
		wantDenied(t, "regctl image copy", r.stderr)
	})
	// The docker token flow, as the docker daemon runs it: challenge, token
	// with Basic for the challenge's scope, retry with the token.
	t.Run("docker token flow", func(t *testing.T) {
		resp, body := doReq(t, http.MethodPost, p.url("/v2/prod/app/blobs/uploads/"), nil, nil)
		wantStatus(t, "anonymous push", resp, body, http.StatusUnauthorized)
		ch := resp.Header.Get("WWW-Authenticate")
		params := map[string]string{}
		for _, kv := range regexp.MustCompile(`(\w+)="([^"]*)"`).FindAllStringSubmatch(ch, -1) {
			params[kv[1]] = kv[2]
		}
		q := url.Values{"service": {params["service"]}, "scope": {params["scope"]}}
		req, _ := http.NewRequest(http.MethodGet, params["realm"]+"?"+q.Encode(), nil)
		req.SetBasicAuth("alice", "secret")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var tr struct{ Token string }
		if err := json.NewDecoder(res.Body).Decode(&tr); err != nil || res.StatusCode != 200 || tr.Token == "" {
			t.Fatalf("token for %q: %d %v", params["scope"], res.StatusCode, err)
		}
		bearer := map[string]string{"Authorization": "Bearer " + tr.Token}
		resp, body = doReq(t, http.MethodPost, p.url("/v2/prod/app/blobs/uploads/"), nil, bearer)
		wantStatus(t, "push with the token", resp, body, http.StatusForbidden)
		wantDenied(t, "docker token flow", string(body))
		// What the token was never asked for still sends the client back for a wider one.
		resp, body = doReq(t, http.MethodDelete, p.url("/v2/prod/app/manifests/v1"), nil, bearer)
		wantStatus(t, "delete, never asked for", resp, body, http.StatusUnauthorized)
		if !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
			t.Errorf("challenge %q, want insufficient_scope", resp.Header.Get("WWW-Authenticate"))
		}
	})
}
