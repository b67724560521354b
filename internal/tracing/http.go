package tracing

import (
	"io"
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Handler returns next with a server span around every request: a child of
// the request's traceparent when it has one. Off (nil t): next itself.
func (t *Tracer) Handler(next http.Handler) http.Handler {
	if t == nil {
		return next
	}
	return &handler{t: t, next: next}
}

type handler struct {
	t    *Tracer
	next http.Handler
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := h.t.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	rt := route(r.URL.Path)
	ctx, span := h.t.tr.Start(ctx, r.Method+" "+rt, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(
			attribute.String("http.request.method", r.Method),
			attribute.String("http.route", rt),
			attribute.String("client.address", r.RemoteAddr),
		))
	sw := &statusWriter{ResponseWriter: w}
	defer func() {
		status := sw.status
		if status == 0 {
			status = http.StatusOK
		}
		span.SetAttributes(attribute.Int("http.response.status_code", status))
		if status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(status))
		}
		span.End()
	}()
	h.next.ServeHTTP(sw, r.WithContext(ctx))
}

// route is the request's low-cardinality route: never the path itself
// (repository names, digests, upload ids). The registry's authorizer names
// /v2/ requests by their action.
func route(p string) string {
	switch {
	case strings.HasPrefix(p, "/v2/") || p == "/v2":
		return "/v2/"
	case p == "/token" || strings.HasPrefix(p, "/token/"):
		return "/token"
	case p == "/healthz" || p == "/readyz" || p == "/metrics":
		return p
	}
	return "/" // the web UI, or nothing
}

// statusWriter records the status; it keeps the writer's sendfile path
// (ReadFrom), Flush, and http.ResponseController's access (Unwrap).
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) ReadFrom(src io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(struct{ io.Writer }{w.ResponseWriter}, src)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Transport returns rt with a client span around every request, whose
// traceparent it sends. Off (nil t): rt itself.
func (t *Tracer) Transport(rt http.RoundTripper) http.RoundTripper {
	if t == nil {
		return rt
	}
	if rt == nil {
		rt = http.DefaultTransport
	}
	return &transport{t: t, next: rt}
}

type transport struct {
	t    *Tracer
	next http.RoundTripper
}

func (tr *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	// The URL without its query or user info: the discovery and key-set
	// URLs hold no secret, but a query could.
	u := req.URL.Scheme + "://" + req.URL.Host + req.URL.Path
	ctx, span := tr.t.tr.Start(req.Context(), "HTTP "+req.Method, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			attribute.String("http.request.method", req.Method),
			attribute.String("server.address", req.URL.Hostname()),
			attribute.String("url.full", u),
		))
	req = req.Clone(ctx)
	tr.t.prop.Inject(ctx, propagation.HeaderCarrier(req.Header))
	resp, err := tr.next.RoundTrip(req)
	if err == nil {
		span.SetAttributes(attribute.Int("http.response.status_code", resp.StatusCode))
		if resp.StatusCode >= 400 {
			span.SetStatus(codes.Error, resp.Status)
		}
	}
	end(span, err)
	return resp, err
}
