package registry_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/manifestcache"
	"github.com/berth-registry/berth/internal/registry"
	"github.com/berth-registry/berth/internal/storage"
)

// countingStore counts the manifest and tag reads that reach storage.
type countingStore struct {
	storage.Store
	reads atomic.Int64
}

func (s *countingStore) GetManifest(ctx context.Context, repo string, d digest.Digest) (storage.Manifest, error) {
	s.reads.Add(1)
	return s.Store.GetManifest(ctx, repo, d)
}

func (s *countingStore) ResolveTag(ctx context.Context, repo, tag string) (digest.Digest, error) {
	s.reads.Add(1)
	return s.Store.ResolveTag(ctx, repo, tag)
}

type testClock struct{ t atomic.Int64 }

func (c *testClock) now() time.Time          { return time.Unix(0, c.t.Load()) }
func (c *testClock) advance(d time.Duration) { c.t.Add(int64(d)) }

func cacheEnv(t *testing.T, ttl time.Duration, clk *testClock) (*env, *countingStore) {
	st := &countingStore{Store: newStore(t)}
	c := manifestcache.New(manifestcache.Options{MaxBytes: 1 << 20, TTL: ttl, Now: clk.now})
	return newEnv(t, func(o *registry.Options) { o.Store, o.Manifests = st, c }), st
}

// Repeated GETs and HEADs of a manifest by tag and by digest are served from
// the cache, with the stored headers; every write through the API changes
// the answer at once, and a deleted manifest is never served after the
// DELETE was answered.
func TestManifestCache(t *testing.T) {
	clk := &testClock{}
	clk.t.Store(time.Unix(1e9, 0).UnixNano())
	e, st := cacheEnv(t, time.Hour, clk)
	img1 := e.pushImage("c/app", "v1", nil)
	img2 := e.pushImage("c/app", "other", nil)
	get := func(m, ref string, want int) resp {
		t.Helper()
		r := e.do(req{method: m, path: "/v2/c/app/manifests/" + ref})
		e.expect(r, want, "")
		return r
	}
	for _, m := range []string{"GET", "HEAD"} {
		get(m, "v1", 200)
		get(m, img1.digest.String(), 200)
	}
	before := st.reads.Load()
	for range 10 {
		for _, m := range []string{"GET", "HEAD"} {
			r := get(m, "v1", 200)
			if r.hdr.Get("Docker-Content-Digest") != img1.digest.String() || r.hdr.Get("Content-Type") != mtManifest ||
				r.hdr.Get("Content-Length") != itoa(len(img1.manifest)) || r.hdr.Get("ETag") != `"`+img1.digest.String()+`"` {
				t.Fatalf("%s headers %v", m, r.hdr)
			}
			if m == "GET" && string(r.body) != string(img1.manifest) {
				t.Fatal("cached body differs")
			}
		}
	}
	if n := st.reads.Load() - before; n != 0 {
		t.Fatalf("%d storage reads for 20 cached GET/HEADs", n)
	}
	r := e.do(req{method: "GET", path: "/v2/c/app/manifests/v1", hdr: map[string]string{"If-None-Match": `"` + img1.digest.String() + `"`}})
	e.expect(r, http.StatusNotModified, "")

	// The tag moves: the next GET sees the new target.
	e.putImage("c/app", "v1", img2)
	if r := get("GET", "v1", 200); r.hdr.Get("Docker-Content-Digest") != img2.digest.String() {
		t.Fatal("GET after the tag moved still answers the old manifest")
	}
	// The tag is deleted.
	e.expect(e.do(req{method: "DELETE", path: "/v2/c/app/manifests/v1"}), http.StatusAccepted, "")
	get("GET", "v1", 404)
	get("HEAD", "v1", 404)
	// The manifest img1 (cached by digest) is deleted.
	get("GET", img2.digest.String(), 200)
	get("GET", "other", 200)
	e.expect(e.do(req{method: "DELETE", path: "/v2/c/app/manifests/" + img2.digest.String()}), http.StatusAccepted, "")
	get("GET", img2.digest.String(), 404)
	get("HEAD", img2.digest.String(), 404)
	get("GET", "other", 404) // its tag went with it
	get("GET", img1.digest.String(), 200)
}

// What the API did not write (another process: berth gc, a replica whose
// invalidation was lost) is served for at most the TTL.
func TestManifestCacheTTL(t *testing.T) {
	clk := &testClock{}
	clk.t.Store(time.Unix(1e9, 0).UnixNano())
	e, st := cacheEnv(t, 5*time.Second, clk)
	img := e.pushImage("c/app", "v1", nil)
	e.expect(e.do(req{method: "GET", path: "/v2/c/app/manifests/v1"}), 200, "")
	if err := st.Store.DeleteManifest(t.Context(), "c/app", img.digest); err != nil {
		t.Fatal(err)
	}
	clk.advance(4 * time.Second)
	e.expect(e.do(req{method: "GET", path: "/v2/c/app/manifests/v1"}), 200, "") // within the bound
	clk.advance(time.Second)
	e.expect(e.do(req{method: "GET", path: "/v2/c/app/manifests/v1"}), 404, "MANIFEST_UNKNOWN")
}
