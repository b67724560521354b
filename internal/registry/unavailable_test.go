package registry_test

import (
	"bufio"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-registry/berth/internal/registry"
	"github.com/berth-registry/berth/internal/storage/s3"
	"github.com/opencontainers/go-digest"
)

// fakeS3 is an object store that is down in one of several ways; it counts
// the requests (or connections) that reach it.
type fakeS3 struct {
	endpoint string
	hits     atomic.Int64
}

// down503 answers every request 503 SlowDown, as S3 does when it sheds load.
func down503(t *testing.T) *fakeS3 {
	f := &fakeS3{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.hits.Add(1)
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusServiceUnavailable)
		if r.Method != http.MethodHead {
			_, _ = w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`))
		}
	}))
	t.Cleanup(srv.Close)
	f.endpoint = srv.URL
	return f
}

// downTCP accepts connections and serves them with serve (which closes them):
// a server that went away mid-connection, or one that never answers.
func downTCP(t *testing.T, serve func(net.Conn)) *fakeS3 {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	f := &fakeS3{endpoint: "http://" + l.Addr().String()}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				// One request per connection: count requests, not connections.
				br := bufio.NewReader(c)
				if _, err := http.ReadRequest(br); err == nil {
					f.hits.Add(1)
				}
				serve(c)
			}()
		}
	}()
	return f
}

// closedPort is an endpoint nothing listens on: connect is refused.
func closedPort(t *testing.T) *fakeS3 {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return &fakeS3{endpoint: "http://" + addr}
}

// TestObjectStoreDown: with the object store down — answering 503, dropping
// connections, never answering or refusing connections — every endpoint that
// reads or writes storage answers 503 UNAVAILABLE with Retry-After, after a
// bounded number of attempts at the store (no retry storm; none after a
// refused connect or a timeout).
func TestObjectStoreDown(t *testing.T) {
	const repo = "team/app"
	blob := []byte("layer bytes")
	bd := digest.FromBytes(blob)
	man := imageManifest([]byte(`{}`), blob, nil)
	md := digest.FromBytes(man)
	id := strings.Repeat("ab", 16) // a well-formed upload id
	octet := map[string]string{"Content-Type": "application/octet-stream"}
	endpoints := []req{
		{method: "GET", path: "/v2/" + repo + "/manifests/latest"},
		{method: "HEAD", path: "/v2/" + repo + "/manifests/latest"},
		{method: "GET", path: "/v2/" + repo + "/manifests/" + md.String()},
		{method: "HEAD", path: "/v2/" + repo + "/manifests/" + md.String()},
		{method: "PUT", path: "/v2/" + repo + "/manifests/latest", body: man,
			hdr: map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json"}},
		{method: "DELETE", path: "/v2/" + repo + "/manifests/" + md.String()},
		{method: "DELETE", path: "/v2/" + repo + "/manifests/latest"},
		{method: "GET", path: "/v2/" + repo + "/blobs/" + bd.String()},
		{method: "HEAD", path: "/v2/" + repo + "/blobs/" + bd.String()},
		{method: "DELETE", path: "/v2/" + repo + "/blobs/" + bd.String()},
		{method: "POST", path: "/v2/" + repo + "/blobs/uploads/"},
		{method: "POST", path: "/v2/" + repo + "/blobs/uploads/?digest=" + bd.String(), body: blob, hdr: octet},
		{method: "POST", path: "/v2/" + repo + "/blobs/uploads/?mount=" + bd.String() + "&from=other/app"},
		{method: "GET", path: "/v2/" + repo + "/blobs/uploads/" + id},
		{method: "PATCH", path: "/v2/" + repo + "/blobs/uploads/" + id, body: blob, hdr: octet},
		{method: "PUT", path: "/v2/" + repo + "/blobs/uploads/" + id + "?digest=" + bd.String(), body: blob, hdr: octet},
		{method: "DELETE", path: "/v2/" + repo + "/blobs/uploads/" + id},
		{method: "GET", path: "/v2/" + repo + "/tags/list"},
		{method: "GET", path: "/v2/_catalog"},
		{method: "GET", path: "/v2/" + repo + "/referrers/" + md.String()},
	}
	cases := []struct {
		name string
		down func(*testing.T) *fakeS3
		opts func(*s3.Options)
		// most is the most requests one registry request may cost at the store.
		most      int64
		uncounted bool
	}{
		{name: "503 SlowDown", down: down503, most: s3.DefaultMaxAttempts},
		{name: "connection dropped", most: s3.DefaultMaxAttempts, down: func(t *testing.T) *fakeS3 {
			return downTCP(t, func(c net.Conn) { c.Close() })
		}},
		{name: "no answer", most: 1, opts: func(o *s3.Options) { o.ResponseHeaderTimeout = 50 * time.Millisecond },
			down: func(t *testing.T) *fakeS3 {
				return downTCP(t, func(c net.Conn) {
					// Hold the connection until the client gives up.
					_, _ = c.Read(make([]byte, 1))
					c.Close()
				})
			}},
		{name: "connection refused", down: closedPort, uncounted: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.down(t)
			o := s3.Options{Endpoint: f.endpoint, Bucket: "b", Region: "us-east-1", AccessKeyID: "k", SecretKey: "s", PathStyle: true}
			if tc.opts != nil {
				tc.opts(&o)
			}
			st, err := s3.New(t.Context(), o)
			if err != nil {
				t.Fatal(err)
			}
			e := newEnvWith(t, registry.Options{Store: st})
			for _, rq := range endpoints {
				before := f.hits.Load()
				r := e.do(rq)
				what := rq.method + " " + rq.path
				if r.status != http.StatusServiceUnavailable {
					t.Fatalf("%s: status %d, want 503; body %s", what, r.status, r.body)
				}
				if ra := r.hdr.Get("Retry-After"); ra == "" {
					t.Errorf("%s: no Retry-After", what)
				}
				if rq.method != "HEAD" {
					var eb struct {
						Errors []struct{ Code string } `json:"errors"`
					}
					if err := json.Unmarshal(r.body, &eb); err != nil || len(eb.Errors) == 0 || eb.Errors[0].Code != "UNAVAILABLE" {
						t.Errorf("%s: body %s, want code UNAVAILABLE", what, r.body)
					}
				}
				n := f.hits.Load() - before
				if !tc.uncounted && (n < 1 || n > tc.most) {
					t.Errorf("%s: %d requests at the object store, want 1..%d", what, n, tc.most)
				}
			}
		})
	}
}

// newEnvWith is newEnv on a given store.
func newEnvWith(t *testing.T, o registry.Options) *env {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/v2/", registry.New(o))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &env{t: t, srv: srv}
}
