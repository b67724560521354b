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

// BenchmarkManifestGetTracing is an anonymous GET of a manifest by tag
// through the whole handler the API listener serves (trusted-proxy wrapper,
// mux, router, gate, manifests from memory, the request log to
// io.Discard, the metrics), with [tracing] off, and on (exporting to an
// in-process collector that drops what it gets). Off must cost what the
// same handler cost before tracing existed (docs/benchmarks.md).
func BenchmarkManifestGetTracing(b *testing.B) {
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer sink.Close()
	for _, bc := range []struct {
		name    string
		policy  bool
		tracing bool
	}{
		{"open/off", false, false},
		{"policy/off", true, false},
		{"policy/on", true, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := testConfig()
			cfg.Admin.BindAddress = "off"
			if bc.policy {
				cfg.Global.AccessPolicy = &config.AccessPolicy{Key: "global.access_policy", Rules: []string{`request.action == "pull"`}}
			}
			if bc.tracing {
				cfg.Tracing = config.Tracing{Enabled: true, Endpoint: sink.URL, Insecure: true, SampleRatio: 1, ServiceName: "bench"}
			}
			h := traceBenchHandler(b, cfg)
			r := httptest.NewRequest("GET", "/v2/bench/app/manifests/v1", nil)
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
}

// memManifests serves one repository's manifests and tags from memory, so
// that the benchmark measures the request path, not the disk.
type memManifests struct {
	storage.Store
	tags      map[string]digest.Digest
	manifests map[digest.Digest]storage.Manifest
}

func (m *memManifests) ResolveTag(ctx context.Context, repo, tag string) (digest.Digest, error) {
	if d, ok := m.tags[repo+":"+tag]; ok {
		return d, nil
	}
	return "", storage.ErrTagUnknown
}

func (m *memManifests) GetManifest(ctx context.Context, repo string, d digest.Digest) (storage.Manifest, error) {
	if mf, ok := m.manifests[d]; ok {
		return mf, nil
	}
	return storage.Manifest{}, storage.ErrManifestUnknown
}

func (m *memManifests) StatManifest(ctx context.Context, repo string, d digest.Digest) (storage.Manifest, error) {
	return m.GetManifest(ctx, repo, d)
}

func traceBenchHandler(b *testing.B, cfg *config.Config) http.Handler {
	ctx := context.Background()
	fst, err := fs.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	st := &memManifests{Store: fst, tags: map[string]digest.Digest{}, manifests: map[digest.Digest]storage.Manifest{}}
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
	md := digest.FromBytes(m)
	st.tags["bench/app:v1"] = md
	st.manifests[md] = storage.Manifest{Digest: md, MediaType: "application/vnd.oci.image.manifest.v1+json", Data: m}
	logger := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	a, err := build(ctx, cfg, logger, options{store: st})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(a.close)
	return a.handler
}
