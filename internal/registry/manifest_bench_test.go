package registry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/registry"
	"github.com/berth-registry/berth/internal/storage/fs"
)

// benchManifest is an image manifest of n layers whose blobs are in the
// handler's store.
func benchManifest(b *testing.B, n int) (http.Handler, []byte) {
	st, err := fs.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	put := func(data []byte) map[string]any {
		u, err := st.BeginUpload(ctx, "bench/app")
		if err == nil {
			_, err = st.AppendUpload(ctx, "bench/app", u.ID, 0, bytes.NewReader(data))
		}
		if err == nil {
			_, err = st.CommitUpload(ctx, "bench/app", u.ID, digest.FromBytes(data))
		}
		if err != nil {
			b.Fatal(err)
		}
		return map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest.FromBytes(data), "size": len(data)}
	}
	cfg := put([]byte(`{"architecture":"amd64","os":"linux"}`))
	cfg["mediaType"] = "application/vnd.oci.image.config.v1+json"
	layers := make([]any, n)
	for i := range layers {
		layers[i] = put(fmt.Appendf(nil, "layer %d", i))
	}
	m, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": cfg, "layers": layers, "annotations": map[string]string{"org.opencontainers.image.created": "2026-01-02T03:04:05Z"}})
	return registry.New(registry.Options{Store: st}), m
}

func serve(b *testing.B, h http.Handler, method, path string, body []byte, want int) {
	r := httptest.NewRequest(method, path, bytes.NewReader(body))
	if body != nil {
		r.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != want {
		b.Fatalf("%s %s: %d %s", method, path, w.Code, w.Body)
	}
}

// BenchmarkManifestPut: PUT of an image manifest by tag (parse, check the
// referenced blobs, store), for 5 and 500 layers.
func BenchmarkManifestPut(b *testing.B) {
	for _, n := range []int{5, 500} {
		b.Run(fmt.Sprint(n, "layers"), func(b *testing.B) {
			h, m := benchManifest(b, n)
			b.SetBytes(int64(len(m)))
			b.ReportAllocs()
			for b.Loop() {
				serve(b, h, http.MethodPut, "/v2/bench/app/manifests/v1", m, http.StatusCreated)
			}
		})
	}
}

// BenchmarkManifestGet: GET of an image manifest by tag.
func BenchmarkManifestGet(b *testing.B) {
	h, m := benchManifest(b, 5)
	serve(b, h, http.MethodPut, "/v2/bench/app/manifests/v1", m, http.StatusCreated)
	b.ReportAllocs()
	for b.Loop() {
		serve(b, h, http.MethodGet, "/v2/bench/app/manifests/v1", nil, http.StatusOK)
	}
}
