package oidc

import (
	"context"
	"net/http"
	"sync"
	"testing"

	"github.com/berth-registry/berth/internal/devissuer"
)

// recordingTransport records the paths it fetches.
type recordingTransport struct {
	next  http.RoundTripper
	mu    sync.Mutex
	paths []string
}

func (r *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.paths = append(r.paths, req.URL.Path)
	r.mu.Unlock()
	return r.next.RoundTrip(req)
}

// Options.WrapTransport wraps the discovery and key-set fetches. (They run
// on the Verifier's context, shared by the requests waiting for them, so a
// tracing transport makes them traces of their own.)
func TestWrapTransport(t *testing.T) {
	iss := newIssuer(t, devissuer.Options{})
	rec := &recordingTransport{}
	v := newVerifier(t, Options{WrapTransport: func(rt http.RoundTripper) http.RoundTripper {
		rec.next = rt
		return rec
	}}, ProviderConfig{Name: "gen", Issuer: iss.URL(), Audiences: []string{"berth"}})
	if _, err := v.Verify(context.Background(), iss.Mint(map[string]any{"sub": "alice", "aud": "berth"})); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.paths) < 2 || rec.paths[0] != "/.well-known/openid-configuration" {
		t.Errorf("wrapped transport fetched %v", rec.paths)
	}
}
