package registry_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/berth-registry/berth/internal/registry"
	"github.com/opencontainers/go-digest"
)

// startSession opens an upload session and returns its Location path.
func (e *env) startSession(repo string) string {
	e.t.Helper()
	r := e.do(req{method: "POST", path: "/v2/" + repo + "/blobs/uploads/"})
	e.expect(r, http.StatusAccepted, "")
	loc := r.hdr.Get("Location")
	if !strings.HasPrefix(loc, "/v2/"+repo+"/blobs/uploads/") || r.hdr.Get("Docker-Upload-UUID") == "" {
		e.t.Fatalf("bad session headers: %v", r.hdr)
	}
	if r.hdr.Get("Range") != "0-0" {
		e.t.Fatalf("new session Range %q", r.hdr.Get("Range"))
	}
	return loc
}

func withQuery(loc, q string) string {
	if strings.Contains(loc, "?") {
		return loc + "&" + q
	}
	return loc + "?" + q
}

func TestChunkedUpload(t *testing.T) {
	e := newEnv(t)
	blob := randomBytes(t, 3000)
	d := digest.FromBytes(blob)
	loc := e.startSession("r")

	// chunk 1
	r := e.do(req{method: "PATCH", path: loc, body: blob[:1000], hdr: map[string]string{"Content-Range": "0-999", "Content-Type": "application/octet-stream"}})
	e.expect(r, 202, "")
	if r.hdr.Get("Range") != "0-999" || r.hdr.Get("Location") == "" {
		t.Fatalf("after chunk 1: Range %q Location %q", r.hdr.Get("Range"), r.hdr.Get("Location"))
	}
	loc = r.hdr.Get("Location")

	// out of order chunk: 416 with the real Range and Location
	r = e.do(req{method: "PATCH", path: loc, body: blob[2000:], hdr: map[string]string{"Content-Range": "2000-2999"}})
	e.expect(r, http.StatusRequestedRangeNotSatisfiable, "BLOB_UPLOAD_INVALID")
	if r.hdr.Get("Range") != "0-999" || r.hdr.Get("Location") == "" {
		t.Fatalf("416: Range %q Location %q", r.hdr.Get("Range"), r.hdr.Get("Location"))
	}
	// repeated chunk (already received) is out of order too
	e.expect(e.do(req{method: "PATCH", path: loc, body: blob[:1000], hdr: map[string]string{"Content-Range": "0-999"}}), 416, "BLOB_UPLOAD_INVALID")
	// Content-Range disagreeing with the body length
	e.expect(e.do(req{method: "PATCH", path: loc, body: blob[1000:1500], hdr: map[string]string{"Content-Range": "1000-1999"}}), 416, "BLOB_UPLOAD_INVALID")
	// malformed Content-Range
	e.expect(e.do(req{method: "PATCH", path: loc, body: blob[1000:1500], hdr: map[string]string{"Content-Range": "x-y"}}), 416, "BLOB_UPLOAD_INVALID")

	// status
	r = e.do(req{method: "GET", path: loc})
	e.expect(r, 204, "")
	if r.hdr.Get("Range") != "0-999" {
		t.Fatalf("status Range %q", r.hdr.Get("Range"))
	}

	// chunk 2 streamed without Content-Range (chunked transfer encoding)
	r = e.do(req{method: "PATCH", path: loc, body: blob[1000:2000], chunked: true})
	e.expect(r, 202, "")
	if r.hdr.Get("Range") != "0-1999" {
		t.Fatalf("after chunk 2: Range %q", r.hdr.Get("Range"))
	}

	// final chunk in the PUT
	r = e.do(req{method: "PUT", path: withQuery(loc, "digest="+d.String()), body: blob[2000:], hdr: map[string]string{"Content-Range": "2000-2999"}})
	e.expect(r, 201, "")
	if r.hdr.Get("Location") != "/v2/r/blobs/"+d.String() || r.hdr.Get("Docker-Content-Digest") != d.String() {
		t.Fatalf("PUT headers %v", r.hdr)
	}
	r = e.do(req{method: "GET", path: "/v2/r/blobs/" + d.String()})
	e.expect(r, 200, "")
	if !bytes.Equal(r.body, blob) {
		t.Fatal("blob differs")
	}
	// the session is gone
	e.expect(e.do(req{method: "GET", path: loc}), 404, "BLOB_UPLOAD_UNKNOWN")
}

