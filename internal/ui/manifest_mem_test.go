package ui

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/storage"
)

// Huge but legal manifests (under the 4 MiB default limit): 25,000 layers,
// an index of 19,000 children, 75,000 annotations.
const (
	hugeLayers      = 25000
	hugeChildren    = 19000
	hugeAnnotations = 75000
	// hugeLoads concurrent loads of a huge manifest's page must add less
	// than hugeBudget to the heap.
	hugeLoads  = 6
	hugeBudget = 64 << 20
)

func fakeDigest(s string) string {
	h := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(h[:])
}

// hugeManifests builds the three manifests.
func hugeManifests() map[string]storage.Manifest {
	layers := make([]desc, hugeLayers)
	for i := range layers {
		layers[i] = desc{"mediaType": ociLayer, "digest": fakeDigest(fmt.Sprint("layer", i)), "size": 1000 + i}
	}
	img := desc{"schemaVersion": 2, "mediaType": ociManifest,
		"config": desc{"mediaType": ociConfig, "digest": fakeDigest("config"), "size": 100}, "layers": layers}
	children := make([]desc, hugeChildren)
	for i := range children {
		children[i] = desc{"mediaType": ociManifest, "digest": fakeDigest(fmt.Sprint("child", i)), "size": 500,
			"platform": desc{"os": "linux", "architecture": fmt.Sprintf("arch%d", i%50)}}
	}
	idx := desc{"schemaVersion": 2, "mediaType": ociIndex, "manifests": children}
	ann := map[string]string{}
	for i := range hugeAnnotations {
		ann[fmt.Sprintf("org.example.key%05d", i)] = fmt.Sprintf("value %d of many", i)
	}
	anns := desc{"schemaVersion": 2, "mediaType": ociManifest, "artifactType": "application/x.example",
		"config": desc{"mediaType": "application/vnd.oci.empty.v1+json", "digest": fakeDigest("{}"), "size": 2},
		"layers": []desc{}, "annotations": ann}
	out := map[string]storage.Manifest{}
	for name, v := range map[string]desc{"layers": img, "children": idx, "annotations": anns} {
		b, err := json.Marshal(v)
		if err != nil {
			panic(err)
		}
		mt := ociManifest
		if name == "children" {
			mt = ociIndex
		}
		out[name] = storage.Manifest{Digest: sha(b), MediaType: mt, Data: b}
	}
	return out
}

func putHuge(t testing.TB, st storage.Store) map[string]digest.Digest {
	t.Helper()
	ds := map[string]digest.Digest{}
	for name, m := range hugeManifests() {
		if len(m.Data) > 4<<20 {
			t.Fatalf("%s manifest is %d bytes, over the 4 MiB limit", name, len(m.Data))
		}
		if err := st.PutManifest(context.Background(), "huge/"+name, storage.PutManifestRequest{Manifest: m, Tags: []string{"v1"}}); err != nil {
			t.Fatal(err)
		}
		ds[name] = m.Digest
	}
	return ds
}

// discard is a ResponseWriter that counts and drops the body (the server
// writes a page to the network, not to memory).
type discard struct {
	h      http.Header
	status int
	n      atomic.Int64
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) WriteHeader(status int)      { d.status = status }
func (d *discard) Write(b []byte) (int, error) { d.n.Add(int64(len(b))); return len(b), nil }

// heapInUse is the runtime's in-use heap (objects, live or not yet swept,
// and the unused parts of in-use spans): MemStats.HeapInuse, read without
// stopping the world.
func heapInUse(s []metrics.Sample) uint64 {
	metrics.Read(s)
	return s[0].Value.Uint64() + s[1].Value.Uint64()
}

