package registry_test

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/berth-registry/berth/internal/manifestcache"
	"github.com/berth-registry/berth/internal/registry"
	"github.com/berth-registry/berth/internal/s3test"
	"github.com/berth-registry/berth/internal/storage"
	"github.com/berth-registry/berth/internal/storage/fs"
	"github.com/berth-registry/berth/internal/storage/s3"
	"github.com/opencontainers/go-digest"
)

type env struct {
	t   *testing.T
	srv *httptest.Server
}

// newEnv is a registry on a store of its own. A test with subtests gives
// each subtest its own newEnv (and whatever it pushes first), so no subtest
// sees what another wrote.
func newEnv(t *testing.T, opts ...func(*registry.Options)) *env {
	t.Helper()
	// With the manifest cache: every spec test also checks that its writes
	// invalidate it (the TTL is long, so only invalidations do).
	o := registry.Options{Store: newStore(t), Manifests: manifestcache.New(manifestcache.Options{MaxBytes: 1 << 20, TTL: time.Hour})}
	for _, f := range opts {
		f(&o)
	}
	mux := http.NewServeMux()
	mux.Handle("/v2/", registry.New(o))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &env{t: t, srv: srv}
}

// newStore is the store the spec tests run on: the filesystem backend, or
// S3 (versitygw) under BERTH_TEST_STORE=s3 — the Makefile runs this package
// both ways.
func newStore(t *testing.T) storage.Store {
	t.Helper()
	if s3test.OnS3() {
		st, err := s3.New(t.Context(), s3.Options{Endpoint: s3test.Shared(t).Endpoint, Bucket: s3test.Bucket,
			Region: s3test.Region, KeyPrefix: s3test.Prefix(), AccessKeyID: s3test.AccessKey,
			SecretKey: s3test.SecretKey, PathStyle: true})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	st, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestMain(m *testing.M) {
	code := m.Run()
	s3test.Stop()
	os.Exit(code)
}

type req struct {
	method string
	path   string
	hdr    map[string]string
	body   []byte
	// chunked sends the body without a Content-Length.
	chunked bool
}

type resp struct {
	status int
	hdr    http.Header
	body   []byte
}

func (e *env) do(r req) resp {
	e.t.Helper()
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
		if r.chunked {
			body = io.MultiReader(body) // hides the length
		}
	}
	hr, err := http.NewRequest(r.method, e.srv.URL+r.path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if r.chunked {
		hr.ContentLength = -1
	}
	for k, v := range r.hdr {
		hr.Header.Set(k, v)
	}
	res, err := e.srv.Client().Do(hr)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp{status: res.StatusCode, hdr: res.Header, body: b}
}

// expect checks the status and, for errors, the OCI error code in the body.
func (e *env) expect(r resp, status int, code string) {
	e.t.Helper()
	if r.status != status {
		e.t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	if code == "" {
		return
	}
	var eb struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if len(r.body) == 0 {
		return // HEAD: no body
	}
	if err := json.Unmarshal(r.body, &eb); err != nil || len(eb.Errors) == 0 {
		e.t.Fatalf("body is not an OCI error envelope: %s", r.body)
	}
	if eb.Errors[0].Code != code {
		e.t.Fatalf("error code %s, want %s (%s)", eb.Errors[0].Code, code, eb.Errors[0].Message)
	}
	if ct := r.hdr.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		e.t.Fatalf("error Content-Type %q", ct)
	}
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// pushBlob uploads b monolithically into repo and returns its digest.
func (e *env) pushBlob(repo string, b []byte) digest.Digest {
	e.t.Helper()
	d := digest.FromBytes(b)
	r := e.do(req{method: "POST", path: "/v2/" + repo + "/blobs/uploads/?digest=" + d.String(), body: b,
		hdr: map[string]string{"Content-Type": "application/octet-stream"}})
	e.expect(r, http.StatusCreated, "")
	return d
}

type testImage struct {
	config, layer []byte
	manifest      []byte
	digest        digest.Digest
}

// imageManifest builds an OCI image manifest over a config and one layer,
// with optional extra fields merged in.
func imageManifest(config, layer []byte, extra map[string]any) []byte {
	m := map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config": map[string]any{
			"mediaType": "application/vnd.oci.image.config.v1+json",
			"digest":    digest.FromBytes(config).String(),
			"size":      len(config),
		},
		"layers": []any{map[string]any{
			"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
			"digest":    digest.FromBytes(layer).String(),
			"size":      len(layer),
		}},
	}
	for k, v := range extra {
		m[k] = v
	}
	b, _ := json.Marshal(m)
	return b
}

// pushImage pushes a random image's blobs and its manifest under ref.
func (e *env) pushImage(repo, ref string, extra map[string]any) testImage {
	e.t.Helper()
	img := newTestImage(e.t, extra)
	e.putImage(repo, ref, img)
	return img
}

// newTestImage is a random image (config, one layer, manifest), not pushed.
func newTestImage(t *testing.T, extra map[string]any) testImage {
	t.Helper()
	img := testImage{config: []byte(`{"architecture":"amd64","os":"linux","rnd":"` + digest.FromBytes(randomBytes(t, 8)).Encoded()[:12] + `"}`), layer: randomBytes(t, 1024)}
	img.manifest = imageManifest(img.config, img.layer, extra)
	img.digest = digest.FromBytes(img.manifest)
	return img
}

// putImage pushes img's blobs and its manifest under ref.
func (e *env) putImage(repo, ref string, img testImage) {
	e.t.Helper()
	e.pushBlob(repo, img.config)
	e.pushBlob(repo, img.layer)
	r := e.do(req{method: "PUT", path: "/v2/" + repo + "/manifests/" + ref, body: img.manifest,
		hdr: map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json"}})
	e.expect(r, http.StatusCreated, "")
	if got := r.hdr.Get("Docker-Content-Digest"); got != img.digest.String() {
		e.t.Fatalf("Docker-Content-Digest %s, want %s", got, img.digest)
	}
}
