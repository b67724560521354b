package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/berth-registry/berth/internal/s3test"
)

// mountTmpfs mounts a tmpfs of the given size (e.g. "4m") on a new
// directory and returns it; it skips the test where mounting is not
// permitted (not root, no CAP_SYS_ADMIN). The mount is removed at cleanup,
// after everything registered later (the berth process) is stopped.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fillDisk writes a file in dir until the filesystem is full and returns it.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling the disk: %v", err)
			}
			return path
		}
	}
}

// TestDiskFull runs berth on a small tmpfs, fills it, and checks that every
// write answers 507 with an OCI error body naming "no space left on device"
// and no path; that failed mounts and pushes into new repositories leave
// nothing in the catalog, even after a restart; and that everything works
// again once space is freed. Before the fix every write answered 500
// "internal server error" and each failed mount left an empty repository.
func TestDiskFull(t *testing.T) {
	if s3test.OnS3() {
		t.Skip("filesystem backend")
	}
	mnt := mountTmpfs(t, "8m")
	dataDir := filepath.Join(mnt, "data")
	p := startBerth(t, dataDir)

	config := []byte(`{"architecture":"amd64","os":"linux"}`)
	layer := detStream{seed: 0xd15c, size: 64 << 10}.bytes()
	cd, ld := pushBlob(t, p, "src", config), pushBlob(t, p, "src", layer)
	manifest := func(annotation string) []byte {
		return mustJSON(t, map[string]any{
			"schemaVersion": 2,
			"mediaType":     "application/vnd.oci.image.manifest.v1+json",
			"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": len(config)},
			"layers":        []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": len(layer)}},
			"annotations":   map[string]string{"n": annotation},
		})
	}
	const mt = "application/vnd.oci.image.manifest.v1+json"
	m1 := manifest("one")
	putManifest(t, p, "src", "v1", mt, m1)
	resp, body := doReq(t, http.MethodPost, p.url("/v2/src/blobs/uploads/"), nil, nil)
	wantStatus(t, "POST upload", resp, body, http.StatusAccepted)
	pending := p.resolve(t, resp.Header.Get("Location")).Path

	filler := fillDisk(t, mnt)
	blob := detStream{seed: 0xf011, size: 1 << 20}.bytes()
	bd := sha256Digest(blob)
	m2 := manifest("two")
	octet := map[string]string{"Content-Type": "application/octet-stream"}
	check := func(what string) {
		t.Helper()
		for _, c := range []struct {
			what, method, path string
			body               []byte
			hdr                map[string]string
		}{
			{"POST upload", http.MethodPost, "/v2/src/blobs/uploads/", nil, nil},
			{"POST upload into a new repository", http.MethodPost, "/v2/new/repo/blobs/uploads/", nil, nil},
			{"POST monolithic", http.MethodPost, "/v2/src/blobs/uploads/?digest=" + bd, blob, octet},
			{"PATCH", http.MethodPatch, pending, blob, octet},
			{"PUT manifest", http.MethodPut, "/v2/src/manifests/" + sha256Digest(m2), m2, map[string]string{"Content-Type": mt}},
			{"PUT tag", http.MethodPut, "/v2/src/manifests/v2", m1, map[string]string{"Content-Type": mt}},
			{"mount", http.MethodPost, "/v2/mnt/a/blobs/uploads/?mount=" + ld + "&from=src", nil, nil},
			{"mount", http.MethodPost, "/v2/mnt/b/blobs/uploads/?mount=" + cd + "&from=src", nil, nil},
			{"mount of a manifest", http.MethodPost, "/v2/mnt/c/blobs/uploads/?mount=" + sha256Digest(m1) + "&from=src", nil, nil},
		} {
			resp, body := doReq(t, c.method, p.url(c.path), bytes.NewReader(c.body), c.hdr)
			if resp.StatusCode != http.StatusInsufficientStorage {
				t.Errorf("%s: %s: status %d, want 507; body %s", what, c.what, resp.StatusCode, truncate(body, 300))
				continue
			}
			var eb struct {
				Errors []struct{ Code, Message string } `json:"errors"`
			}
			if err := json.Unmarshal(body, &eb); err != nil || len(eb.Errors) != 1 {
				t.Errorf("%s: %s: body is not an OCI error envelope: %s", what, c.what, truncate(body, 300))
				continue
			}
			if e := eb.Errors[0]; e.Code != "UNKNOWN" || !strings.Contains(e.Message, "no space left on device") {
				t.Errorf("%s: %s: error %+v, want UNKNOWN naming \"no space left on device\"", what, c.what, e)
			}
			if bytes.Contains(body, []byte(mnt)) || bytes.Contains(body, []byte("repositories/")) || bytes.Contains(body, []byte("blobs/sha256")) {
				t.Errorf("%s: %s: body leaks a path: %s", what, c.what, body)
			}
		}
		resp, body := doReq(t, http.MethodGet, p.url("/v2/_catalog"), nil, nil)
		wantStatus(t, what+": catalog", resp, body, http.StatusOK)
		var cat struct{ Repositories []string }
		if err := json.Unmarshal(body, &cat); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(cat.Repositories, []string{"src"}) {
			t.Errorf("%s: catalog %v, want [src]: failed writes left repositories", what, cat.Repositories)
		}
	}
	check("disk full")
	p.restart()
	check("disk full, after a restart")

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	resp, body = doReq(t, http.MethodPost, p.url("/v2/mnt/a/blobs/uploads/?mount="+ld+"&from=src"), nil, nil)
	wantStatus(t, "mount with space again", resp, body, http.StatusCreated)
	resp, body = doReq(t, http.MethodPut, p.url(pending+"?digest="+bd), bytes.NewReader(blob), octet)
	wantStatus(t, "finishing the session with space again", resp, body, http.StatusCreated)
	checkBlob(t, p, "src", ociDescriptor{Digest: bd, Size: int64(len(blob))}, "blob pushed after the disk was freed")
	putManifest(t, p, "src", "v2", mt, m2)
}