// loadConcurrently renders path n times at once and returns the bytes
// allocated meanwhile (an upper bound of what the loads added to the heap),
// the peak in-use heap above the baseline as sampled meanwhile, and the
// size of one page.
func loadConcurrently(t testing.TB, h http.Handler, path string, n int) (alloc, peak uint64, size int64) {
	t.Helper()
	samples := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/unused:bytes"}}
	runtime.GC()
	runtime.GC()
	base := heapInUse(samples)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)

	stop := make(chan struct{})
	sampled := make(chan uint64)
	go func() {
		var top uint64
		s := []metrics.Sample{{Name: samples[0].Name}, {Name: samples[1].Name}}
		for {
			top = max(top, heapInUse(s))
			select {
			case <-stop:
				sampled <- top
				return
			default:
				runtime.Gosched()
			}
		}
	}()
	start := make(chan struct{})
	var wg sync.WaitGroup
	ws := make([]*discard, n)
	for i := range n {
		ws[i] = &discard{h: http.Header{}}
		wg.Go(func() {
			<-start
			h.ServeHTTP(ws[i], httptest.NewRequest(http.MethodGet, path, nil))
		})
	}
	close(start)
	wg.Wait()
	runtime.ReadMemStats(&after)
	close(stop)
	top := <-sampled
	for _, w := range ws {
		if w.status != http.StatusOK {
			t.Fatalf("GET %s: status %d", path, w.status)
		}
	}
	if top > base {
		peak = top - base
	}
	return after.TotalAlloc - before.TotalAlloc, peak, ws[0].n.Load()
}

// TestManifestPageMemory: six concurrent loads of the page of a huge
// manifest (25,000 layers; an index of 19,000 manifests; 75,000 annotations)
// allocate less than 64 MiB in all, so they cannot add more than that to the
// heap.
func TestManifestPageMemory(t *testing.T) {
	e := newEnv(t, true)
	putHuge(t, e.store)
	sizes := map[string]int{}
	for name, m := range hugeManifests() {
		sizes[name] = len(m.Data)
	}
	for _, name := range []string{"layers", "children", "annotations"} {
		path := "/r/huge/" + name + "/-/manifest/v1"
		loadConcurrently(t, e.ui, path, 1) // warm up (templates, caches)
		alloc, peak, size := loadConcurrently(t, e.ui, path, hugeLoads)
		t.Logf("%s (%.2f MiB): %d concurrent loads allocated %.1f MiB, sampled peak heap +%.1f MiB; one page is %.1f KiB",
			name, float64(sizes[name])/(1<<20), hugeLoads, float64(alloc)/(1<<20), float64(peak)/(1<<20), float64(size)/1024)
		if alloc >= hugeBudget {
			t.Errorf("%s: %d concurrent loads allocated %.1f MiB, want < %d MiB", name, hugeLoads, float64(alloc)/(1<<20), hugeBudget>>20)
		}
	}
}

