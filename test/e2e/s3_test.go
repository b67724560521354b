package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-registry/berth/internal/s3test"
	"github.com/berth-registry/berth/internal/testutil"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// The S3 tests run berth against versitygw (posix backend, 127.0.0.1) started
// by internal/s3test, like internal/storage/s3. Without the binary they skip,
// unless BERTH_REQUIRE_S3=1.

const (
	e2eS3Access = s3test.AccessKey
	e2eS3Secret = s3test.SecretKey
	e2eS3Bucket = s3test.Bucket
)

// startVersitygw starts a versitygw of the test's own with a bucket
// e2eS3Bucket, and kills it when the test ends. It returns the endpoint and
// the posix backend's directory.
func startVersitygw(t testing.TB) (endpoint, dir string) {
	t.Helper()
	bin := s3test.Find()
	if bin == "" {
		msg := "versitygw not found on PATH or in $GOPATH/bin (scripts/install-test-s3.sh installs it)"
		if os.Getenv("BERTH_REQUIRE_S3") == "1" {
			t.Fatalf("BERTH_REQUIRE_S3=1: %s", msg)
		}
		t.Skip(msg)
	}
	srv, err := s3test.Launch(bin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	return srv.Endpoint, srv.Dir
}

// s3Config is a complete berth configuration on S3: startBerthWith's config
// always has [blob_store.fs], which cannot be combined with [blob_store.s3].
func s3Config(port int, endpoint, prefix string) string {
	return fmt.Sprintf(`[server]
bind_address = "127.0.0.1"
port = %d

[blob_store.s3]
endpoint = %q
bucket = %q
region = "us-east-1"
key_prefix = %q
access_key_id = %q
secret_key = %q
multipart_part_size = "5MiB"
path_style = true

[log]
level = "debug"
format = "text"
`, port, endpoint, e2eS3Bucket, prefix, e2eS3Access, e2eS3Secret)
}

// startBerthS3 starts berth with cfg in workDir (where the default
// blob_store.fs.root_dir, ./berth-data, resolves) and waits until it is
// ready. It reuses berthProc's readiness, stop and log helpers.
func startBerthS3(t testing.TB, workDir string, cfg func(port int) string) *berthProc {
	t.Helper()
	port := testutil.FreePort(t)
	p := &berthProc{t: t, dataDir: workDir, stderr: &testutil.Buffer{}}
	p.cfgPath = filepath.Join(workDir, "berth.toml")
	if err := os.WriteFile(p.cfgPath, []byte(cfg(port)), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(berthBin, "serve", "-c", p.cfgPath)
	cmd.Dir = workDir
	cmd.Stdout, cmd.Stderr = p.stderr, p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start berth: %v", err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(done) }()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.waitErrFn = func() error { <-done; return waitErr }
	p.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	p.starts = 1
	p.mu.Unlock()
	t.Cleanup(func() {
		if p.running() {
			p.stop()
		}
		if t.Failed() {
			t.Logf("berth output (last 60 lines):\n%s", p.stderr.Tail(60))
		}
	})
	p.waitReady()
	return p
}

// TestS3 runs berth on [blob_store.s3] and drives it with
// go-containerregistry: push and pull an image and a multi-arch index, list
// tags and the catalog, delete by digest.
func TestS3(t *testing.T) {
	endpoint, vdir := startVersitygw(t)
	prefix := fmt.Sprintf("e2e-%d", time.Now().UnixNano())
	work := t.TempDir()

	// config check accepts the file and never prints the secret.
	cfgFile := filepath.Join(work, "check.toml")
	writeFile(t, cfgFile, []byte(s3Config(5000, endpoint, prefix)))
	out, err := exec.Command(berthBin, "config", "check", "-c", cfgFile).CombinedOutput()
	// Warnings (open registry, S3 without Redis) come before the verdict.
	if lines := strings.Split(strings.TrimSpace(string(out)), "\n"); err != nil || lines[len(lines)-1] != "config OK" {
		t.Fatalf("config check: %v\n%s", err, out)
	}
	if strings.Contains(string(out), e2eS3Secret) {
		t.Fatalf("config check printed the secret:\n%s", out)
	}
	bad := filepath.Join(work, "bad.toml")
	writeFile(t, bad, []byte("[blob_store.fs]\nroot_dir = \"x\"\n[blob_store.s3]\nendpoint = \"nope\"\naccess_key_id = \"\"\nsecret_key = \""+e2eS3Secret+"\"\n"))
	out, err = exec.Command(berthBin, "config", "check", "-c", bad).CombinedOutput()
	if err == nil {
		t.Fatalf("config check accepted fs+s3:\n%s", out)
	}
	for _, want := range []string{"choose one", "blob_store.s3.bucket", "blob_store.s3.endpoint", "blob_store.s3.access_key_id"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("config check output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), e2eS3Secret) {
		t.Fatalf("config check printed the secret key:\n%s", out)
	}

	p := startBerthS3(t, work, func(port int) string { return s3Config(port, endpoint, prefix) })
	ctx := t.Context()
	opts := ggcrOpts(ctx)
	reg := p.host()

	// An image by tag.
	img, err := random.Image(3<<20, 3)
	if err != nil {
		t.Fatal(err)
	}
	imgRef := mustRef(t, reg+"/s3/app:v1")
	if err := remote.Write(imgRef, img, opts...); err != nil {
		t.Fatalf("push image: %v", err)
	}
	got, err := remote.Image(imgRef, opts...)
	if err != nil {
		t.Fatalf("pull image: %v", err)
	}
	compareImages(t, "image", img, got)

	// A multi-arch index.
	idx, imgs := platformIndex(t, testPlatforms)
	idxRef := mustRef(t, reg+"/s3/multi:latest")
	if err := remote.WriteIndex(idxRef, idx, opts...); err != nil {
		t.Fatalf("push index: %v", err)
	}
	gotIdx, err := remote.Index(idxRef, opts...)
	if err != nil {
		t.Fatalf("pull index: %v", err)
	}
	if w, g := digestOf(t, idx), digestOf(t, gotIdx); w != g {
		t.Fatalf("index digest %s, want %s", g, w)
	}
	for i, want := range imgs {
		child, err := gotIdx.Image(digestOf(t, want))
		if err != nil {
			t.Fatalf("pull child %d: %v", i, err)
		}
		compareImages(t, fmt.Sprintf("child %d (%s)", i, testPlatforms[i].Architecture), want, child)
	}

	// Tags and catalog.
	if err := remote.Write(mustRef(t, reg+"/s3/app:v2"), img, opts...); err != nil {
		t.Fatalf("push tag v2: %v", err)
	}
	tags, err := remote.List(mustRepo(t, reg+"/s3/app"), opts...)
	if err != nil || !slices.Equal(tags, []string{"v1", "v2"}) {
		t.Fatalf("tags = %v, %v; want [v1 v2]", tags, err)
	}
	registry, err := name.NewRegistry(reg, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	repos, err := remote.Catalog(ctx, registry, opts...)
	if err != nil || !slices.Equal(repos, []string{"s3/app", "s3/multi"}) {
		t.Fatalf("catalog = %v, %v; want [s3/app s3/multi]", repos, err)
	}

	// Delete by digest: both tags go with the manifest.
	dig := mustRef(t, reg+"/s3/app@"+digestOf(t, img).String())
	if err := remote.Delete(dig, opts...); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := remote.Head(dig, opts...); !is404(err) {
		t.Fatalf("HEAD after delete: %v, want 404", err)
	}
	if _, err := remote.Head(imgRef, opts...); !is404(err) {
		t.Fatalf("HEAD tag after delete: %v, want 404", err)
	}
	if _, err := remote.Head(idxRef, opts...); err != nil {
		t.Fatalf("the index must survive: %v", err)
	}

	// The data is in the bucket, under the prefix, not on local disk.
	if entries, err := os.ReadDir(filepath.Join(vdir, e2eS3Bucket, prefix)); err != nil || len(entries) == 0 {
		t.Errorf("nothing under the key prefix in the bucket: %v", err)
	}
	if n := countFiles(t, filepath.Join(work, "berth-data")); n != 0 {
		t.Errorf("%d files under the local root_dir with S3 storage", n)
	}

	p.stop()
	logs := p.stderr.Tail(1 << 20)
	if !strings.Contains(logs, "driver=s3") || !strings.Contains(logs, "bucket="+e2eS3Bucket) {
		t.Errorf("startup log lacks driver=s3 and the bucket:\n%s", tailString(logs, 2000))
	}
	if strings.Contains(logs, e2eS3Secret) {
		t.Fatalf("berth logged the secret key")
	}
}

func countFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			n++
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return n
}

// TestS3ObjectStoreDown: berth on versitygw behind a TCP proxy the test
// closes (as if the object store stopped), then reopens. While it is down,
// /readyz says so and every endpoint that touches storage — the UI too —
// answers 503 UNAVAILABLE with Retry-After, never 500; afterwards the same
// replica serves again without a restart.
func TestS3ObjectStoreDown(t *testing.T) {
	endpoint, _ := startVersitygw(t)
	px := startProxy(t, strings.TrimPrefix(endpoint, "http://"))
	prefix := fmt.Sprintf("down-%d", time.Now().UnixNano())
	p := startBerthS3(t, t.TempDir(), func(port int) string {
		return s3Config(port, "http://"+px.addr, prefix) + "\n[ui]\nenabled = true\n"
	})

	const repo = "down/app"
	config := []byte(`{"architecture":"amd64","os":"linux"}`)
	layer := []byte("layer bytes of down/app")
	cd, ld := pushBlob(t, p, repo, config), pushBlob(t, p, repo, layer)
	man := mustJSON(t, map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": len(config)},
		"layers": []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld, "size": len(layer)}},
	})
	putManifest(t, p, repo, "v1", "application/vnd.oci.image.manifest.v1+json", man)
	md := sha256Digest(man)
	resp, body := doReq(t, "POST", p.url("/v2/"+repo+"/blobs/uploads/"), nil, nil)
	wantStatus(t, "start upload", resp, body, http.StatusAccepted)
	upload := p.resolve(t, resp.Header.Get("Location")).String()
	sep := "?"
	if strings.Contains(upload, "?") {
		sep = "&"
	}

	px.down()
	resp, body = doReq(t, "GET", p.url("/readyz"), nil, nil)
	wantStatus(t, "/readyz with the object store down", resp, body, http.StatusServiceUnavailable)

	octet := map[string]string{"Content-Type": "application/octet-stream"}
	v2 := func(path string) string { return p.url("/v2/" + repo + path) }
	for _, rq := range []struct {
		method, url string
		body        []byte
		hdr         map[string]string
	}{
		{"GET", v2("/manifests/v1"), nil, nil},
		{"HEAD", v2("/manifests/v1"), nil, nil},
		{"GET", v2("/manifests/" + md), nil, nil},
		{"PUT", v2("/manifests/v2"), man, map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json"}},
		{"DELETE", v2("/manifests/" + md), nil, nil},
		{"GET", v2("/blobs/" + ld), nil, nil},
		{"HEAD", v2("/blobs/" + ld), nil, nil},
		{"POST", v2("/blobs/uploads/"), nil, nil},
		{"POST", v2("/blobs/uploads/?digest=" + sha256Digest([]byte("x"))), []byte("x"), octet},
		{"PATCH", upload, []byte("chunk"), octet},
		{"PUT", upload + sep + "digest=" + sha256Digest([]byte("chunk")), []byte("chunk"), octet},
		{"GET", v2("/tags/list"), nil, nil},
		{"GET", p.url("/v2/_catalog"), nil, nil},
		{"GET", v2("/referrers/" + md), nil, nil},
	} {
		var r io.Reader
		if rq.body != nil {
			r = bytes.NewReader(rq.body)
		}
		what := rq.method + " " + rq.url + " with the object store down"
		resp, body := doReq(t, rq.method, rq.url, r, rq.hdr)
		wantStatus(t, what, resp, body, http.StatusServiceUnavailable)
		if resp.Header.Get("Retry-After") == "" {
			t.Errorf("%s: no Retry-After", what)
		}
		if rq.method != "HEAD" && !strings.Contains(string(body), `"UNAVAILABLE"`) {
			t.Errorf("%s: body %s, want code UNAVAILABLE", what, body)
		}
	}
	for _, path := range []string{"/", "/r/" + repo, "/r/" + repo + "/-/manifest/v1"} {
		resp, body := doReq(t, "GET", p.url(path), nil, nil)
		wantStatus(t, "UI "+path+" with the object store down", resp, body, http.StatusServiceUnavailable)
		if resp.Header.Get("Retry-After") == "" {
			t.Errorf("UI %s: no Retry-After", path)
		}
	}

	// Back up: the same process serves again.
	px.up()
	p.waitReady()
	resp, body = doReq(t, "GET", v2("/manifests/v1"), nil, nil)
	wantStatus(t, "GET manifest after the object store is back", resp, body, http.StatusOK)
	resp, body = doReq(t, "PATCH", upload, bytes.NewReader([]byte("chunk")), octet)
	wantStatus(t, "PATCH after the object store is back", resp, body, http.StatusAccepted)
	if logs := p.stderr.Tail(1 << 20); strings.Contains(logs, "internal error") {
		t.Errorf("berth logged an internal error during the outage")
	}
}

// tcpProxy forwards 127.0.0.1:<port> to a target; down closes the listener
// and every open connection (connects are refused), up listens again on the
// same address.
type tcpProxy struct {
	t      *testing.T
	addr   string
	target string
	mu     sync.Mutex
	l      net.Listener
	conns  map[net.Conn]struct{}
}

func startProxy(t *testing.T, target string) *tcpProxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	px := &tcpProxy{t: t, addr: l.Addr().String(), target: target, conns: map[net.Conn]struct{}{}}
	px.serve(l)
	t.Cleanup(px.down)
	return px
}

