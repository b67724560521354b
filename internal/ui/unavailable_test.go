package ui

import (
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/access"
	"github.com/berth-registry/berth/internal/storage/s3"
)

// TestStorageUnavailable: pages that read an object store nobody answers for
// are 503 with Retry-After, not 500.
func TestStorageUnavailable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	endpoint := "http://" + l.Addr().String()
	l.Close() // connect is refused
	st, err := s3.New(t.Context(), s3.Options{Endpoint: endpoint, Bucket: "b", Region: "us-east-1",
		AccessKeyID: "k", SecretKey: "s", PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	u, err := New(Options{Name: "test registry", Store: st, Gate: access.NewGate(&access.State{}, nil)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(u)
	t.Cleanup(srv.Close)
	d := digest.FromString("x")
	for _, path := range []string{"/", "/r/team/app", "/r/team/app/-/manifest/latest", "/r/team/app/-/manifest/" + d.String(), "/r/team/app/-/blob/" + d.String()} {
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" {
			t.Errorf("GET %s: status %d, Retry-After %q; want 503 with Retry-After", path, res.StatusCode, res.Header.Get("Retry-After"))
		}
	}
}
