package metrics_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-registry/berth/internal/metrics"
)

// recorder is the interface the registry consumes (registry.Options.Metrics).
type recorder interface {
	ObserveRequest(action string, status int, dur time.Duration, bytesIn, bytesOut int64)
	UploadStarted()
	UploadFinished()
}

var _ recorder = (*metrics.Metrics)(nil)

func scrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics = %d", rec.Code)
	}
	body, _ := io.ReadAll(rec.Body)
	return string(body)
}

func TestObserveRequest(t *testing.T) {
	m := metrics.New()
	m.ObserveRequest("pull-manifest", 200, 30*time.Millisecond, 0, 1000)
	m.ObserveRequest("pull-manifest", 200, 2*time.Second, 0, 500)
	m.ObserveRequest("pull-manifest", 404, time.Millisecond, 0, 100)
	m.ObserveRequest("push-blob", 201, 90*time.Second, 4096, 0)
	m.ObserveRequest("push-blob", 400, time.Millisecond, -1, -1) // unknown sizes are not added

	body := scrape(t, m)
	for _, want := range []string{
		`berth_http_requests_total{action="pull-manifest",code="200"} 2`,
		`berth_http_requests_total{action="pull-manifest",code="404"} 1`,
		`berth_http_requests_total{action="push-blob",code="201"} 1`,
		`berth_http_requests_total{action="push-blob",code="400"} 1`,
		`berth_http_request_duration_seconds_count{action="pull-manifest"} 3`,
		`berth_http_request_duration_seconds_bucket{action="pull-manifest",le="0.05"} 2`,
		`berth_http_request_duration_seconds_bucket{action="push-blob",le="60"} 1`,
		`berth_http_request_duration_seconds_bucket{action="push-blob",le="120"} 2`,
		`berth_http_request_bytes_total{action="push-blob"} 4096`,
		`berth_http_request_bytes_total{action="pull-manifest"} 0`,
		`berth_http_response_bytes_total{action="pull-manifest"} 1600`,
		`berth_http_response_bytes_total{action="push-blob"} 0`,
		`berth_uploads_in_progress 0`,
		"# TYPE berth_http_request_duration_seconds histogram",
		"go_goroutines ",
		"go_memstats_alloc_bytes ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
}

func TestProcessCollector(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("process metrics need procfs")
	}
	body := scrape(t, metrics.New())
	for _, want := range []string{"process_start_time_seconds ", "process_resident_memory_bytes "} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
}

func TestUploadsInProgress(t *testing.T) {
	m := metrics.New()
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(m.UploadStarted)
	}
	wg.Wait()
	m.UploadFinished()
	m.UploadFinished()
	if body := scrape(t, m); !strings.Contains(body, "berth_uploads_in_progress 8") {
		t.Errorf("uploads gauge: want 8 in\n%s", grep(body, "berth_uploads"))
	}
}

// Each Metrics has its own registry: two never share counts, and New can be
// called any number of times (no duplicate registration panics).
func TestIndependentRegistries(t *testing.T) {
	a, b := metrics.New(), metrics.New()
	a.ObserveRequest("ping", 200, time.Millisecond, 0, 2)
	if strings.Contains(scrape(t, b), `action="ping"`) {
		t.Error("b sees a's observation")
	}
	if !strings.Contains(scrape(t, a), `berth_http_requests_total{action="ping",code="200"} 1`) {
		t.Error("a lost its observation")
	}
}

func TestNilMetrics(t *testing.T) {
	var m *metrics.Metrics
	m.ObserveRequest("ping", 200, 0, 0, 0)
	m.UploadStarted()
	m.UploadFinished()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("nil Handler = %d, want 404", rec.Code)
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
