package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// gcMetrics are the garbage collector's (in-server schedule).
type gcMetrics struct {
	runs      *prometheus.CounterVec
	blobs     prometheus.Counter
	bytes     prometheus.Counter
	manifests prometheus.Counter
	duration  prometheus.Gauge
}

func newGCMetrics() gcMetrics {
	return gcMetrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_gc_runs_total",
			Help: "Garbage collection runs, by result (ok or error).",
		}, []string{"result"}),
		blobs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_gc_blobs_deleted_total",
			Help: "Blob contents deleted by garbage collection.",
		}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_gc_bytes_freed_total",
			Help: "Bytes freed by garbage collection: blob content and stale temporary files.",
		}),
		manifests: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_gc_manifests_deleted_total",
			Help: "Untagged manifests unlinked by garbage collection.",
		}),
		duration: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "berth_gc_last_run_duration_seconds",
			Help: "Duration of the last garbage collection run.",
		}),
	}
}

// ObserveGC records one garbage collection run.
func (m *Metrics) ObserveGC(blobs int, bytes int64, manifests int, dur time.Duration, err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.gc.runs.WithLabelValues("error").Inc()
		return
	}
	m.gc.runs.WithLabelValues("ok").Inc()
	m.gc.blobs.Add(float64(blobs))
	m.gc.bytes.Add(float64(bytes))
	m.gc.manifests.Add(float64(manifests))
	m.gc.duration.Set(dur.Seconds())
}
