package server

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/config"
	"github.com/berth-registry/berth/internal/manifestcache"
	"github.com/berth-registry/berth/internal/storage"
	"github.com/berth-registry/berth/internal/storage/fs"
)

// TestGCInvalidatesManifestCache: a manifest the in-server garbage
// collection unlinks is no longer served from the manifest cache (whose TTL
// is an hour here), and the collector keeps the backend's temp-file sweep.
func TestGCInvalidatesManifestCache(t *testing.T) {
	store, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	cfgBlob := []byte(`{"architecture":"amd64","os":"linux"}`)
	cd := digest.FromBytes(cfgBlob)
	u, err := store.BeginUpload(ctx, "repo")
	if err == nil {
		_, err = store.AppendUpload(ctx, "repo", u.ID, 0, bytes.NewReader(cfgBlob))
	}
	if err == nil {
		_, err = store.CommitUpload(ctx, "repo", u.ID, cd)
	}
	if err != nil {
		t.Fatal(err)
	}
	m := fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[]}`, cd, len(cfgBlob))
	md := digest.FromBytes(m)
	if err := store.PutManifest(ctx, "repo", storage.PutManifestRequest{Manifest: storage.Manifest{Digest: md,
		MediaType: "application/vnd.oci.image.manifest.v1+json", Data: m}, Refs: []digest.Digest{cd}}); err != nil {
		t.Fatal(err)
	}

	cfg := testConfig()
	cfg.Cache.ManifestTTL = 10 * time.Hour // the clock jumps 90 minutes below
	cfg.GC.GracePeriod = time.Hour
	cfg.GC.DeleteUntagged = true
	cfg.GC.Interval = 20 * time.Millisecond
	// The clock jumps once the manifest is cached: only then is it past
	// the grace period.
	var offset atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	r := start(t, cfg, store, options{now: clock})
	url := "http://" + r.addr + "/v2/repo/manifests/" + md.String()
	if code, _ := get(t, url); code != http.StatusOK {
		t.Fatalf("GET before gc: %d", code)
	}
	offset.Store(int64(90 * time.Minute))
	// The log line comes after the run, so after its invalidations.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(r.logs.String(), "untagged_manifests=1"); {
		if time.Now().After(deadline) {
			t.Fatalf("no garbage collection unlinked the manifest:\n%s", r.logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code, _ := get(t, url); code != http.StatusNotFound {
		t.Fatalf("GET of the manifest gc unlinked: %d, want 404 (served from the cache)", code)
	}
	if _, ok := collectorWithCache(store, newManifestCache(cfg.Cache, nil, time.Now, nil)).(storage.TempCollector); !ok {
		t.Fatal("the collector lost the backend's storage.TempCollector")
	}
}

// The web UI deletes through cacheInvalidatingStore: a tag or manifest it
// deletes leaves the cache before the UI answers.
func TestUIDeletesInvalidateManifestCache(t *testing.T) {
	store, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := newManifestCache(config.Cache{ManifestBytes: 1 << 20, ManifestTTL: time.Hour}, nil, time.Now, nil)
	st := cacheInvalidatingStore{Store: store, c: c}
	ctx := t.Context()
	m := storage.Manifest{Digest: digest.FromString("m"), MediaType: "application/vnd.oci.image.manifest.v1+json", Data: []byte("m")}
	fill := func() {
		tk := c.Ticket("r")
		c.AddManifest(tk, "r", manifestcache.NewEntry(m))
		c.AddTag(tk, "r", "v1", m.Digest)
	}
	fill()
	_ = st.DeleteTag(ctx, "r", "v1") // unknown in storage: the entry goes all the same
	if _, ok := c.Tag("r", "v1"); ok {
		t.Fatal("a tag deleted through the UI is still cached")
	}
	fill()
	_ = st.DeleteManifest(ctx, "r", m.Digest)
	if _, ok := c.Manifest("r", m.Digest); ok {
		t.Fatal("a manifest deleted through the UI is still cached")
	}
	if _, ok := c.Tag("r", "v1"); ok {
		t.Fatal("a tag of a manifest deleted through the UI is still cached")
	}
}
