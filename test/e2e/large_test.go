package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestLargeLayerChunked uploads a 256 MiB layer through the chunked protocol
// in 16 MiB PATCHes, references it from an image manifest, and reads it back
// with go-containerregistry and with a ranged GET.
func TestLargeLayerChunked(t *testing.T) {
	if testing.Short() {
		t.Skip("256 MiB upload skipped in -short mode")
	}
	const (
		size      = 256 << 20
		chunkSize = 16 << 20
		repo      = "e2e/large"
	)
	p := startBerth(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	s := detStream{seed: 0x256, size: size}

	up, err := beginUpload(ctx, p, repo)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if err := up.uploadStream(ctx, s, chunkSize, h); err != nil {
		t.Fatalf("chunked upload: %v", err)
	}
	layerDigest := "sha256:" + hex.EncodeToString(h.Sum(nil))
	// The session reports the whole size before it is finished.
	if code, n, err := up.status(ctx); err != nil || code != http.StatusNoContent || n != size {
		t.Fatalf("GET upload status before PUT: status %d, %d bytes, err %v; want 204 and %d bytes", code, n, err, size)
	}
	blobURL, err := up.finish(ctx, layerDigest)
	if err != nil {
		t.Fatal(err)
	}
	if want := "/v2/" + repo + "/blobs/" + layerDigest; blobURL.Path != want {
		t.Errorf("Location after finishing the upload: %s, want %s", blobURL.Path, want)
	}

	// HEAD agrees on size and digest.
	resp, body := doReq(t, http.MethodHead, p.url("/v2/"+repo+"/blobs/"+layerDigest), nil, nil)
	wantStatus(t, "HEAD large blob", resp, body, http.StatusOK)
	if resp.ContentLength != size || resp.Header.Get("Docker-Content-Digest") != layerDigest {
		t.Fatalf("HEAD large blob: Content-Length %d, Docker-Content-Digest %q; want %d, %s",
			resp.ContentLength, resp.Header.Get("Docker-Content-Digest"), int64(size), layerDigest)
	}

	// An image manifest with the layer; its config uploaded monolithically.
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["` + layerDigest + `"]}}`)
	cfgDigest := pushBlob(t, p, repo, cfg)
	manifest := mustJSON(t, map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        ociDescriptor{MediaType: "application/vnd.oci.image.config.v1+json", Digest: cfgDigest, Size: int64(len(cfg))},
		"layers":        []ociDescriptor{{MediaType: "application/vnd.oci.image.layer.v1.tar", Digest: layerDigest, Size: size}},
	})
	putManifest(t, p, repo, "big", "application/vnd.oci.image.manifest.v1+json", manifest)

	// Pull with go-containerregistry and compare while streaming.
	img, err := remote.Image(mustRef(t, p.host()+"/"+repo+":big"), ggcrOpts(ctx)...)
	if err != nil {
		t.Fatalf("remote.Image: %v", err)
	}
	if d := digestOf(t, img).String(); d != sha256Digest(manifest) {
		t.Fatalf("pulled manifest digest %s, want %s", d, sha256Digest(manifest))
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("pulled layers: %d, err %v", len(layers), err)
	}
	if d := digestOf(t, layers[0]).String(); d != layerDigest {
		t.Fatalf("pulled layer digest %s, want %s", d, layerDigest)
	}
	rc, err := layers[0].Compressed()
	if err != nil {
		t.Fatalf("layer.Compressed: %v", err)
	}
	got := compareStream(t, "pulled 256 MiB layer", rc, s, 0)
	rc.Close()
	if got != layerDigest {
		t.Fatalf("pulled layer hashes to %s, want %s", got, layerDigest)
	}

	// A ranged GET across a chunk boundary in the middle.
	start := int64(7*chunkSize - 12345)
	end := start + 3<<20 + 17 // inclusive
	resp = rangedGet(t, p, repo, layerDigest, start, end)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		t.Fatalf("GET blob with Range bytes=%d-%d: status %d, want 206: %s", start, end, resp.StatusCode, b)
	}
	if want := fmt.Sprintf("bytes %d-%d/%d", start, end, size); resp.Header.Get("Content-Range") != want {
		t.Errorf("ranged GET: Content-Range %q, want %q", resp.Header.Get("Content-Range"), want)
	}
	if resp.ContentLength != end-start+1 {
		t.Errorf("ranged GET: Content-Length %d, want %d", resp.ContentLength, end-start+1)
	}
	compareStream(t, "ranged GET "+strconv.FormatInt(start, 10), resp.Body, detStream{seed: s.seed, size: end + 1}, start)
}

func rangedGet(t testing.TB, p *berthProc, repo, d string, start, end int64) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, p.url("/v2/"+repo+"/blobs/"+d), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", start, end))
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("ranged GET: %v", err)
	}
	return resp
}
