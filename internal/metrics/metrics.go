// Package metrics holds berth's Prometheus collectors.
//
// Every collector lives on a private prometheus.Registry owned by a Metrics
// value: there are no package globals and no init, so tests (and several
// servers in one process) never share counters.
//
//	m := metrics.New()
//	m.ObserveRequest("pull-manifest", 200, 3*time.Millisecond, 0, 1234)
//	mux.Handle("GET /metrics", m.Handler())
//
// Label values MUST come from a small fixed set (the router's typed actions
// and HTTP status codes), never from repository names, tags or digests, which
// are unbounded and would blow up the series count.
package metrics

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics records registry activity. Its methods are safe for concurrent use
// and do nothing on a nil *Metrics.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	bytesIn  *prometheus.CounterVec
	bytesOut *prometheus.CounterVec
	uploads  prometheus.Gauge
	gc       gcMetrics
	// byLabels holds each (action, status)'s series once looked up:
	// requestKey → *requestSeries. The label values are a small fixed set,
	// so it stays small; a hit costs one map read instead of four label
	// hashes and lookups.
	byLabels sync.Map
}

type requestKey struct {
	action string
	status int
}

type requestSeries struct {
	requests, bytesIn, bytesOut prometheus.Counter
	duration                    prometheus.Observer
}

// New returns a Metrics with its collectors, plus the Go runtime and process
// collectors, registered on a fresh registry.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_http_requests_total",
			Help: "HTTP requests served, by registry action and status code.",
		}, []string{"action", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "berth_http_request_duration_seconds",
			Help: "Time to serve an HTTP request, by registry action.",
			// Up to 10 minutes: blob transfers are long.
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600},
		}, []string{"action"}),
		bytesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_http_request_bytes_total",
			Help: "Request body bytes received, by registry action.",
		}, []string{"action"}),
		bytesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_http_response_bytes_total",
			Help: "Response body bytes sent, by registry action.",
		}, []string{"action"}),
		uploads: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "berth_uploads_in_progress",
			Help: "Blob upload requests being received right now.",
		}),
	}
	m.gc = newGCMetrics()
	m.reg.MustRegister(
		m.requests, m.duration, m.bytesIn, m.bytesOut, m.uploads,
		m.gc.runs, m.gc.blobs, m.gc.bytes, m.gc.manifests, m.gc.duration,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// ObserveRequest records one served request. Negative byte counts (unknown)
// are not added.
func (m *Metrics) ObserveRequest(action string, status int, dur time.Duration, bytesIn, bytesOut int64) {
	if m == nil {
		return
	}
	k := requestKey{action, status}
	v, ok := m.byLabels.Load(k)
	if !ok {
		v, _ = m.byLabels.LoadOrStore(k, &requestSeries{
			requests: m.requests.WithLabelValues(action, strconv.Itoa(status)),
			duration: m.duration.WithLabelValues(action),
			bytesIn:  m.bytesIn.WithLabelValues(action),
			bytesOut: m.bytesOut.WithLabelValues(action),
		})
	}
	s := v.(*requestSeries)
	s.requests.Inc()
	s.duration.Observe(dur.Seconds())
	if bytesIn > 0 {
		s.bytesIn.Add(float64(bytesIn))
	}
	if bytesOut > 0 {
		s.bytesOut.Add(float64(bytesOut))
	}
}

// UploadStarted marks the start of an upload request; pair it with UploadFinished.
func (m *Metrics) UploadStarted() {
	if m != nil {
		m.uploads.Inc()
	}
}

// UploadFinished marks the end of an upload request.
func (m *Metrics) UploadFinished() {
	if m != nil {
		m.uploads.Dec()
	}
}

// Handler serves the metrics in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Gatherer exposes the registry, for tests and for embedding into another
// exposition.
func (m *Metrics) Gatherer() prometheus.Gatherer {
	return m.reg
}