// TestManifestPagePaginated: long lists of a manifest page come one page at
// a time, say so and link to the others; the raw JSON of a big manifest is
// cut short, says so, and the whole manifest can be downloaded.
func TestManifestPagePaginated(t *testing.T) {
	e := newEnv(t, true)
	ds := putHuge(t, e.store)
	b := e.browser()
	// A layer's row, a child's link (the raw JSON holds digests too).
	layer := func(i int) string { return `title="` + fakeDigest(fmt.Sprint("layer", i)) + `"` }
	child := func(i int) string {
		return `href="/r/huge/children/-/manifest/` + fakeDigest(fmt.Sprint("child", i)) + `"`
	}

	p := b.get("/r/huge/layers/-/manifest/v1")
	p.has(t, "Showing layers 1–100 of 25000 (page 1 of 250)", `href="/r/huge/layers/-/manifest/v1?layers=2"`,
		`href="/r/huge/layers/-/manifest/v1?layers=250"`, layer(0), layer(99),
		`data-testid="raw-cut"`, `href="/r/huge/layers/-/manifest/v1?download=1"`)
	p.lacks(t, layer(100), layer(24999))
	if len(p.body) > 1<<20 {
		t.Fatalf("the page is %d bytes", len(p.body))
	}
	p = b.get("/r/huge/layers/-/manifest/v1?layers=250")
	p.has(t, "Showing layers 24901–25000 of 25000 (page 250 of 250)", layer(24999), `<td class="num">24999</td>`,
		`href="/r/huge/layers/-/manifest/v1?layers=249"`)
	p.lacks(t, layer(24899))
	b.get("/r/huge/layers/-/manifest/v1?layers=251").has(t, "This page is past the end of the 25000 layers.")
	b.get("/r/huge/layers/-/manifest/v1?layers=x").has(t, "Showing layers 1–100 of 25000")

	p = b.get("/r/huge/children/-/manifest/v1?children=3")
	p.has(t, "Showing manifests 201–300 of 19000 (page 3 of 190)", child(200), child(299),
		`href="/r/huge/children/-/manifest/v1?children=4"`, `href="/r/huge/children/-/manifest/v1"`)
	p.lacks(t, child(199), child(300))

	p = b.get("/r/huge/annotations/-/manifest/v1?annotations=2&layers=3")
	p.has(t, "Showing annotations 101–200 of 75000", "org.example.key00100", "org.example.key00199",
		`href="/r/huge/annotations/-/manifest/v1?annotations=3&amp;layers=3"`)
	p.lacks(t, "org.example.key00099<", "org.example.key00200<")

	// The whole manifest, as a download.
	for name, d := range ds {
		resp, err := b.c.Get(e.srv.URL + "/r/huge/" + name + "/-/manifest/" + string(d) + "?download=1")
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || sha(got) != d {
			t.Fatalf("download of %s: status %d, %d bytes", name, resp.StatusCode, len(got))
		}
		if resp.Header.Get("Content-Type") != "application/octet-stream" ||
			!strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment;") {
			t.Fatalf("download of %s: headers %v", name, resp.Header)
		}
	}
}

// TestManifestDownloadDenied: the raw download asks the gate like the page.
func TestManifestDownloadDenied(t *testing.T) {
	e := newEnv(t, false)
	d := e.image("private/app", "amd64", "v1")
	p := e.browser().get("/r/private/app/-/manifest/" + string(d) + "?download=1")
	if p.status != http.StatusForbidden {
		t.Fatalf("anonymous download of a private manifest: status %d", p.status)
	}
}

// TestHighlightJSONIndents: highlightJSON lays JSON out as json.Indent does.
func TestHighlightJSONIndents(t *testing.T) {
	for _, in := range []string{`{"a":1,"b":[],"c":{},"d":[1,{"e":"x\"y"}],"f":true,"g":null,"h":-1.5e3}`, `[]`, `"s"`,
		` { "a" : [ 1 , 2 ] } `} {
		var want bytes.Buffer
		if err := json.Indent(&want, []byte(strings.TrimSpace(in)), "", "  "); err != nil {
			t.Fatal(err)
		}
		h, cut := highlightJSON([]byte(in), 1<<20)
		got := html.UnescapeString(regexp.MustCompile(`</?span[^>]*>`).ReplaceAllString(string(h), ""))
		if cut || got != want.String() {
			t.Errorf("highlightJSON(%s) = %q (cut %v), want %q", in, got, cut, want.String())
		}
	}
}

