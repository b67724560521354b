package metrics_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/berth-registry/berth/internal/metrics"
)

func TestObserveGC(t *testing.T) {
	m := metrics.New()
	m.ObserveGC(3, 1000, 1, 2*time.Second, nil)
	m.ObserveGC(0, 0, 0, 0, errors.New("boom"))
	out := scrape(t, m)
	for _, want := range []string{
		`berth_gc_runs_total{result="ok"} 1`,
		`berth_gc_runs_total{result="error"} 1`,
		`berth_gc_blobs_deleted_total 3`,
		`berth_gc_bytes_freed_total 1000`,
		`berth_gc_manifests_deleted_total 1`,
		`berth_gc_last_run_duration_seconds 2`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	var nilM *metrics.Metrics
	nilM.ObserveGC(1, 1, 1, time.Second, nil) // no panic
}