func (px *tcpProxy) serve(l net.Listener) {
	px.mu.Lock()
	px.l = l
	px.mu.Unlock()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go px.forward(c)
		}
	}()
}

func (px *tcpProxy) track(cs ...net.Conn) bool {
	px.mu.Lock()
	defer px.mu.Unlock()
	if px.l == nil {
		return false
	}
	for _, c := range cs {
		px.conns[c] = struct{}{}
	}
	return true
}

func (px *tcpProxy) forward(c net.Conn) {
	u, err := net.Dial("tcp", px.target)
	if err != nil {
		c.Close()
		return
	}
	if !px.track(c, u) {
		c.Close()
		u.Close()
		return
	}
	go func() { _, _ = io.Copy(u, c); u.Close() }()
	_, _ = io.Copy(c, u)
	c.Close()
}

func (px *tcpProxy) down() {
	px.mu.Lock()
	defer px.mu.Unlock()
	if px.l != nil {
		px.l.Close()
		px.l = nil
	}
	for c := range px.conns {
		c.Close()
	}
	clear(px.conns)
}

func (px *tcpProxy) up() {
	l, err := net.Listen("tcp", px.addr)
	if err != nil {
		px.t.Fatalf("proxy: listen again on %s: %v", px.addr, err)
	}
	px.serve(l)
}
