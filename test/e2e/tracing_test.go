package e2e

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// otlpCollector is an OTLP/HTTP trace receiver keeping what it was sent.
type otlpCollector struct {
	mu    sync.Mutex
	raw   []byte
	spans []*tracepb.Span
}

func (c *otlpCollector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	var req coltracepb.ExportTraceServiceRequest
	if err == nil {
		err = proto.Unmarshal(b, &req)
	}
	if err != nil || r.URL.Path != "/v1/traces" {
		http.Error(w, fmt.Sprint(err), http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	c.raw = append(c.raw, b...)
	for _, h := range r.Header {
		c.raw = append(c.raw, strings.Join(h, ",")...)
	}
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			c.spans = append(c.spans, ss.GetSpans()...)
		}
	}
	c.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
}

func (c *otlpCollector) names() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := map[string]int{}
	for _, s := range c.spans {
		n[s.GetName()]++
	}
	return n
}

// A real berth process with [tracing] on: a go-containerregistry push and
// pull with a workload's OIDC ID token (traded at /token) and with a static
// user's password reach the collector as request spans with authorize,
// authenticate, policy and storage children, plus the issuer fetches; the
// exported bytes hold neither the ID token nor the password, and the
// collector gets the headers of headers_file.
func TestTracingExport(t *testing.T) {
	col := &otlpCollector{}
	cs := httptest.NewServer(col)
	defer cs.Close()
	headers := t.TempDir() + "/otel-headers"
	writeFile(t, headers, []byte("X-Scope-OrgID: registry\n"))
	iss := newIssuer(t)
	p := authBerth(t, iss, fmt.Sprintf("\n[tracing]\nenabled = true\nendpoint = %q\ninsecure = true\nheaders_file = %q\n\n[admin]\nbind_address = \"off\"\n", cs.URL, headers))

	idToken := ciToken(iss, time.Hour)
	if err := pushPull(t, p, "myorg/api", &authn.Basic{Username: "ci", Password: idToken}); err != nil {
		t.Fatal(err)
	}
	if err := pushPull(t, p, "team/app", &authn.Basic{Username: "alice", Password: "secret"}); err != nil {
		t.Fatal(err)
	}
	p.stop() // SIGTERM: berth exports what it buffered before exiting

	names := col.names()
	for _, want := range []string{"GET /token", "PUT put-manifest", "GET get-manifest", "HEAD get-blob", "PATCH patch-upload",
		"authorize", "authenticate", "policy.evaluate", "storage.PutManifest", "storage.CommitUpload", "HTTP GET"} {
		if names[want] == 0 {
			t.Errorf("no %q span; got %v", want, names)
		}
	}
	col.mu.Lock()
	defer col.mu.Unlock()
	if !bytes.Contains(col.raw, []byte("registry")) {
		t.Error("the collector did not get headers_file's header")
	}
	sig := idToken[strings.LastIndexByte(idToken, '.')+1:]
	for _, secret := range []string{idToken, sig, "secret", "Bearer ", "Basic "} {
		if bytes.Contains(col.raw, []byte(secret)) {
			t.Errorf("the export holds %.24q", secret)
		}
	}
	// Parent/child: every authenticate is under an authorize under a
	// request span of the same trace.
	byID := map[string]*tracepb.Span{}
	for _, s := range col.spans {
		byID[hex.EncodeToString(s.GetSpanId())] = s
	}
	n := 0
	for _, s := range col.spans {
		if s.GetName() != "authenticate" {
			continue
		}
		n++
		az := byID[hex.EncodeToString(s.GetParentSpanId())]
		if az == nil || az.GetName() != "authorize" {
			t.Fatalf("authenticate's parent is %v", az)
		}
		req := byID[hex.EncodeToString(az.GetParentSpanId())]
		if req == nil || req.GetKind() != tracepb.Span_SPAN_KIND_SERVER || !bytes.Equal(req.GetTraceId(), s.GetTraceId()) {
			t.Fatalf("authorize's parent is %v", req)
		}
	}
	if n == 0 {
		t.Error("no authenticate span")
	}
}
