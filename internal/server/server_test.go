package server

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/config"
	"github.com/berth-registry/berth/internal/storage"
	"github.com/berth-registry/berth/internal/testutil"
)

// fakeStore implements the few storage verbs these tests reach; any other
// call panics on the nil embedded interface.
type fakeStore struct {
	storage.Store

	pingErr   error
	pingBlock bool

	blob    []byte
	entered chan struct{} // closed when OpenBlob's reader is first read
	release chan struct{} // the first read waits for it

	mu     sync.Mutex
	purged []time.Time
	purgeN int
}

func (s *fakeStore) Ping(ctx context.Context) error {
	if s.pingBlock {
		<-ctx.Done()
		return ctx.Err()
	}
	return s.pingErr
}

func (s *fakeStore) PurgeUploads(ctx context.Context, olderThan time.Time) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.purged = append(s.purged, olderThan)
	return s.purgeN, nil
}

func (s *fakeStore) purges() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.purged...)
}

func (s *fakeStore) StatBlob(ctx context.Context, repo string, d digest.Digest) (storage.BlobInfo, error) {
	if s.blob == nil {
		return storage.BlobInfo{}, storage.ErrBlobUnknown
	}
	return storage.BlobInfo{Digest: d, Size: int64(len(s.blob))}, nil
}

func (s *fakeStore) OpenBlob(ctx context.Context, repo string, d digest.Digest, offset, length int64) (io.ReadCloser, error) {
	return io.NopCloser(&slowReader{s: s, r: bytes.NewReader(s.blob[offset:])}), nil
}

type slowReader struct {
	s     *fakeStore
	r     io.Reader
	began bool
}

func (r *slowReader) Read(p []byte) (int, error) {
	if !r.began {
		r.began = true
		close(r.s.entered)
		<-r.s.release
	}
	return r.r.Read(p)
}

// logBuffer is a concurrency-safe log sink.
type logBuffer struct{ testutil.Buffer }

var addrRE = regexp.MustCompile(`msg="?(listening|metrics listening)"? addr=(\S+)`)

// waitAddr returns the address logged by the line with message msg.
func (b *logBuffer) waitAddr(t *testing.T, msg string, done <-chan error) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, m := range addrRE.FindAllStringSubmatch(b.String(), -1) {
			if m[1] == msg {
				return m[2]
			}
		}
		select {
		case err := <-done:
			t.Fatalf("server stopped before logging %q: %v\n%s", msg, err, b)
		case <-time.After(5 * time.Millisecond):
		}
	}
	t.Fatalf("no %q line in the log:\n%s", msg, b)
	return ""
}

type running struct {
	addr   string
	logs   *logBuffer
	cancel context.CancelFunc
	done   chan error // receives serve's result once

	once sync.Once
	err  error
}

// wait returns serve's result, waiting at most 10 s for it.
func (r *running) wait(t *testing.T) error {
	t.Helper()
	r.once.Do(func() {
		select {
		case r.err = <-r.done:
		case <-time.After(10 * time.Second):
			r.err = errors.New("server did not stop")
		}
	})
	return r.err
}

// stop cancels the server and returns serve's error.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	return r.wait(t)
}

func testConfig() *config.Config {
	cfg := config.Default()
	cfg.Server.BindAddress = "127.0.0.1"
	cfg.Server.Port = 0
	cfg.Server.ShutdownTimeout = 5 * time.Second
	return cfg
}

func start(t *testing.T, cfg *config.Config, store storage.Store, o options) *running {
	t.Helper()
	logs := &logBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	o.store = store
	go func() { done <- serve(ctx, cfg, logger, o) }()
	r := &running{logs: logs, cancel: cancel, done: done}
	r.addr = logs.waitAddr(t, "listening", done)
	t.Cleanup(func() { _ = r.stop(t) })
	return r
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestHealthz(t *testing.T) {
	r := start(t, testConfig(), &fakeStore{pingErr: errors.New("down")}, options{})
	// Liveness does not depend on storage.
	if code, body := get(t, "http://"+r.addr+"/healthz"); code != 200 || body != "ok" {
		t.Errorf("GET /healthz = %d %q", code, body)
	}
	resp, err := http.Post("http://"+r.addr+"/healthz", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /healthz = %d", resp.StatusCode)
	}
	if err := r.stop(t); err != nil {
		t.Errorf("Run = %v", err)
	}
}

func TestReadyz(t *testing.T) {
	tests := []struct {
		name  string
		store *fakeStore
		code  int
	}{
		{"ok", &fakeStore{}, 200},
		{"ping fails", &fakeStore{pingErr: errors.New("disk gone")}, 503},
		{"ping hangs", &fakeStore{pingBlock: true}, 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := start(t, testConfig(), tt.store, options{readyTimeout: 50 * time.Millisecond})
			code, _ := get(t, "http://"+r.addr+"/readyz")
			if code != tt.code {
				t.Errorf("GET /readyz = %d, want %d", code, tt.code)
			}
		})
	}
}

