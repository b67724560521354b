package ui

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/berth-registry/berth/internal/access"
	"github.com/berth-registry/berth/internal/storage"
	"github.com/berth-registry/berth/internal/storage/fs"
)

// The benchmarks render the repository list over 10,000 repositories and a
// tag list over 10,000 tags, next to the raw storage calls a page makes.
// The stores are built once per process under BERTH_UI_BENCH_DIR (or a
// temporary directory) on the filesystem backend.
//
//	go test ./internal/ui -run '^$' -bench . -benchtime 2s

const benchCount = 10000

var (
	benchOnce  sync.Once
	benchStore storage.Store
	benchErr   error
)

func benchFixture(b *testing.B) storage.Store {
	b.Helper()
	benchOnce.Do(func() {
		dir := os.Getenv("BERTH_UI_BENCH_DIR")
		if dir == "" {
			dir, benchErr = os.MkdirTemp("", "berth-ui-bench-")
			if benchErr != nil {
				return
			}
		}
		var st *fs.Store
		if st, benchErr = fs.New(dir); benchErr != nil {
			return
		}
		benchStore = st
		ctx := context.Background()
		if tags, err := st.ListTags(ctx, "bench/tags", "", -1); err == nil && len(tags) == benchCount {
			return // built by an earlier run
		}
		m := benchManifest("shared")
		// 10,000 repositories with one tag each.
		for i := range benchCount {
			repo := fmt.Sprintf("bench/repos/r%05d", i)
			if benchErr = st.PutManifest(ctx, repo, storage.PutManifestRequest{Manifest: m, Tags: []string{"v1"}}); benchErr != nil {
				return
			}
		}
		// One repository with 10,000 tags.
		tags := make([]string, benchCount)
		for i := range tags {
			tags[i] = fmt.Sprintf("t%05d", i)
		}
		benchErr = st.PutManifest(ctx, "bench/tags", storage.PutManifestRequest{Manifest: m, Tags: tags})
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchStore
}

func benchManifest(name string) storage.Manifest {
	data := fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[],"annotations":{"name":%q}}`, ociManifest, name)
	return storage.Manifest{Digest: sha(data), MediaType: ociManifest, Data: data}
}

// benchUI is an open-mode UI (no authentication; the policy decision is then
// trivial) over the fixture; statsTTL 0 disables the summary cache.
func benchUI(b *testing.B, st storage.Store, statsTTL time.Duration) *UI {
	b.Helper()
	o := Options{Name: "bench", Store: st, Gate: access.NewGate(&access.State{}, nil), StatsTTL: statsTTL}
	u, err := New(o)
	if err != nil {
		b.Fatal(err)
	}
	if statsTTL == 0 {
		u.stats.ttl = 0 // every page recomputes its summaries
	}
	return u
}

func benchGet(b *testing.B, h http.Handler, path string) {
	b.Helper()
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		if w.Code != http.StatusOK {
			b.Fatalf("GET %s: %d\n%s", path, w.Code, w.Body)
		}
	}
}

func BenchmarkRepositoryList(b *testing.B) {
	st := benchFixture(b)
	ctx := context.Background()
	b.Run("store/ListRepositories-26", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := st.ListRepositories(ctx, "bench/repos/r05000", 26); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("store/StatRepository", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := st.StatRepository(ctx, "bench/repos/r05000"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("page/cached", func(b *testing.B) {
		benchGet(b, benchUI(b, st, time.Hour), "/?after=bench/repos/r05000")
	})
	b.Run("page/uncached", func(b *testing.B) {
		benchGet(b, benchUI(b, st, 0), "/?after=bench/repos/r05000")
	})
	b.Run("page/filter", func(b *testing.B) {
		benchGet(b, benchUI(b, st, time.Hour), "/?q=r099")
	})
}

func BenchmarkTagList(b *testing.B) {
	st := benchFixture(b)
	ctx := context.Background()
	b.Run("store/ListTagInfo-26", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := st.ListTagInfo(ctx, "bench/tags", "t05000", 26); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("store/ListTagInfo-all", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := st.ListTagInfo(ctx, "bench/tags", "", -1); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("page/by-name", func(b *testing.B) {
		benchGet(b, benchUI(b, st, time.Hour), "/r/bench/tags?after=t05000")
	})
	b.Run("page/by-date", func(b *testing.B) {
		benchGet(b, benchUI(b, st, time.Hour), "/r/bench/tags?sort=date&page=200")
	})
}
