package tracing

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/berth-registry/berth/internal/config"
	"github.com/berth-registry/berth/internal/storage"
)

// Off, every decorator returns what it was given: nothing is added to the
// request path.
func TestOffAddsNothing(t *testing.T) {
	tr, err := New(context.Background(), config.Tracing{}, "", nil)
	if err != nil || tr != nil {
		t.Fatalf("New(off) = %v, %v", tr, err)
	}
	h := http.NewServeMux()
	if got := tr.Handler(h); got != http.Handler(h) {
		t.Error("Handler wrapped")
	}
	var s storage.Store = struct{ storage.Store }{}
	if got := tr.Store(s); got != s {
		t.Error("Store wrapped")
	}
	rt := http.DefaultTransport
	if got := tr.Transport(rt); got != rt {
		t.Error("Transport wrapped")
	}
	if tr.Access() != nil || tr.Authorizer(nil) != nil || tr.Shutdown(context.Background()) != nil {
		t.Error("not nil when off")
	}
}

// An upstream call (an OIDC discovery or key-set fetch) is a client span,
// child of the caller's, and the upstream receives its traceparent; the
// URL's query and user info are not recorded.
func TestTransportSpan(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	tr := &Tracer{tp: tp, tr: tp.Tracer(instrumentation)}
	var got string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Get("traceparent")
		w.WriteHeader(http.StatusNotFound)
	}))
	defer up.Close()
	ctx, parent := tr.start(context.Background(), "request")
	c := &http.Client{Transport: tr.Transport(nil)}
	req, _ := http.NewRequestWithContext(ctx, "GET", up.URL+"/.well-known/openid-configuration?secret=x", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if req.Header.Get("traceparent") != "" {
		t.Error("the caller's request was modified")
	}
	parent.End()
	spans := exp.GetSpans()
	if len(spans) != 2 {
		t.Fatalf("%d spans", len(spans))
	}
	cs := spans[0]
	if cs.Name != "HTTP GET" || cs.Parent.SpanID() != parent.SpanContext().SpanID() || cs.SpanKind.String() != "client" {
		t.Errorf("client span %q parent %v kind %v", cs.Name, cs.Parent.SpanID(), cs.SpanKind)
	}
	if want := "00-" + cs.SpanContext.TraceID().String() + "-" + cs.SpanContext.SpanID().String() + "-01"; got != want {
		t.Errorf("upstream got traceparent %q, want %q", got, want)
	}
	for _, kv := range cs.Attributes {
		if kv.Key == "url.full" && kv.Value.AsString() != up.URL+"/.well-known/openid-configuration" {
			t.Errorf("url.full = %q", kv.Value.AsString())
		}
		if kv.Key == "http.response.status_code" && kv.Value.AsInt64() != 404 {
			t.Errorf("status = %d", kv.Value.AsInt64())
		}
	}
	if cs.Status.Code.String() != "Error" {
		t.Errorf("a 404 is not marked failed: %v", cs.Status)
	}
}