func TestRegistryMounted(t *testing.T) {
	r := start(t, testConfig(), &fakeStore{}, options{})
	resp, err := http.Get("http://" + r.addr + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Docker-Distribution-API-Version") != "registry/2.0" {
		t.Errorf("GET /v2/ = %d %v", resp.StatusCode, resp.Header)
	}
	if code, _ := get(t, "http://"+r.addr+"/nothing-here"); code != 404 {
		t.Errorf("GET /nothing-here = %d", code)
	}
}

func TestMetricsOnMainListener(t *testing.T) {
	r := start(t, testConfig(), &fakeStore{}, options{})
	get(t, "http://"+r.addr+"/v2/")
	code, body := get(t, "http://"+r.addr+"/metrics")
	if code != 200 {
		t.Fatalf("GET /metrics = %d", code)
	}
	for _, want := range []string{`berth_http_requests_total{action=`, `code="200"} 1`, "berth_uploads_in_progress 0", "go_goroutines"} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestMetricsDisabled(t *testing.T) {
	cfg := testConfig()
	cfg.Metrics.Enabled = false
	r := start(t, cfg, &fakeStore{}, options{})
	get(t, "http://"+r.addr+"/v2/") // the registry copes with no metrics
	if code, _ := get(t, "http://"+r.addr+"/metrics"); code != 404 {
		t.Errorf("GET /metrics = %d, want 404", code)
	}
}

func TestMetricsSeparateListener(t *testing.T) {
	cfg := testConfig()
	cfg.Metrics.Address = "127.0.0.1:0"
	r := start(t, cfg, &fakeStore{}, options{})
	maddr := r.logs.waitAddr(t, "metrics listening", r.done)
	if maddr == r.addr {
		t.Fatal("metrics on the main address")
	}
	get(t, "http://"+r.addr+"/v2/")
	if code, _ := get(t, "http://"+r.addr+"/metrics"); code != 404 {
		t.Errorf("main GET /metrics = %d, want 404", code)
	}
	code, body := get(t, "http://"+maddr+"/metrics")
	if code != 200 || !strings.Contains(body, "berth_http_requests_total{") {
		t.Errorf("metrics GET /metrics = %d\n%s", code, body)
	}
	if code, _ := get(t, "http://"+maddr+"/v2/"); code != 404 {
		t.Errorf("the metrics listener serves /v2/: %d", code)
	}
	if err := r.stop(t); err != nil {
		t.Errorf("Run = %v", err)
	}
	if _, err := net.DialTimeout("tcp", maddr, time.Second); err == nil {
		t.Error("metrics listener still open after shutdown")
	}
}

// An in-flight request finishes after ctx is cancelled; new connections are
// refused; Run returns nil once it has.
func TestGracefulShutdown(t *testing.T) {
	blob := bytes.Repeat([]byte("x"), 1<<20)
	store := &fakeStore{blob: blob, entered: make(chan struct{}), release: make(chan struct{})}
	r := start(t, testConfig(), store, options{})

	type result struct {
		code int
		body []byte
		err  error
	}
	resc := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + r.addr + "/v2/library/app/blobs/" + digest.FromBytes(blob).String())
		if err != nil {
			resc <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		resc <- result{resp.StatusCode, b, err}
	}()
	select {
	case <-store.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("request never reached storage")
	}

	r.cancel()
	// The listener closes at once, while the request is still in flight.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", r.addr, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("listener still accepting after cancel")
		}
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case err := <-r.done:
		t.Fatalf("Run returned (%v) with a request in flight", err)
	case <-time.After(100 * time.Millisecond):
	}

	close(store.release)
	res := <-resc
	if res.err != nil || res.code != 200 || !bytes.Equal(res.body, blob) {
		t.Fatalf("in-flight request: code %d, %d bytes, err %v", res.code, len(res.body), res.err)
	}
	if err := r.wait(t); err != nil {
		t.Errorf("Run = %v", err)
	}
	if !strings.Contains(r.logs.String(), "msg=stopped") {
		t.Errorf("no stop line:\n%s", r.logs)
	}
}

// A request still running when shutdown_timeout expires is cut off, and Run
// says so.
func TestShutdownTimeout(t *testing.T) {
	store := &fakeStore{blob: []byte("abc"), entered: make(chan struct{}), release: make(chan struct{})}
	defer close(store.release)
	cfg := testConfig()
	cfg.Server.ShutdownTimeout = 100 * time.Millisecond
	r := start(t, cfg, store, options{})
	go func() {
		resp, err := http.Get("http://" + r.addr + "/v2/library/app/blobs/" + digest.FromString("abc").String())
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	<-store.entered
	start := time.Now()
	err := r.stop(t)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Run = %v, want a shutdown deadline error", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("shutdown took %s", d)
	}
}

