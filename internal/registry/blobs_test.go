package registry_test

import (
	"bytes"
	"crypto/sha512"
	"fmt"
	"net/http"
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestBlobs(t *testing.T) {
	blob := randomBytes(t, 1000)
	d := digest.FromBytes(blob)
	b512 := randomBytes(t, 333)
	d512 := digest.NewDigestFromEncoded(digest.SHA512, fmt.Sprintf("%x", sha512.Sum512(b512)))
	// setup is each subtest's registry: blob in r, and b512 (sha512) in r.
	setup := func(t *testing.T) *env {
		e := newEnv(t)
		if got := e.pushBlob("r", blob); got != d {
			t.Fatalf("pushed blob's digest %s, want %s", got, d)
		}
		e.expect(e.do(req{method: "POST", path: "/v2/r/blobs/uploads/?digest=" + d512.String(), body: b512}), 201, "")
		return e
	}

	cases := []struct {
		name    string
		method  string
		path    string
		hdr     map[string]string
		status  int
		code    string
		body    []byte
		headers map[string]string
	}{
		{name: "get", method: "GET", path: "/v2/r/blobs/" + d.String(), status: 200, body: blob,
			headers: map[string]string{"Docker-Content-Digest": d.String(), "Content-Length": "1000"}},
		{name: "head", method: "HEAD", path: "/v2/r/blobs/" + d.String(), status: 200,
			headers: map[string]string{"Docker-Content-Digest": d.String(), "Content-Length": "1000"}},
		{name: "get sha512", method: "GET", path: "/v2/r/blobs/" + d512.String(), status: 200, body: b512,
			headers: map[string]string{"Docker-Content-Digest": d512.String()}},
		{name: "range first bytes", method: "GET", path: "/v2/r/blobs/" + d.String(), hdr: map[string]string{"Range": "bytes=0-9"},
			status: 206, body: blob[:10], headers: map[string]string{"Content-Range": "bytes 0-9/1000", "Content-Length": "10"}},
		{name: "range open end", method: "GET", path: "/v2/r/blobs/" + d.String(), hdr: map[string]string{"Range": "bytes=990-"},
			status: 206, body: blob[990:], headers: map[string]string{"Content-Range": "bytes 990-999/1000"}},
		{name: "range suffix", method: "GET", path: "/v2/r/blobs/" + d.String(), hdr: map[string]string{"Range": "bytes=-5"},
			status: 206, body: blob[995:], headers: map[string]string{"Content-Range": "bytes 995-999/1000"}},
		{name: "range end clamped", method: "GET", path: "/v2/r/blobs/" + d.String(), hdr: map[string]string{"Range": "bytes=500-5000"},
			status: 206, body: blob[500:]},
		{name: "range beyond end", method: "GET", path: "/v2/r/blobs/" + d.String(), hdr: map[string]string{"Range": "bytes=1000-"},
			status: 416, code: "RANGE_INVALID", headers: map[string]string{"Content-Range": "bytes */1000"}},
		{name: "range malformed", method: "GET", path: "/v2/r/blobs/" + d.String(), hdr: map[string]string{"Range": "bytes=9-1"},
			status: 416, code: "RANGE_INVALID"},
		{name: "multi range serves all", method: "GET", path: "/v2/r/blobs/" + d.String(), hdr: map[string]string{"Range": "bytes=0-1,5-6"},
			status: 200, body: blob},
		{name: "unknown", method: "GET", path: "/v2/r/blobs/sha256:" + zeros64, status: 404, code: "BLOB_UNKNOWN"},
		{name: "head unknown", method: "HEAD", path: "/v2/r/blobs/sha256:" + zeros64, status: 404},
		{name: "other repo", method: "GET", path: "/v2/other/blobs/" + d.String(), status: 404, code: "BLOB_UNKNOWN"},
		{name: "invalid digest", method: "GET", path: "/v2/r/blobs/sha256:xyz", status: 400, code: "DIGEST_INVALID"},
		{name: "unsupported algorithm", method: "GET", path: "/v2/r/blobs/md5:d41d8cd98f00b204e9800998ecf8427e", status: 400, code: "DIGEST_INVALID"},
		{name: "delete unknown", method: "DELETE", path: "/v2/r/blobs/sha256:" + zeros64, status: 404, code: "BLOB_UNKNOWN"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := setup(t)
			r := e.do(req{method: c.method, path: c.path, hdr: c.hdr})
			e.expect(r, c.status, c.code)
			if c.body != nil && !bytes.Equal(r.body, c.body) {
				t.Fatalf("body: got %d bytes, want %d", len(r.body), len(c.body))
			}
			for k, v := range c.headers {
				if got := r.hdr.Get(k); got != v {
					t.Fatalf("%s: %q, want %q", k, got, v)
				}
			}
		})
	}

	t.Run("delete", func(t *testing.T) {
		e := setup(t)
		e.pushBlob("other", blob)
		e.expect(e.do(req{method: "DELETE", path: "/v2/r/blobs/" + d.String()}), http.StatusAccepted, "")
		e.expect(e.do(req{method: "GET", path: "/v2/r/blobs/" + d.String()}), 404, "BLOB_UNKNOWN")
		// Deduplicated content stays visible where it is still linked.
		e.expect(e.do(req{method: "GET", path: "/v2/other/blobs/" + d.String()}), 200, "")
	})
}

func TestBlobEmpty(t *testing.T) {
	e := newEnv(t)
	d := e.pushBlob("r", []byte{})
	r := e.do(req{method: "GET", path: "/v2/r/blobs/" + d.String()})
	e.expect(r, 200, "")
	if len(r.body) != 0 || r.hdr.Get("Content-Length") != "0" {
		t.Fatalf("empty blob: %d bytes, Content-Length %q", len(r.body), r.hdr.Get("Content-Length"))
	}
}
