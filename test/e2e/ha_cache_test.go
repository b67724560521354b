package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/crypto/bcrypt"

	"github.com/berth-registry/berth/internal/redistest"
)

// TestTwoReplicasManifestCache: each replica caches manifest reads; a tag
// moved and a manifest deleted through replica A are seen on replica B
// through the Redis invalidations. The cache TTL is an hour, so nothing but
// the invalidation can change B's answer within the test; on the replica
// that served the write the answer changes before the write is
// acknowledged.
func TestTwoReplicasManifestCache(t *testing.T) {
	endpoint, _ := startVersitygw(t)
	rs := redistest.Start(t)
	iss := newIssuer(t)
	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	prefix := fmt.Sprintf("hac-%d", time.Now().UnixNano())
	cfg := func(port int) string {
		return strings.Replace(haConfig(port, endpoint, prefix, rs.URL(), iss.URL(), string(hash)),
			"[cache.redis]", "[cache]\nmanifest_ttl = \"1h\"\n\n[cache.redis]", 1)
	}
	a := startBerthS3(t, t.TempDir(), cfg)
	b := startBerthS3(t, t.TempDir(), cfg)
	alice := &authn.Basic{Username: "alice", Password: "secret"}
	basic := map[string]string{"Authorization": "Basic YWxpY2U6c2VjcmV0"} // alice:secret

	push := func() string {
		img, err := random.Image(1024, 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(mustRef(t, a.host()+"/hac/app:v1"), img, remote.WithAuth(alice)); err != nil {
			t.Fatalf("push through A: %v", err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d.String()
	}
	get := func(p *berthProc, method, ref string) (int, string) {
		resp, _ := doReq(t, method, p.url("/v2/hac/app/manifests/"+ref), nil, basic)
		return resp.StatusCode, resp.Header.Get("Docker-Content-Digest")
	}
	// eventually polls B until cond holds; the bound (10 s) is far below the
	// TTL, so only an invalidation message can satisfy it.
	eventually := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); {
			if time.Now().After(deadline) {
				t.Fatalf("replica B: %s not seen within 10s (manifest_ttl is 1h: the invalidation was not delivered)", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	d1 := push()
	for _, p := range []*berthProc{a, b} { // both replicas cache v1 → d1 and d1
		for _, m := range []string{"GET", "HEAD"} {
			if s, d := get(p, m, "v1"); s != 200 || d != d1 {
				t.Fatalf("%s v1: %d %s, want %s", m, s, d, d1)
			}
			if s, _ := get(p, m, d1); s != 200 {
				t.Fatalf("%s %s: %d", m, d1, s)
			}
		}
	}

	// The tag moves through A: A answers the new digest at once, B soon.
	d2 := push()
	if s, d := get(a, "GET", "v1"); s != 200 || d != d2 {
		t.Fatalf("A after the push: v1 → %d %s, want %s", s, d, d2)
	}
	eventually("the moved tag", func() bool { _, d := get(b, "GET", "v1"); return d == d2 })

	// d1 is deleted through A: A never serves it again; B stops soon.
	resp, body := doReq(t, "DELETE", a.url("/v2/hac/app/manifests/"+d1), nil, basic)
	wantStatus(t, "delete d1 through A", resp, body, http.StatusAccepted)
	for _, m := range []string{"GET", "HEAD"} {
		if s, _ := get(a, m, d1); s != 404 {
			t.Fatalf("A serves the manifest it deleted: %s %d", m, s)
		}
	}
	eventually("the deleted manifest", func() bool {
		s1, _ := get(b, "GET", d1)
		s2, _ := get(b, "HEAD", d1)
		return s1 == 404 && s2 == 404
	})
	// The tag deleted through B disappears on A.
	resp, body = doReq(t, "DELETE", b.url("/v2/hac/app/manifests/v1"), nil, basic)
	wantStatus(t, "delete v1 through B", resp, body, http.StatusAccepted)
	eventually("the deleted tag (on A)", func() bool { s, _ := get(a, "GET", "v1"); return s == 404 })
}
