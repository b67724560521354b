package registry_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/registry"
	"github.com/berth-registry/berth/internal/storage"
)

type fakeRedirector struct {
	calls []string
	err   error
}

func (f *fakeRedirector) PresignBlob(_ context.Context, repo string, d digest.Digest, ttl time.Duration) (string, error) {
	f.calls = append(f.calls, fmt.Sprintf("%s %s %s", repo, d, ttl))
	if f.err != nil {
		return "", f.err
	}
	return "https://bucket.example/blobs/" + d.Encoded() + "?X-Amz-Signature=abc", nil
}

func TestBlobRedirect(t *testing.T) {
	red := &fakeRedirector{}
	e := newEnv(t, func(o *registry.Options) { o.BlobRedirect = red })
	d := e.pushBlob("repo", []byte("redirected bytes"))

	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := noFollow.Get(e.srv.URL + "/v2/repo/blobs/" + d.String())
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusTemporaryRedirect {
		t.Fatalf("GET blob: %d, want 307", res.StatusCode)
	}
	if loc := res.Header.Get("Location"); loc != "https://bucket.example/blobs/"+d.Encoded()+"?X-Amz-Signature=abc" {
		t.Fatalf("Location %q", loc)
	}
	if cc := res.Header.Get("Cache-Control"); cc != "no-store" {
		t.Fatalf("Cache-Control %q, want no-store (the URL expires)", cc)
	}
	if want := []string{"repo " + d.String() + " " + registry.BlobRedirectTTL.String()}; !slices.Equal(red.calls, want) {
		t.Fatalf("PresignBlob calls %q, want %q", red.calls, want)
	}

	// HEAD is answered by the registry itself.
	r := e.do(req{method: "HEAD", path: "/v2/repo/blobs/" + d.String()})
	e.expect(r, http.StatusOK, "")
	if r.hdr.Get("Content-Length") != "16" {
		t.Fatalf("HEAD Content-Length %q", r.hdr.Get("Content-Length"))
	}
	// An unknown blob is a 404, never a redirect.
	r = e.do(req{method: "GET", path: "/v2/repo/blobs/" + digest.FromString("nope").String()})
	e.expect(r, http.StatusNotFound, "BLOB_UNKNOWN")
	if len(red.calls) != 1 {
		t.Fatalf("PresignBlob called for a HEAD or an unknown blob: %q", red.calls)
	}
	// A presign failure is a server error, not a body from the wrong place.
	red.err = errors.New("presign: no credentials")
	r = e.do(req{method: "GET", path: "/v2/repo/blobs/" + d.String()})
	e.expect(r, http.StatusInternalServerError, "")
}

// goneStore makes PutManifest find a reference gone, as when garbage
// collection deletes content between the registry's check and the push.
type goneStore struct {
	storage.Store
	refs []digest.Digest
}

func (g *goneStore) PutManifest(_ context.Context, _ string, req storage.PutManifestRequest) error {
	g.refs = req.Refs
	return fmt.Errorf("fs: manifest reference %s: content gone: %w", req.Refs[len(req.Refs)-1], storage.ErrBlobUnknown)
}

func TestPutManifestPassesRefs(t *testing.T) {
	gs := &goneStore{}
	e := newEnv(t, func(o *registry.Options) { gs.Store = o.Store; o.Store = gs })
	config, layer := []byte(`{"os":"linux"}`), []byte("layer bytes")
	e.pushBlob("repo", config)
	e.pushBlob("repo", layer)
	r := e.do(req{method: "PUT", path: "/v2/repo/manifests/v1", body: imageManifest(config, layer, nil),
		hdr: map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json"}})
	e.expect(r, http.StatusBadRequest, "MANIFEST_BLOB_UNKNOWN")
	if want := []digest.Digest{digest.FromBytes(config), digest.FromBytes(layer)}; !slices.Equal(gs.refs, want) {
		t.Fatalf("Refs %v, want config and layer %v", gs.refs, want)
	}
}
