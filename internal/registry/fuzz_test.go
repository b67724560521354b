package registry

import (
	"net/http/httptest"
	"testing"

	"github.com/berth-registry/berth/internal/oci"
)

func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"bytes=0-9", "bytes=-5", "bytes=5-", "bytes=1-0", "bytes=0-1,2-3", "bytes=99999999999999999999-", "x", ""} {
		f.Add(s, int64(100))
	}
	f.Fuzz(func(t *testing.T, h string, size int64) {
		if size < 0 {
			size = -size
		}
		if size < 0 {
			return
		}
		start, length, ok, err := parseRange(h, size)
		if err != nil || !ok {
			return
		}
		if start < 0 || length <= 0 || start+length > size {
			t.Fatalf("parseRange(%q, %d) = %d, %d out of bounds", h, size, start, length)
		}
	})
}

func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"0-9", "bytes 0-9/10", "bytes 0-9/*", "9-0", "-", "a-b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		start, end, err := parseContentRange(h)
		if err == nil && (start < 0 || end < start) {
			t.Fatalf("parseContentRange(%q) = %d, %d", h, start, end)
		}
	})
}

func FuzzResolve(f *testing.F) {
	for _, s := range []string{"/v2/", "/v2/a/b/manifests/latest", "/v2/a/blobs/uploads/", "/v2/a/blobs/sha256:00",
		"/v2/a/referrers/sha256:00", "/v2/_catalog", "/v2/a/tags/list", "/v2/a%2fb/tags/list", "/v2/../x/blobs/uploads/1"} {
		f.Add("GET", s)
	}
	f.Fuzz(func(t *testing.T, method, path string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.Method = method
		r.URL.Path = path
		r.URL.RawPath = ""
		rt, err := resolve(r)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error is %T", err)
			}
			return
		}
		if rt.Repo != "" && !oci.ValidRepo(rt.Repo) {
			t.Fatalf("invalid name routed: %q", rt.Repo)
		}
		if rt.Action == "" {
			t.Fatal("no action")
		}
	})
}

func FuzzParseDigest(f *testing.F) {
	for _, s := range []string{"sha256:" + string(make([]byte, 0)), "sha512:00", "md5:00", "sha256:0000000000000000000000000000000000000000000000000000000000000000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseDigest(s)
		if err == nil && d.Validate() != nil {
			t.Fatalf("invalid digest accepted: %q", s)
		}
	})
}