func TestStartupWarnings(t *testing.T) {
	cfg := testConfig()
	r := start(t, cfg, &fakeStore{}, options{})
	logs := r.logs.String()
	if n := strings.Count(logs, OpenWarning); n != 1 {
		t.Errorf("open-registry warning logged %d times:\n%s", n, logs)
	}
	if !strings.Contains(logs, "level=WARN msg=\""+OpenWarning) {
		t.Errorf("open-registry warning is not a warning:\n%s", logs)
	}
	if strings.Contains(logs, "web UI") {
		t.Errorf("UI warning without [ui] enabled:\n%s", logs)
	}

	cfg = testConfig()
	cfg.UI.Enabled = true
	r = start(t, cfg, &fakeStore{}, options{})
	if strings.Contains(r.logs.String(), "web UI") {
		t.Errorf("UI warning in open mode:\n%s", r.logs)
	}
}

func TestPurgeUploads(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	cfg := testConfig()
	cfg.Uploads.Expiry = 2 * time.Hour
	cfg.Uploads.PurgeInterval = 10 * time.Millisecond
	store := &fakeStore{purgeN: 3}
	r := start(t, cfg, store, options{now: func() time.Time { return now }})
	deadline := time.Now().Add(5 * time.Second)
	for len(store.purges()) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("PurgeUploads called %d times", len(store.purges()))
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	for _, ts := range store.purges() {
		if !ts.Equal(now.Add(-2 * time.Hour)) {
			t.Errorf("PurgeUploads(olderThan %s), want %s", ts, now.Add(-2*time.Hour))
		}
	}
	if !strings.Contains(r.logs.String(), "msg=\"purged expired uploads\" count=3") {
		t.Errorf("no purge line:\n%s", r.logs)
	}
	// Nothing is purged after Run returned.
	n := len(store.purges())
	time.Sleep(50 * time.Millisecond)
	if len(store.purges()) != n {
		t.Error("purging continued after shutdown")
	}
}

func TestPurgeQuietWhenNothingExpired(t *testing.T) {
	store := &fakeStore{}
	r := start(t, testConfig(), store, options{})
	for len(store.purges()) == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	if strings.Contains(r.logs.String(), "purged") {
		t.Errorf("logged an empty purge:\n%s", r.logs)
	}
}

// writeCert writes a self-signed certificate for 127.0.0.1 into dir.
func writeCert(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestTLS(t *testing.T) {
	certFile, keyFile, pool := writeCert(t, t.TempDir())
	cfg := testConfig()
	cfg.Server.TLS = &config.TLS{CertificateBundle: certFile, PrivateKey: keyFile}
	r := start(t, cfg, &fakeStore{}, options{})
	if !strings.Contains(r.logs.String(), "tls=true") {
		t.Errorf("listening line does not say TLS:\n%s", r.logs)
	}

	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get("https://" + r.addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil {
		t.Errorf("GET https /healthz = %d, TLS %v", resp.StatusCode, resp.TLS != nil)
	}

	// Plain HTTP is not served.
	if resp, err := http.Get("http://" + r.addr + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Error("plain HTTP served on a TLS listener")
		}
	}

	// TLS 1.1 is refused.
	old := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS11}}}
	if resp, err := old.Get("https://" + r.addr + "/healthz"); err == nil {
		resp.Body.Close()
		t.Error("TLS 1.1 handshake succeeded")
	}
}

// A broken TLS setup never falls back to plain HTTP: Run fails before listening.
func TestBrokenTLSRefused(t *testing.T) {
	cfg := testConfig()
	cfg.Server.TLS = &config.TLS{CertificateBundle: "/nonexistent/cert.pem", PrivateKey: "/nonexistent/key.pem"}
	logs := &logBuffer{}
	err := serve(t.Context(), cfg, slog.New(slog.NewTextHandler(logs, nil)), options{store: &fakeStore{}})
	if err == nil || !strings.Contains(err.Error(), "server.tls") {
		t.Errorf("serve = %v, want a server.tls error", err)
	}
	if strings.Contains(logs.String(), "listening") {
		t.Errorf("listened despite broken TLS:\n%s", logs)
	}
}

func TestListenError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := testConfig()
	cfg.Server.Port = ln.Addr().(*net.TCPAddr).Port
	err = serve(t.Context(), cfg, nil, options{store: &fakeStore{}})
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("serve = %v, want address in use", err)
	}
}

// Run with the real filesystem store.
func TestRun(t *testing.T) {
	cfg := testConfig()
	cfg.BlobStore.FS.RootDir = filepath.Join(t.TempDir(), "data")
	logs := &logBuffer{}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, "", slog.New(slog.NewTextHandler(logs, nil))) }()
	addr := logs.waitAddr(t, "listening", done)
	if code, body := get(t, "http://"+addr+"/readyz"); code != 200 {
		t.Errorf("GET /readyz = %d %q", code, body)
	}
	if code, _ := get(t, "http://"+addr+"/v2/_catalog"); code != 200 {
		t.Errorf("GET /v2/_catalog = %d", code)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
}

func TestRunStorageError(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.BlobStore.FS.RootDir = filepath.Join(file, "sub") // under a regular file
	if err := Run(t.Context(), cfg, "", slog.New(slog.DiscardHandler)); err == nil {
		t.Error("Run succeeded with an unusable root_dir")
	}
}
