package registry_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/berth-registry/berth/internal/registry"
	"github.com/berth-registry/berth/internal/s3test"
	"github.com/berth-registry/berth/internal/storage/fs"
	"github.com/opencontainers/go-digest"
)

// fsEnv is an env on a filesystem store at root with the given faults.
func fsEnv(t *testing.T, root string, f fs.Faults) *env {
	t.Helper()
	if s3test.OnS3() {
		t.Skip("filesystem backend fault injection")
	}
	st, err := fs.New(root, fs.WithFaults(f))
	if err != nil {
		t.Fatal(err)
	}
	return newEnv(t, func(o *registry.Options) { o.Store = st })
}

// TestUploadCommitCrashRetry: the process dies inside the commit of an
// upload (before each of its steps); after a restart, the client's retried
// PUT <upload URL>?digest= with an empty body commits the blob without
// sending it again (201), and the blob reads back. Before the fix, a crash
// after the data moved into the blob store answered 404 BLOB_UPLOAD_UNKNOWN.
func TestUploadCommitCrashRetry(t *testing.T) {
	data := randomBytes(t, 3<<20)
	d := digest.FromBytes(data)
	for _, step := range []string{"move", "link", "remove"} {
		t.Run(step, func(t *testing.T) {
			root := t.TempDir()
			crash := errors.New("killed before " + step)
			e := fsEnv(t, root, fs.Faults{Commit: func(s string) error {
				if s == step {
					return crash
				}
				return nil
			}})
			r := e.do(req{method: "POST", path: "/v2/crash/test/blobs/uploads/"})
			e.expect(r, http.StatusAccepted, "")
			loc := r.hdr.Get("Location")
			r = e.do(req{method: "PATCH", path: loc, body: data, hdr: map[string]string{"Content-Type": "application/octet-stream"}})
			e.expect(r, http.StatusAccepted, "")
			r = e.do(req{method: "PUT", path: loc + "?digest=" + d.String()})
			e.expect(r, http.StatusInternalServerError, "UNKNOWN") // the kill

			e = fsEnv(t, root, fs.Faults{}) // restarted
			r = e.do(req{method: "PUT", path: loc + "?digest=" + d.String()})
			e.expect(r, http.StatusCreated, "")
			if got := r.hdr.Get("Docker-Content-Digest"); got != d.String() {
				t.Fatalf("Docker-Content-Digest %q, want %s", got, d)
			}
			r = e.do(req{method: "GET", path: "/v2/crash/test/blobs/" + d.String()})
			e.expect(r, http.StatusOK, "")
			if !bytes.Equal(r.body, data) {
				t.Fatalf("GET blob: %d bytes hashing to %s, want %s", len(r.body), digest.FromBytes(r.body), d)
			}
			r = e.do(req{method: "GET", path: loc})
			e.expect(r, http.StatusNotFound, "BLOB_UPLOAD_UNKNOWN")
		})
	}
}

// TestInsufficientStorage: on a full disk every write answers 507 with an
// OCI error body saying so, without any path; a failed mount creates no
// repository.
func TestInsufficientStorage(t *testing.T) {
	root := t.TempDir()
	var full atomic.Bool
	e := fsEnv(t, root, fs.Faults{Write: func(path string) error {
		if full.Load() {
			return &os.PathError{Op: "write", Path: path, Err: syscall.ENOSPC}
		}
		return nil
	}})
	img := e.pushImage("src", "v1", nil)
	layer := digest.FromBytes(img.layer)
	r := e.do(req{method: "POST", path: "/v2/src/blobs/uploads/"})
	e.expect(r, http.StatusAccepted, "")
	pending := r.hdr.Get("Location")
	r = e.do(req{method: "POST", path: "/v2/src/blobs/uploads/"})
	e.expect(r, http.StatusAccepted, "")
	pending2 := r.hdr.Get("Location")
	r = e.do(req{method: "PATCH", path: pending2, body: []byte("chunk")})
	e.expect(r, http.StatusAccepted, "")

	full.Store(true)
	blob := []byte("a new blob")
	bd := digest.FromBytes(blob).String()
	other := imageManifest(img.config, img.layer, map[string]any{"annotations": map[string]string{"x": "y"}})
	emptyIndex := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`)
	mt := map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json"}
	for _, c := range []struct {
		what string
		r    req
	}{
		{"POST upload", req{method: "POST", path: "/v2/src/blobs/uploads/"}},
		{"POST upload in a new repository", req{method: "POST", path: "/v2/new/repo/blobs/uploads/"}},
		{"POST monolithic", req{method: "POST", path: "/v2/src/blobs/uploads/?digest=" + bd, body: blob}},
		{"PATCH", req{method: "PATCH", path: pending, body: blob}},
		{"PUT with the last chunk", req{method: "PUT", path: pending + "?digest=" + bd, body: blob}},
		{"PUT commit", req{method: "PUT", path: pending2 + "?digest=" + digest.FromBytes([]byte("chunk")).String()}},
		{"PUT manifest", req{method: "PUT", path: "/v2/src/manifests/" + digest.FromBytes(other).String(), body: other, hdr: mt}},
		{"PUT tag", req{method: "PUT", path: "/v2/src/manifests/v2", body: img.manifest, hdr: mt}},
		{"PUT manifest into a new repository", req{method: "PUT", path: "/v2/new/repo/manifests/v1", body: emptyIndex,
			hdr: map[string]string{"Content-Type": "application/vnd.oci.image.index.v1+json"}}},
		{"mount", req{method: "POST", path: "/v2/mnt/a/blobs/uploads/?mount=" + layer.String() + "&from=src"}},
		{"mount", req{method: "POST", path: "/v2/mnt/b/blobs/uploads/?mount=" + layer.String() + "&from=src"}},
		{"mount of a manifest", req{method: "POST", path: "/v2/mnt/c/blobs/uploads/?mount=" + img.digest.String() + "&from=src"}},
	} {
		r := e.do(c.r)
		if r.status != http.StatusInsufficientStorage {
			t.Errorf("%s: status %d, want 507; body %s", c.what, r.status, r.body)
			continue
		}
		var eb struct {
			Errors []struct{ Code, Message string } `json:"errors"`
		}
		if err := json.Unmarshal(r.body, &eb); err != nil || len(eb.Errors) != 1 {
			t.Errorf("%s: body is not an OCI error envelope: %s", c.what, r.body)
			continue
		}
		if eb.Errors[0].Code != "UNKNOWN" || !strings.Contains(eb.Errors[0].Message, "no space left on device") {
			t.Errorf("%s: error %+v, want UNKNOWN naming \"no space left on device\"", c.what, eb.Errors[0])
		}
		if bytes.Contains(r.body, []byte(root)) || bytes.Contains(r.body, []byte("/tmp")) || bytes.Contains(r.body, []byte("repositories")) {
			t.Errorf("%s: body leaks a path: %s", c.what, r.body)
		}
	}

	r = e.do(req{method: "GET", path: "/v2/_catalog"})
	e.expect(r, http.StatusOK, "")
	var cat struct{ Repositories []string }
	if err := json.Unmarshal(r.body, &cat); err != nil {
		t.Fatal(err)
	}
	if len(cat.Repositories) != 1 || cat.Repositories[0] != "src" {
		t.Errorf("catalog after failed writes = %v, want [src]", cat.Repositories)
	}

	// Space again: the session left by the failed PATCH resumes.
	full.Store(false)
	r = e.do(req{method: "PUT", path: pending + "?digest=" + bd, body: blob})
	e.expect(r, http.StatusCreated, "")
}
