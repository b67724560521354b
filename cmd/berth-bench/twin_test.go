package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/oci"
)

func newTwinClient(t *testing.T) (*twin, *client) {
	t.Helper()
	tw, err := startTwin(filepath.Join(t.TempDir(), "twin"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tw.close(); err != nil {
			t.Error(err)
		}
	})
	base, err := url.Parse(tw.url())
	if err != nil {
		t.Fatal(err)
	}
	return tw, newClient(base, 4)
}

// The twin takes monolithic and chunked pushes, checks digests, serves blobs
// (ranges included) and manifests with a registry's headers.
func TestTwin(t *testing.T) {
	tw, c := newTwinClient(t)
	ctx := context.Background()
	block := newBlock(3)
	size := int64(5<<20 + 123)
	data, _ := io.ReadAll(newStream(block, 1, size))
	d := digest.FromBytes(data)

	// Monolithic, then chunked (a second blob) in 1 MiB PATCHes.
	if err := c.pushBlob(ctx, "a/b", d, size, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	data2, _ := io.ReadAll(newStream(block, 2, size))
	d2 := digest.FromBytes(data2)
	n, err := c.pushChunked(ctx, "a/b", d2, size, 1<<20, bytes.NewReader(data2))
	if err != nil || n != 6 {
		t.Fatalf("pushChunked: %d PATCHes, %v; want 6", n, err)
	}
	for _, x := range []struct {
		d    digest.Digest
		data []byte
	}{{d, data}, {d2, data2}} {
		resp, err := http.Get(c.url("/v2/a/b/blobs/" + x.d.String()))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Equal(got, x.data) || resp.Header.Get("Docker-Content-Digest") != x.d.String() {
			t.Fatalf("GET %s: %s, %d bytes, digest %q", x.d, resp.Status, len(got), resp.Header.Get("Docker-Content-Digest"))
		}
	}
	req, _ := http.NewRequest("GET", c.url("/v2/a/b/blobs/"+d.String()), nil)
	req.Header.Set("Range", "bytes=10-19")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(got, data[10:20]) {
		t.Fatalf("range: %s %q", resp.Status, got)
	}
	if ok, err := c.blobExists(ctx, "a/b", d); !ok || err != nil {
		t.Fatalf("HEAD: %v %v", ok, err)
	}

	// A wrong digest is refused and leaves no blob and no upload file.
	bad := digest.FromString("other")
	if err := c.pushBlob(ctx, "a/b", bad, size, bytes.NewReader(data)); err == nil || !strings.Contains(err.Error(), "400") {
		t.Fatalf("wrong digest: %v", err)
	}
	if ok, _ := c.blobExists(ctx, "a/b", bad); ok {
		t.Fatal("blob stored under a wrong digest")
	}
	if left, _ := os.ReadDir(filepath.Join(tw.dir, "uploads")); len(left) != 0 {
		t.Fatalf("upload files left: %v", left)
	}

	// Manifests: PUT, then GET by tag and by digest with the headers.
	im := makeImage([][]byte{[]byte("layer")}, "x")
	if err := c.pushImage(ctx, "a/b", "v1", im); err != nil {
		t.Fatal(err)
	}
	md := digest.FromBytes(im.manifest)
	for _, ref := range []string{"v1", md.String()} {
		resp, err := http.Get(c.url("/v2/a/b/manifests/" + ref))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		h := resp.Header
		if !bytes.Equal(got, im.manifest) || h.Get("Content-Type") != oci.MediaTypeImageManifest ||
			h.Get("Docker-Content-Digest") != md.String() || h.Get("Etag") != `"`+md.String()+`"` ||
			h.Get("Content-Length") != itoa(len(im.manifest)) {
			t.Fatalf("GET manifest %s: %s %v", ref, resp.Status, h)
		}
	}
	if resp, _ := http.Get(c.url("/v2/a/b/manifests/nope")); resp.StatusCode != 404 {
		t.Fatalf("unknown tag: %s", resp.Status)
	}
	if err := tw.dropBlobs(); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.blobExists(ctx, "a/b", d); ok {
		t.Fatal("dropBlobs left a blob")
	}
}

// pushChunked sends contiguous Content-Ranges, one PATCH per chunk, and the
// registry ends up with the blob.
func TestPushChunked(t *testing.T) {
	f := &fakeRegistry{blobs: map[string][]byte{}, mans: map[string][]byte{}}
	srv := newLoopbackServer(t, f)
	base, _ := url.Parse(srv)
	c := newClient(base, 2)
	block := newBlock(9)
	size := int64(3<<20 + 7)
	data, _ := io.ReadAll(newStream(block, 1, size))
	d := digest.FromBytes(data)
	n, err := c.pushChunked(context.Background(), "r", d, size, 1<<20, newStream(block, 1, size))
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 || f.patches != 4 || f.badRange != 0 {
		t.Fatalf("%d PATCHes (registry saw %d, %d bad ranges), want 4", n, f.patches, f.badRange)
	}
	if !bytes.Equal(f.blobs[d.String()], data) {
		t.Fatal("registry did not store the blob")
	}
}

// -auth-file: every request to the registry carries the header, and
// manifest-auth's GETs do.
func TestAuthFile(t *testing.T) {
	f := &fakeRegistry{blobs: map[string][]byte{}, mans: map[string][]byte{}, auth: "Bearer s3cr3t"}
	srv := newLoopbackServer(t, f)
	af := filepath.Join(t.TempDir(), "auth")
	if err := os.WriteFile(af, []byte("Bearer s3cr3t\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, log bytes.Buffer
	err := run([]string{"-url", srv, "-scenarios", "manifest-auth", "-auth-file", af, "-dir", t.TempDir(),
		"-duration", "100ms", "-clients", "2"}, &out, &log)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if f.noAuth != 0 || f.authGets < 4 {
		t.Fatalf("%d requests without the header, %d authorised manifest GETs", f.noAuth, f.authGets)
	}
	if strings.Contains(out.String()+log.String(), "s3cr3t") {
		t.Fatal("the credential was printed")
	}
	if !strings.Contains(out.String(), "| manifest-auth") || !strings.Contains(out.String(), "| twin: manifest-auth") {
		t.Fatalf("no manifest-auth rows:\n%s", out.String())
	}
}

// newLoopbackServer serves h on 127.0.0.1 until the test ends.
func newLoopbackServer(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}
