// Package e2e runs the real berth binary and drives it with real registry
// clients (go-containerregistry, oras-go) and hand-written HTTP clients.
//
// TestMain builds ./cmd/berth once with -tags berthtest (or uses the binary
// named by BERTH_E2E_BIN, which must be built with that tag too); every test
// starts its own server on a free port with its own data directory. The tag
// adds one test hook: berth gc honours BERTH_TEST_GC_CLOCK_OFFSET.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berth-registry/berth/internal/s3test"
	"github.com/berth-registry/berth/internal/testutil"
)

// berthBin is the binary built by TestMain.
var berthBin string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	// BERTH_E2E_BIN runs the tests against an already built binary.
	defer s3test.Stop()
	defer removeReleaseBuild()
	if bin := os.Getenv("BERTH_E2E_BIN"); bin != "" {
		berthBin = bin
		return m.Run()
	}
	// The tests live in their own module (test/go.mod) that replaces the
	// product module with the checkout's root: build the binary there, with
	// the product module's own requirements, not the test module's.
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/berth-registry/berth").Output()
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go list -m github.com/berth-registry/berth: %v\n", err)
		return 1
	}
	root := strings.TrimSpace(string(out))
	if root == "" {
		fmt.Fprintln(os.Stderr, "e2e: the product module has no directory (is the replace in test/go.mod missing?)")
		return 1
	}
	dir, err := os.MkdirTemp("", "berth-e2e-bin-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	berthBin = filepath.Join(dir, "berth")
	build := exec.Command("go", "build", "-tags", "berthtest", "-o", berthBin, "./cmd/berth")
	build.Dir = root
	build.Stdout = os.Stderr
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: building ./cmd/berth: %v\n", err)
		return 1
	}
	return m.Run()
}

// berthProc is one running (or stopped) berth process and its data directory.
type berthProc struct {
	t       testing.TB
	dataDir string
	cfgPath string
	extra   string // appended to the generated config
	// serverExtra is added to the generated [server] table.
	serverExtra string

	mu        sync.Mutex
	cmd       *exec.Cmd
	done      chan struct{} // closed when the process has exited
	waitErrFn func() error  // the exit status of the last launch (blocks until exit)
	stderr    *testutil.Buffer
	addr      string // host:port of the running process
	starts    int
}

// startBerth writes a config for dataDir, starts berth and waits until it is
// ready. The process is stopped with SIGTERM when the test ends.
func startBerth(t testing.TB, dataDir string) *berthProc {
	t.Helper()
	return startBerthWith(t, dataDir, "")
}

// startBerthWith is startBerth with extra TOML appended to the config.
func startBerthWith(t testing.TB, dataDir, extra string) *berthProc {
	t.Helper()
	return startBerthServer(t, dataDir, "", extra)
}

// startBerthServer is startBerthWith with keys added to the [server] table.
func startBerthServer(t testing.TB, dataDir, serverExtra, extra string) *berthProc {
	t.Helper()
	p := &berthProc{t: t, dataDir: dataDir, extra: extra, serverExtra: serverExtra, stderr: &testutil.Buffer{}}
	p.cfgPath = filepath.Join(t.TempDir(), "berth.toml")
	t.Cleanup(func() {
		if p.running() {
			p.stop()
		}
		if t.Failed() {
			t.Logf("berth stderr (all runs, last 60 lines):\n%s", p.stderr.Tail(60))
		}
	})
	p.start(0)
	return p
}

func (p *berthProc) writeConfig(port int) {
	store := fmt.Sprintf("[blob_store.fs]\nroot_dir = %q\n", p.dataDir)
	if s3test.OnS3() {
		// BERTH_TEST_STORE=s3: the same data directory is the same key
		// prefix in the shared versitygw bucket, so restarts keep the data.
		store = s3test.Shared(p.t).Config(p.s3Prefix())
	}
	cfg := fmt.Sprintf(`[server]
bind_address = "127.0.0.1"
port = %d
%s
%s
[log]
level = "info"
format = "text"
`, port, p.serverExtra, store) + p.extra
	if err := os.WriteFile(p.cfgPath, []byte(cfg), 0o600); err != nil {
		p.t.Fatalf("write config: %v", err)
	}
}

// s3Prefix is the key prefix of p's data under BERTH_TEST_STORE=s3: the
// same data directory is the same prefix, so restarts keep the data.
func (p *berthProc) s3Prefix() string {
	sum := sha256.Sum256([]byte(p.dataDir))
	return "e2e-" + hex.EncodeToString(sum[:8])
}