func TestUploadErrors(t *testing.T) {
	// Each subtest has a registry of its own.
	setup := func(t *testing.T) *env { return newEnv(t, func(o *registry.Options) { o.MaxBlobSize = 4096 }) }
	blob := randomBytes(t, 100)
	d := digest.FromBytes(blob)
	wrong := digest.FromString("something else")

	t.Run("digest mismatch stores nothing", func(t *testing.T) {
		e := setup(t)
		loc := e.startSession("r")
		e.expect(e.do(req{method: "PATCH", path: loc, body: blob}), 202, "")
		e.expect(e.do(req{method: "PUT", path: withQuery(loc, "digest="+wrong.String())}), 400, "DIGEST_INVALID")
		e.expect(e.do(req{method: "HEAD", path: "/v2/r/blobs/" + wrong.String()}), 404, "")
		e.expect(e.do(req{method: "HEAD", path: "/v2/r/blobs/" + d.String()}), 404, "")
	})
	t.Run("monolithic mismatch", func(t *testing.T) {
		e := setup(t)
		e.expect(e.do(req{method: "POST", path: "/v2/r/blobs/uploads/?digest=" + wrong.String(), body: blob}), 400, "DIGEST_INVALID")
		e.expect(e.do(req{method: "HEAD", path: "/v2/r/blobs/" + wrong.String()}), 404, "")
	})
	t.Run("monolithic PUT after POST", func(t *testing.T) {
		e := setup(t)
		loc := e.startSession("r")
		e.expect(e.do(req{method: "PUT", path: withQuery(loc, "digest="+d.String()), body: blob}), 201, "")
		e.expect(e.do(req{method: "HEAD", path: "/v2/r/blobs/" + d.String()}), 200, "")
	})
	t.Run("put without digest", func(t *testing.T) {
		e := setup(t)
		loc := e.startSession("r")
		e.expect(e.do(req{method: "PUT", path: loc, body: blob}), 400, "DIGEST_INVALID")
	})
	t.Run("put with invalid digest", func(t *testing.T) {
		e := setup(t)
		loc := e.startSession("r")
		e.expect(e.do(req{method: "PUT", path: withQuery(loc, "digest=sha256:nothex")}), 400, "DIGEST_INVALID")
	})
	t.Run("unknown session", func(t *testing.T) {
		e := setup(t)
		for _, m := range []string{"GET", "PATCH", "PUT", "DELETE"} {
			e.expect(e.do(req{method: m, path: "/v2/r/blobs/uploads/0123456789abcdef0123456789abcdef?digest=" + d.String()}), 404, "BLOB_UPLOAD_UNKNOWN")
		}
		e.expect(e.do(req{method: "GET", path: "/v2/r/blobs/uploads/../../etc"}), 404, "")
	})
	t.Run("session of another repository", func(t *testing.T) {
		e := setup(t)
		loc := e.startSession("r")
		other := strings.Replace(loc, "/v2/r/", "/v2/s/", 1)
		e.expect(e.do(req{method: "GET", path: other}), 404, "BLOB_UPLOAD_UNKNOWN")
	})
	t.Run("cancel", func(t *testing.T) {
		e := setup(t)
		loc := e.startSession("r")
		e.expect(e.do(req{method: "DELETE", path: loc}), 204, "")
		e.expect(e.do(req{method: "GET", path: loc}), 404, "BLOB_UPLOAD_UNKNOWN")
	})
	t.Run("too large declared", func(t *testing.T) {
		e := setup(t)
		big := randomBytes(t, 5000)
		e.expect(e.do(req{method: "POST", path: "/v2/r/blobs/uploads/?digest=" + digest.FromBytes(big).String(), body: big}), 413, "SIZE_INVALID")
	})
	t.Run("too large streamed", func(t *testing.T) {
		e := setup(t)
		loc := e.startSession("r")
		big := randomBytes(t, 5000)
		e.expect(e.do(req{method: "PATCH", path: loc, body: big, chunked: true}), 413, "SIZE_INVALID")
	})
	t.Run("exactly at the limit", func(t *testing.T) {
		e := setup(t)
		b := randomBytes(t, 4096)
		loc := e.startSession("r")
		e.expect(e.do(req{method: "PATCH", path: loc, body: b, chunked: true}), 202, "")
		e.expect(e.do(req{method: "PUT", path: withQuery(loc, "digest="+digest.FromBytes(b).String())}), 201, "")
	})
}