// TestManifestPageReferrersMemory: the page of a manifest with 20 referrers
// of 3.9 MiB (their descriptors carry the annotations: 80 MB together) and
// 2,000 small ones allocates less than 32 MiB in all, so it cannot add more
// than that to the heap, and still counts every referrer of each kind. (It
// used to load every stored descriptor, annotations and all, at once.)
func TestManifestPageReferrersMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("stores 80 MB of referrers")
	}
	const (
		bigRefs   = 20
		smallRefs = 2000
		budget    = 32 << 20
	)
	e := newEnv(t, true)
	subject := e.image("signed/app", "amd64", "v1")
	subj := desc{"mediaType": ociManifest, "digest": subject, "size": 1}
	put := func(artifactType string, ann map[string]string) {
		m := desc{"schemaVersion": 2, "mediaType": ociManifest, "artifactType": artifactType,
			"config": desc{"mediaType": "application/vnd.oci.empty.v1+json", "digest": fakeDigest("{}"), "size": 2},
			"layers": []desc{}, "subject": subj, "annotations": ann}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		req := storage.PutManifestRequest{Manifest: storage.Manifest{Digest: sha(b), MediaType: ociManifest, Data: b}, Subject: subject,
			Referrer: storage.Descriptor{MediaType: ociManifest, Digest: sha(b), Size: int64(len(b)), ArtifactType: artifactType, Annotations: ann}}
		if err := e.store.PutManifest(context.Background(), "signed/app", req); err != nil {
			t.Fatal(err)
		}
	}
	big := map[string]string{"org.opencontainers.image.created": "2026-01-02T03:04:05Z"}
	for i := 0; len(big) < 3900<<10/64; i++ {
		big[fmt.Sprintf("org.example.note%06d", i)] = strings.Repeat("n", 36)
	}
	for i := range bigRefs {
		big["org.example.which"] = fmt.Sprint(i)
		put("application/vnd.dev.sigstore.bundle.v0.3+json", big)
	}
	for i := range smallRefs {
		put("application/spdx+json", map[string]string{"org.opencontainers.image.created": "2026-01-02T03:04:05Z", "n": fmt.Sprint(i)})
	}

	path := "/r/signed/app/-/manifest/v1"
	loadConcurrently(t, e.ui, path, 1) // warm up (templates, caches)
	alloc, peak, size := loadConcurrently(t, e.ui, path, 1)
	t.Logf("%d referrers of 3.9 MiB and %d small ones: one load allocated %.1f MiB, sampled peak heap +%.1f MiB; the page is %.1f KiB",
		bigRefs, smallRefs, float64(alloc)/(1<<20), float64(peak)/(1<<20), float64(size)/1024)
	if alloc >= budget {
		t.Errorf("one load allocated %.1f MiB, want < %d MiB", float64(alloc)/(1<<20), budget>>20)
	}
	p := e.browser().get(path)
	p.has(t, `Signatures <span class="hint">(20)</span>`, `SBOMs <span class="hint">(2000)</span>`,
		`data-testid="referrers-cut"`, "Only the first 100 of 2000 are shown")
	if n := strings.Count(p.body, `data-testid="referrer-link"`); n != bigRefs+manifestListPage {
		t.Errorf("the page links %d referrers, want %d", n, bigRefs+manifestListPage)
	}
}

// TestManifestPageReferrerGroupsBounded: referrers of more artifact types
// than maxReferrerGroups are counted together under "Other types", last.
func TestManifestPageReferrerGroupsBounded(t *testing.T) {
	e := newEnv(t, true)
	subject := e.image("signed/app", "amd64", "v1")
	for i := range maxReferrerGroups + 8 {
		e.manifest("signed/app", ociManifest, desc{"schemaVersion": 2, "n": i}, subject, fmt.Sprintf("application/x.type%02d", i))
	}
	p := e.browser().get("/r/signed/app/-/manifest/v1")
	if n := strings.Count(p.body, `data-testid="referrer-group"`); n != maxReferrerGroups+1 {
		t.Errorf("%d referrer groups, want %d", n, maxReferrerGroups+1)
	}
	p.has(t, `application/x.type31 <span class="hint">(1)</span>`, `Other types <span class="hint">(8)</span>`)
	p.lacks(t, `application/x.type32 <span class="hint">`)
	if i, j := strings.Index(p.body, "application/x.type31 <span"), strings.Index(p.body, "Other types <span"); i > j {
		t.Error(`"Other types" is not the last group`)
	}
}