// blobDir is the directory p's blob contents are files in: <data>/blobs on
// the filesystem backend; under BERTH_TEST_STORE=s3, the objects'
// directory in versitygw's posix backend.
func (p *berthProc) blobDir() string {
	if s3test.OnS3() {
		return filepath.Join(s3test.Shared(p.t).Dir, s3test.Bucket, p.s3Prefix(), "blobs")
	}
	return filepath.Join(p.dataDir, "blobs")
}

var listenRE = regexp.MustCompile(`addr="?([0-9A-Za-z.\-:\[\]]+:[0-9]+)"?`)

// start launches the process on port (0: any free port; then an explicit
// free port if the binary does not report the address it got) and waits for
// GET /readyz.
func (p *berthProc) start(port int) {
	p.t.Helper()
	if err := p.launch(port); err != nil {
		if port != 0 {
			p.t.Fatalf("start berth on port %d: %v\nstderr:\n%s", port, err, p.stderr.Tail(40))
		}
		p.t.Logf("start with port 0 failed (%v); retrying with an explicit free port", err)
		port = testutil.FreePort(p.t)
		if err := p.launch(port); err != nil {
			p.t.Fatalf("start berth: %v\nstderr:\n%s", err, p.stderr.Tail(40))
		}
	}
	p.waitReady()
}

func (p *berthProc) launch(port int) error {
	p.writeConfig(port)
	p.starts++
	fmt.Fprintf(p.stderr, "----- berth start #%d (port %d) -----\n", p.starts, port)
	cmd := exec.Command(berthBin, "serve", "-c", p.cfgPath)
	// Relative defaults (on S3, the token service's ./berth-data/_auth)
	// resolve in the test's own directory, never in the source tree.
	if err := os.MkdirAll(p.dataDir, 0o755); err != nil {
		return err
	}
	cmd.Dir = p.dataDir
	cmd.Stdout = p.stderr
	pipe, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	addrCh := make(chan string, 1)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(pipe)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(p.stderr, line)
			if !sent && strings.Contains(line, "listening") {
				if m := listenRE.FindStringSubmatch(line); m != nil {
					addrCh <- m[1]
					sent = true
				}
			}
		}
		_, _ = io.Copy(io.Discard, pipe)
	}()
	var waitErr error
	go func() {
		<-readDone // Wait closes the pipe: read it to the end first.
		waitErr = cmd.Wait()
		close(done)
	}()
	getErr := func() error { <-done; return waitErr }
	p.mu.Lock()
	p.cmd, p.done, p.waitErrFn = cmd, done, getErr
	p.mu.Unlock()

	timer := time.NewTimer(20 * time.Second)
	defer timer.Stop()
	select {
	case a := <-addrCh:
		host, prt, err := net.SplitHostPort(a)
		if err != nil {
			return fmt.Errorf("bad listening addr %q: %v", a, err)
		}
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "127.0.0.1"
		}
		if port != 0 && prt != strconv.Itoa(port) {
			return fmt.Errorf("listening on %s, configured port %d", a, port)
		}
		p.mu.Lock()
		p.addr = net.JoinHostPort(host, prt)
		p.mu.Unlock()
		return nil
	case <-done:
		return fmt.Errorf("berth exited before listening: %v", getErr())
	case <-timer.C:
		if port != 0 {
			// No parsable log line: trust the configured port.
			p.mu.Lock()
			p.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
			p.mu.Unlock()
			return nil
		}
		_ = cmd.Process.Kill()
		<-done
		return errors.New("no msg=listening addr=... line on stderr within 20s")
	}
}

func (p *berthProc) waitReady() {
	p.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.url("/readyz"), nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		cancel()
		if err == nil && resp.StatusCode == http.StatusOK {
			return
		}
		select {
		case <-p.done:
			p.t.Fatalf("berth exited while waiting for /readyz\nstderr:\n%s", p.stderr.Tail(40))
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("GET /readyz not 200 within 20s (last: err=%v)\nstderr:\n%s", err, p.stderr.Tail(40))
		}
		time.Sleep(25 * time.Millisecond) // polling interval
	}
}

func (p *berthProc) running() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (p *berthProc) stop() {
	p.t.Helper()
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		p.t.Errorf("berth did not exit within 30s of SIGTERM")
		return
	}
	p.mu.Lock()
	waitErr := p.waitErrFn
	p.mu.Unlock()
	if err := waitErr(); err != nil {
		p.t.Errorf("berth exited with %v after SIGTERM (want exit status 0)\nstderr:\n%s", err, p.stderr.Tail(20))
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *berthProc) kill() {
	p.t.Helper()
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
	fmt.Fprintln(p.stderr, "----- SIGKILL -----")
}

