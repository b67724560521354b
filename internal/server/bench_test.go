package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/config"
	"github.com/berth-registry/berth/internal/storage"
	"github.com/berth-registry/berth/internal/storage/fs"
)

// BenchmarkManifestGetPath is an anonymous GET (and HEAD) of a manifest by
// tag through the whole handler the API listener serves: trusted-proxy
// wrapper, mux, router, gate (with a one-rule policy), the manifest cache,
// headers, the request log (text, info level, to io.Discard) and the
// metrics. Compare allocs/op with the trivial handler below.
func BenchmarkManifestGetPath(b *testing.B) {
	for _, bc := range []struct {
		name   string
		policy bool
		cache  int64
		method string
	}{
		{"open/cache/GET", false, 64 << 20, "GET"},
		{"open/cache/HEAD", false, 64 << 20, "HEAD"},
		{"open/nocache/GET", false, 0, "GET"},
		{"policy/cache/GET", true, 64 << 20, "GET"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := testConfig()
			cfg.Cache.ManifestBytes = bc.cache
			if bc.policy {
				cfg.Global.AccessPolicy = &config.AccessPolicy{Key: "global.access_policy", Rules: []string{`request.action == "pull"`}}
			}
			h := benchHandler(b, cfg)
			r := httptest.NewRequest(bc.method, "/v2/bench/app/manifests/v1", nil)
			r.RemoteAddr = "127.0.0.1:40000"
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				w.code = 0
				h.ServeHTTP(w, r)
				if w.code != http.StatusOK {
					b.Fatalf("status %d", w.code)
				}
			}
		})
	}
	b.Run("trivial", func(b *testing.B) {
		body := bytes.Repeat([]byte("x"), 500)
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hdr := w.Header()
			hdr.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
			hdr.Set("Docker-Content-Digest", "sha256:0123")
			hdr.Set("Content-Length", "500")
			w.WriteHeader(200)
			_, _ = w.Write(body)
		})
		r := httptest.NewRequest("GET", "/v2/bench/app/manifests/v1", nil)
		w := &discardWriter{h: http.Header{}}
		b.ReportAllocs()
		for b.Loop() {
			clear(w.h)
			h.ServeHTTP(w, r)
		}
	})
}

// discardWriter is a ResponseWriter that keeps the status and drops the body.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header { return w.h }
func (w *discardWriter) WriteHeader(c int) {
	if w.code == 0 {
		w.code = c
	}
}
func (w *discardWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = 200
	}
	return len(p), nil
}

func benchHandler(b *testing.B, cfg *config.Config) http.Handler {
	ctx := context.Background()
	st, err := fs.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	cfgBlob := []byte(`{"architecture":"amd64","os":"linux"}`)
	cd := digest.FromBytes(cfgBlob)
	u, err := st.BeginUpload(ctx, "bench/app")
	if err == nil {
		_, err = st.AppendUpload(ctx, "bench/app", u.ID, 0, bytes.NewReader(cfgBlob))
	}
	if err == nil {
		_, err = st.CommitUpload(ctx, "bench/app", u.ID, cd)
	}
	if err != nil {
		b.Fatal(err)
	}
	m := fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[]}`, cd, len(cfgBlob))
	if err := st.PutManifest(ctx, "bench/app", storage.PutManifestRequest{Manifest: storage.Manifest{Digest: digest.FromBytes(m),
		MediaType: "application/vnd.oci.image.manifest.v1+json", Data: m}, Tags: []string{"v1"}, Refs: []digest.Digest{cd}}); err != nil {
		b.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	a, err := build(ctx, cfg, logger, options{store: st, now: nil})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(a.close)
	return a.handler
}