func TestMount(t *testing.T) {
	e := newEnv(t)
	blob := randomBytes(t, 100)
	d := e.pushBlob("src", blob)

	r := e.do(req{method: "POST", path: "/v2/dst/blobs/uploads/?mount=" + d.String() + "&from=src"})
	e.expect(r, 201, "")
	if r.hdr.Get("Location") != "/v2/dst/blobs/"+d.String() || r.hdr.Get("Docker-Content-Digest") != d.String() {
		t.Fatalf("mount headers %v", r.hdr)
	}
	e.expect(e.do(req{method: "GET", path: "/v2/dst/blobs/" + d.String()}), 200, "")

	// Missing in from: falls back to an upload session.
	missing := digest.FromString("missing")
	r = e.do(req{method: "POST", path: "/v2/dst2/blobs/uploads/?mount=" + missing.String() + "&from=src"})
	e.expect(r, 202, "")
	if r.hdr.Get("Location") == "" {
		t.Fatal("fallback has no Location")
	}
	// Without from: an upload session, never a lookup across repositories.
	e.expect(e.do(req{method: "POST", path: "/v2/dst3/blobs/uploads/?mount=" + d.String()}), 202, "")
	e.expect(e.do(req{method: "HEAD", path: "/v2/dst3/blobs/" + d.String()}), 404, "")
	// Invalid input.
	e.expect(e.do(req{method: "POST", path: "/v2/dst/blobs/uploads/?mount=sha256:bad&from=src"}), 400, "DIGEST_INVALID")
	e.expect(e.do(req{method: "POST", path: "/v2/dst/blobs/uploads/?mount=" + d.String() + "&from=../x"}), 400, "NAME_INVALID")

	// Open mode: mount without from finds content anywhere.
	open := newEnv(t, func(o *registry.Options) { o.MountWithoutFrom = true })
	open.pushBlob("src", blob)
	open.expect(open.do(req{method: "POST", path: "/v2/dst/blobs/uploads/?mount=" + d.String()}), 201, "")
	open.expect(open.do(req{method: "HEAD", path: "/v2/dst/blobs/" + d.String()}), 200, "")
	open.expect(open.do(req{method: "POST", path: "/v2/dst/blobs/uploads/?mount=" + missing.String()}), 202, "")
}

// TestMountManifest: the docker CLI mounts a child manifest of an index into
// another repository as if it were a blob, then pushes the index there.
func TestMountManifest(t *testing.T) {
	e := newEnv(t)
	img := e.pushImage("src", "v1", nil)
	r := e.do(req{method: "POST", path: "/v2/dst/blobs/uploads/?mount=" + img.digest.String() + "&from=src"})
	e.expect(r, 201, "")
	r = e.do(req{method: "GET", path: "/v2/dst/manifests/" + img.digest.String()})
	e.expect(r, 200, "")
	if !bytes.Equal(r.body, img.manifest) || r.hdr.Get("Content-Type") != "application/vnd.oci.image.manifest.v1+json" {
		t.Fatalf("mounted manifest differs (Content-Type %q)", r.hdr.Get("Content-Type"))
	}
}