// restart stops the process if it still runs (SIGTERM) and starts it again
// on the same data directory and the same port, so that upload Locations
// handed out before stay usable.
func (p *berthProc) restart() {
	p.t.Helper()
	if p.running() {
		p.stop()
	}
	_, port, err := net.SplitHostPort(p.host())
	if err != nil {
		p.t.Fatalf("restart: %v", err)
	}
	n, _ := strconv.Atoi(port)
	p.start(n)
}

func (p *berthProc) host() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addr
}

func (p *berthProc) base() *url.URL {
	return &url.URL{Scheme: "http", Host: p.host(), Path: "/"}
}

func (p *berthProc) url(path string) string {
	return "http://" + p.host() + path
}

// resolve turns a Location header (absolute or relative) into a URL.
func (p *berthProc) resolve(t testing.TB, loc string) *url.URL {
	t.Helper()
	if loc == "" {
		t.Fatalf("missing Location header")
	}
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatalf("bad Location %q: %v", loc, err)
	}
	return p.base().ResolveReference(u)
}

// ---- plain HTTP helpers ----

var httpClient = &http.Client{
	// Never follow redirects silently: Location headers are checked by hand.
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// doReq sends a request and returns the response with its whole body read.
func doReq(t testing.TB, method, u string, body io.Reader, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if b, ok := body.(*bytes.Reader); ok {
		req.ContentLength = int64(b.Len())
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, u, err)
	}
	return resp, data
}

func wantStatus(t testing.TB, what string, resp *http.Response, body []byte, want int) {
	t.Helper()
	if resp.StatusCode != want {
		t.Fatalf("%s: %s %s: status %d, want %d; body: %s", what, resp.Request.Method, resp.Request.URL, resp.StatusCode, want, truncate(body, 400))
	}
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

func sha256Digest(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// pushBlob uploads b monolithically (POST ?digest=) and returns its digest.
func pushBlob(t testing.TB, p *berthProc, repo string, b []byte) string {
	t.Helper()
	d := sha256Digest(b)
	resp, body := doReq(t, http.MethodPost, p.url("/v2/"+repo+"/blobs/uploads/?digest="+d), bytes.NewReader(b),
		map[string]string{"Content-Type": "application/octet-stream"})
	wantStatus(t, "monolithic blob upload", resp, body, http.StatusCreated)
	if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != d {
		t.Fatalf("monolithic upload: Docker-Content-Digest %s, want %s", got, d)
	}
	return d
}

// putManifest PUTs raw manifest bytes under ref and checks the answer.
func putManifest(t testing.TB, p *berthProc, repo, ref, mediaType string, raw []byte) *http.Response {
	t.Helper()
	resp, body := doReq(t, http.MethodPut, p.url("/v2/"+repo+"/manifests/"+ref), bytes.NewReader(raw),
		map[string]string{"Content-Type": mediaType})
	wantStatus(t, "manifest PUT", resp, body, http.StatusCreated)
	if got, want := resp.Header.Get("Docker-Content-Digest"), sha256Digest(raw); got != want {
		t.Fatalf("manifest PUT %s:%s: Docker-Content-Digest %q, want %q", repo, ref, got, want)
	}
	return resp
}

// ociIndex is the JSON of an image index (also the referrers API answer).
type ociIndex struct {
	SchemaVersion int             `json:"schemaVersion"`
	MediaType     string          `json:"mediaType"`
	Manifests     []ociDescriptor `json:"manifests"`
}

type ociDescriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

// ociManifest is the subset of an image manifest the tests read.
type ociManifest struct {
	SchemaVersion int             `json:"schemaVersion"`
	MediaType     string          `json:"mediaType"`
	Config        ociDescriptor   `json:"config"`
	Layers        []ociDescriptor `json:"layers"`
	Manifests     []ociDescriptor `json:"manifests"`
	Subject       *ociDescriptor  `json:"subject,omitempty"`
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return b
}

// logSettled returns what berth has logged once a batch interval has passed:
// berth serve writes its info lines in batches every 100 ms
// (internal/logbuf), so a line about a request just answered may still be
// on its way.
func (p *berthProc) logSettled() string {
	time.Sleep(300 * time.Millisecond)
	return p.stderr.String()
}
