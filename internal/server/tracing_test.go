package server

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/protobuf/proto"

	"github.com/berth-registry/berth/internal/config"
	"github.com/berth-registry/berth/internal/storage/fs"
)

// collector is an OTLP/HTTP trace receiver: it decodes each export request
// and keeps its bytes.
type collector struct {
	mu    sync.Mutex
	raw   [][]byte
	spans []*tracepb.Span
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	var req coltracepb.ExportTraceServiceRequest
	if err == nil {
		err = proto.Unmarshal(b, &req)
	}
	if err != nil || r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
		http.Error(w, fmt.Sprintf("bad export %s: %v", r.URL.Path, err), http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	c.raw = append(c.raw, b, []byte(r.Header.Get("X-Collector-Key")))
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			c.spans = append(c.spans, ss.GetSpans()...)
		}
	}
	c.mu.Unlock()
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func attr(s *tracepb.Span, key string) string {
	for _, kv := range s.GetAttributes() {
		if kv.GetKey() == key {
			v := kv.GetValue()
			switch {
			case v.GetStringValue() != "":
				return v.GetStringValue()
			default:
				return fmt.Sprint(v.GetIntValue(), v.GetBoolValue())
			}
		}
	}
	return ""
}

// A real push and pull through a token, with tracing on: the collector gets
// the request spans (children of the client's traceparent) with their
// authorize, authenticate, policy and storage children, and nothing it
// receives holds the password, the token or an Authorization header.
func TestTracingPushPull(t *testing.T) {
	col := &collector{}
	cs := httptest.NewServer(col)
	defer cs.Close()

	const password = "pw-Zq8vX3-secret"
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	st, err := fs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.BlobStore.FS.RootDir = dir
	cfg.Admin.BindAddress = "off"
	cfg.Auth.Identities = []config.Identity{{ID: "alice", Username: "alice", PasswordHash: string(hash)}}
	cfg.Global.AccessPolicy = &config.AccessPolicy{Key: "global.access_policy", Rules: []string{`identity.username == "alice"`}}
	cfg.Tracing = config.Tracing{Enabled: true, Endpoint: cs.URL, Insecure: true, SampleRatio: 1, ServiceName: "berth-test"}
	r := start(t, cfg, st, options{})
	base := "http://" + r.addr

	// The token, as a client gets it.
	req, _ := http.NewRequest("GET", base+"/token?service=berth&scope=repository:team/app:pull,push", nil)
	req.SetBasicAuth("alice", password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		Token string `json:"token"`
	}
	err = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || tok.Token == "" {
		t.Fatalf("GET /token = %d %v", resp.StatusCode, err)
	}

	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	do := func(method, url string, body []byte, hdr map[string]string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, url, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok.Token)
		req.Header.Set("traceparent", "00-"+traceID+"-"+parentID+"-01")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	layer := []byte("layer bytes")
	cfgBlob := []byte(`{"architecture":"amd64","os":"linux"}`)
	for _, b := range [][]byte{layer, cfgBlob} {
		resp := do("POST", base+"/v2/team/app/blobs/uploads/", nil, nil)
		if resp.StatusCode != 202 {
			t.Fatalf("POST upload = %d", resp.StatusCode)
		}
		loc := resp.Header.Get("Location")
		if !strings.HasPrefix(loc, "http") {
			loc = base + loc
		}
		sep := "?"
		if strings.Contains(loc, "?") {
			sep = "&"
		}
		if resp := do("PUT", loc+sep+"digest="+digest.FromBytes(b).String(), b, map[string]string{"Content-Type": "application/octet-stream"}); resp.StatusCode != 201 {
			t.Fatalf("PUT upload = %d", resp.StatusCode)
		}
	}
	m := fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%d}]}`,
		digest.FromBytes(cfgBlob), len(cfgBlob), digest.FromBytes(layer), len(layer))
	if resp := do("PUT", base+"/v2/team/app/manifests/v1", m, map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json"}); resp.StatusCode != 201 {
		t.Fatalf("PUT manifest = %d", resp.StatusCode)
	}
	if resp := do("GET", base+"/v2/team/app/manifests/v1", nil, map[string]string{"Accept": "application/vnd.oci.image.manifest.v1+json"}); resp.StatusCode != 200 {
		t.Fatalf("GET manifest = %d", resp.StatusCode)
	}
	if resp := do("GET", base+"/v2/team/app/blobs/"+digest.FromBytes(layer).String(), nil, nil); resp.StatusCode != 200 {
		t.Fatalf("GET blob = %d", resp.StatusCode)
	}
	// The password itself on the API, and a refused (anonymous) request.
	req, _ = http.NewRequest("GET", base+"/v2/team/app/tags/list", nil)
	req.SetBasicAuth("alice", password)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET tags with basic auth = %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if resp, err := http.Head(base + "/v2/team/app/manifests/v1"); err != nil || resp.StatusCode != 401 {
		t.Fatalf("anonymous HEAD manifest = %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	if err := r.stop(t); err != nil { // exports what is buffered
		t.Fatal(err)
	}
	col.mu.Lock()
	defer col.mu.Unlock()
	if len(col.spans) == 0 {
		t.Fatal("no spans exported")
	}
	all := bytes.Join(col.raw, nil)
	basic := base64.StdEncoding.EncodeToString([]byte("alice:" + password))
	for _, secret := range []string{tok.Token, password, basic, "Bearer", "Basic "} {
		if bytes.Contains(all, []byte(secret)) {
			t.Errorf("the exported spans contain %.20q", secret)
		}
	}
	// No partial token either: its signature alone is a secret.
	if parts := strings.Split(tok.Token, "."); len(parts) == 3 && bytes.Contains(all, []byte(parts[2])) {
		t.Error("the exported spans contain the token's signature")
	}

	byID := map[string]*tracepb.Span{}
	for _, s := range col.spans {
		byID[hex.EncodeToString(s.GetSpanId())] = s
	}
	parent := func(s *tracepb.Span) *tracepb.Span { return byID[hex.EncodeToString(s.GetParentSpanId())] }
	var get *tracepb.Span
	for _, s := range col.spans {
		if s.GetName() == "GET get-manifest" {
			get = s
		}
	}
	if get == nil {
		var names []string
		for _, s := range col.spans {
			names = append(names, s.GetName())
		}
		t.Fatalf("no GET get-manifest span among %v", names)
	}
	if get.GetKind() != tracepb.Span_SPAN_KIND_SERVER || hex.EncodeToString(get.GetTraceId()) != traceID || hex.EncodeToString(get.GetParentSpanId()) != parentID {
		t.Errorf("request span: kind %v trace %x parent %x, want the client's", get.GetKind(), get.GetTraceId(), get.GetParentSpanId())
	}
	for k, want := range map[string]string{"berth.action": "get-manifest", "berth.repository": "team/app", "berth.reference": "v1",
		"http.response.status_code": "200 false", "http.request.method": "GET", "http.route": "/v2/"} {
		if got := attr(get, k); got != want {
			t.Errorf("request span %s = %q, want %q", k, got, want)
		}
	}
	// Its children: authorize (with authenticate and the policy under it)
	// and the storage reads.
	kids := map[string]*tracepb.Span{}
	for _, s := range col.spans {
		if p := parent(s); p != nil {
			if p == get {
				kids[s.GetName()] = s
			}
			if gp := parent(p); gp == get && p.GetName() == "authorize" {
				kids["authorize/"+s.GetName()] = s
			}
		}
	}
	for _, want := range []string{"authorize", "authorize/authenticate", "authorize/policy.evaluate", "storage.ResolveTag", "storage.GetManifest"} {
		if kids[want] == nil {
			t.Errorf("no %s span under the request's (%v)", want, keys(kids))
		}
	}
	if a := kids["authorize/authenticate"]; a != nil && (attr(a, "berth.identity") != "user:alice" || attr(a, "berth.auth.method") != "access-token") {
		t.Errorf("authenticate: identity %q method %q", attr(a, "berth.identity"), attr(a, "berth.auth.method"))
	}
	if p := kids["authorize/policy.evaluate"]; p != nil && attr(p, "berth.policy.allowed") != "0 true" {
		t.Errorf("policy.evaluate allowed = %q", attr(p, "berth.policy.allowed"))
	}
	if s := kids["storage.GetManifest"]; s != nil && attr(s, "berth.repository") != "team/app" {
		t.Errorf("storage span repository = %q", attr(s, "berth.repository"))
	}
	// The refused request: named, its status recorded, its authentication failed.
	var refused *tracepb.Span
	for _, s := range col.spans {
		if s.GetName() == "HEAD get-manifest" {
			refused = s
		}
	}
	if refused == nil || attr(refused, "http.response.status_code") != "401 false" {
		t.Errorf("refused request span: %v", refused)
	}
	for _, s := range col.spans {
		if p := parent(s); p != nil && p == refused && s.GetName() == "authorize" && attr(s, "berth.refusal") != "UNAUTHORIZED" {
			t.Errorf("refused authorize span: refusal %q", attr(s, "berth.refusal"))
		}
	}
	// Pushes and the token request are traced too.
	for _, name := range []string{"PUT put-manifest", "PUT finish-upload", "POST start-upload", "GET /token", "GET list-tags", "storage.PutManifest", "storage.CommitUpload"} {
		found := false
		for _, s := range col.spans {
			found = found || s.GetName() == name
		}
		if !found {
			t.Errorf("no %q span", name)
		}
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
