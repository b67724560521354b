package registry_test

import (
	"fmt"
	"io"
	"net/http"
	"runtime"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	"github.com/berth-registry/berth/internal/s3test"
)

// referrersMemLimit is what one referrers GET may add to the heap, whatever
// the number and size of the referrers.
const referrersMemLimit = 32 << 20

// measureGET runs one GET of url (the body read and discarded) and returns
// the bytes the whole process allocated meanwhile — an upper bound of what
// the request added to the peak heap, whatever the GC did — and the peak
// growth of live heap objects seen by sampling (for the record).
func measureGET(t *testing.T, client *http.Client, url string) (allocated, peak uint64, status int, link string) {
	t.Helper()
	runtime.GC()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(sample)
	base := sample[0].Value.Uint64()
	var (
		mu   sync.Mutex
		high = base
		stop = make(chan struct{})
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		tick := time.NewTicker(200 * time.Microsecond)
		defer tick.Stop()
		for {
			metrics.Read(s)
			mu.Lock()
			high = max(high, s[0].Value.Uint64())
			mu.Unlock()
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	res, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, res.Body); err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	runtime.ReadMemStats(&after)
	close(stop)
	<-done
	mu.Lock()
	defer mu.Unlock()
	return after.TotalAlloc - before.TotalAlloc, high - base, res.StatusCode, res.Header.Get("Link")
}

// TestReferrersMemoryBounded: one referrers GET raises the peak heap by less
// than 32 MiB (sampled; on the filesystem backend it even allocates less than
// that in all, which bounds the peak without sampling), over 20 referrers of 3.9 MiB (their
// descriptors carry the annotations: 80 MB together) and over more small
// referrers than a page holds. Before pagination the first GET returned all
// 80 MB and allocated several times that.
func TestReferrersMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("pushes 80 MB of manifests")
	}
	e := newEnv(t)
	f := newReferrerFixture(e)
	for i := range 20 {
		f.push("application/vnd.example.big", fmt.Sprint(i), 3900<<10)
	}
	// 1010 small ones: more than the default page of 1000 entries.
	for i := range 1010 {
		f.push("application/vnd.example.small", fmt.Sprint("s", i), 64)
	}
	base := e.srv.URL + "/v2/r/referrers/" + f.subject.digest.String()
	for _, q := range []string{"", "?artifactType=application/vnd.example.big", "?artifactType=application/vnd.example.small"} {
		url := base + q
		pages := 0
		var worst, worstPeak uint64
		for url != "" {
			allocated, peak, status, link := measureGET(t, e.srv.Client(), url)
			if status != http.StatusOK {
				t.Fatalf("GET %s: %d", url, status)
			}
			t.Logf("GET %s: allocated %.1f MiB, peak heap +%.1f MiB", url[len(base):], float64(allocated)/(1<<20), float64(peak)/(1<<20))
			if peak >= referrersMemLimit {
				t.Fatalf("GET %s raised the heap by %d bytes (limit %d)", url, peak, referrersMemLimit)
			}
			// On the filesystem even everything allocated stays under the
			// limit, a bound of the peak that no sampling can miss. (On S3 the
			// SDK's per-object garbage adds up over a page of 1000 small
			// referrers, while the peak stays small.)
			if !s3test.OnS3() && allocated >= referrersMemLimit {
				t.Fatalf("GET %s allocated %d bytes (limit %d)", url, allocated, referrersMemLimit)
			}
			worst, worstPeak = max(worst, allocated), max(worstPeak, peak)
			pages++
			if link == "" {
				break
			}
			url = e.srv.URL + nextLink(t, http.Header{"Link": {link}})
			if pages > 2000 {
				t.Fatal("the pages do not end")
			}
		}
		t.Logf("artifactType filter %q: %d pages, worst page allocated %.1f MiB, peak heap +%.1f MiB", q, pages, float64(worst)/(1<<20), float64(worstPeak)/(1<<20))
	}
}
