package s3

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/oci"
	"github.com/berth-registry/berth/internal/storage"
)

// failingReader yields data, then fails.
type failingReader struct {
	r io.Reader
}

var errClientGone = errors.New("client went away")

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, errClientGone
	}
	return n, err
}

func TestUploadWhole(t *testing.T) {
	opts := testOptions(t, newPrefix())
	opts.MultipartPartSize = MinPartSize
	st := openStore(t, opts)
	ctx := t.Context()
	const repo = "team/app"
	begin := func() string {
		u, err := st.BeginUpload(ctx, repo)
		if err != nil {
			t.Fatal(err)
		}
		return u.ID
	}

	for _, size := range []int{0, 1000, 2*MinPartSize + 12345} {
		data := randomBytes(uint64(size), size)
		d := sha256Of(data)
		id := begin()
		info, err := st.UploadWhole(ctx, repo, id, d, bytes.NewReader(data))
		if err != nil || info.Digest != d || info.Size != int64(size) {
			t.Fatalf("size %d: %+v, %v", size, info, err)
		}
		if got := readAll(t, st, repo, d); !bytes.Equal(got, data) {
			t.Fatalf("size %d: content differs", size)
		}
		if _, err := st.StatUpload(ctx, repo, id); !errors.Is(err, storage.ErrUploadUnknown) {
			t.Fatalf("size %d: session after upload: %v", size, err)
		}
		// Nothing was staged under the session.
		if n := countKeys(t, st, st.prefix+"_uploads/"); n != 0 {
			t.Fatalf("size %d: %d keys left under _uploads/", size, n)
		}
		// Again, into another repository: the same address is rewritten.
		id = begin()
		if _, err := st.UploadWhole(ctx, "other/app", id, d, bytes.NewReader(data)); !errors.Is(err, storage.ErrUploadUnknown) {
			t.Fatalf("session of another repository: %v", err)
		}
		u, err := st.BeginUpload(ctx, "other/app")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.UploadWhole(ctx, "other/app", u.ID, d, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, st, "other/app", d); !bytes.Equal(got, data) {
			t.Fatal("content differs after rewrite")
		}
		st.AbortUpload(ctx, repo, id)
	}

	// A digest mismatch stores nothing and removes the session.
	data := randomBytes(9, MinPartSize+10)
	wrong := sha256Of([]byte("something else"))
	id := begin()
	if _, err := st.UploadWhole(ctx, repo, id, wrong, bytes.NewReader(data)); !errors.Is(err, storage.ErrDigestMismatch) {
		t.Fatalf("mismatch: %v", err)
	}
	for _, d := range []digest.Digest{wrong, sha256Of(data)} {
		if _, err := st.StatBlob(ctx, repo, d); !errors.Is(err, storage.ErrBlobUnknown) {
			t.Fatalf("after mismatch, %s: %v", d, err)
		}
		if ok, err := st.exists(ctx, st.blobKey(mustParse(t, d))); err != nil || ok {
			t.Fatalf("after mismatch, content %s exists: %v %v", d, ok, err)
		}
	}
	if _, err := st.StatUpload(ctx, repo, id); !errors.Is(err, storage.ErrUploadUnknown) {
		t.Fatalf("session after mismatch: %v", err)
	}

	// A read error leaves the session empty and nothing at the address.
	id = begin()
	if _, err := st.UploadWhole(ctx, repo, id, sha256Of(data), &failingReader{bytes.NewReader(data)}); !errors.Is(err, errClientGone) {
		t.Fatalf("read error: %v", err)
	}
	if info, err := st.StatUpload(ctx, repo, id); err != nil || info.Size != 0 {
		t.Fatalf("session after read error: %+v %v", info, err)
	}
	if ok, _ := st.exists(ctx, st.blobKey(mustParse(t, sha256Of(data)))); ok {
		t.Fatal("content stored despite the read error")
	}
	// ... and the client can try again.
	if _, err := st.UploadWhole(ctx, repo, id, sha256Of(data), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}

	// A session that holds bytes is not a whole upload.
	id = begin()
	if _, err := st.AppendUpload(ctx, repo, id, 0, bytes.NewReader([]byte("abc"))); err != nil {
		t.Fatal(err)
	}
	if _, err := st.UploadWhole(ctx, repo, id, sha256Of([]byte("abcdef")), bytes.NewReader([]byte("def"))); !errors.Is(err, storage.ErrUploadOffset) {
		t.Fatalf("non-empty session: %v", err)
	}
	// No multipart upload was left behind on the blob addresses.
	if n := countMultipart(t, st, st.prefix+"blobs/"); n != 0 {
		t.Fatalf("%d multipart uploads left under blobs/", n)
	}
}

func mustParse(t *testing.T, d digest.Digest) oci.Digest {
	t.Helper()
	g, err := parseDigest(d)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func countKeys(t *testing.T, st *Store, prefix string) int {
	t.Helper()
	n := 0
	if err := st.listKeys(t.Context(), prefix, "", -1, func(string, int64) (bool, error) { n++; return true, nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func countMultipart(t *testing.T, st *Store, prefix string) int {
	t.Helper()
	out, err := st.c.ListMultipartUploads(t.Context(), &awss3.ListMultipartUploadsInput{Bucket: &st.bucket, Prefix: &prefix})
	if err != nil {
		t.Fatal(err)
	}
	return len(out.Uploads)
}

// cancelAfter cancels the request after n bytes were read, as a client that
// goes away halfway does.
type cancelAfter struct {
	r      io.Reader
	n      int
	cancel func()
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n -= n
	if c.n <= 0 {
		c.cancel()
	}
	return n, err
}

// A request cancelled while parts are being uploaded stores nothing and
// leaves no multipart upload behind; the session stays, empty.
func TestUploadWholeCancelled(t *testing.T) {
	opts := testOptions(t, newPrefix())
	opts.MultipartPartSize = MinPartSize
	st := openStore(t, opts)
	u, err := st.BeginUpload(t.Context(), "team/app")
	if err != nil {
		t.Fatal(err)
	}
	data := randomBytes(11, 4*MinPartSize)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	_, err = st.UploadWhole(ctx, "team/app", u.ID, sha256Of(data), &cancelAfter{r: bytes.NewReader(data), n: 2*MinPartSize + 1, cancel: cancel})
	if err == nil {
		t.Fatal("cancelled upload succeeded")
	}
	if ok, _ := st.exists(t.Context(), st.blobKey(mustParse(t, sha256Of(data)))); ok {
		t.Fatal("content stored despite the cancellation")
	}
	if n := countMultipart(t, st, st.prefix+"blobs/"); n != 0 {
		t.Fatalf("%d multipart uploads left under blobs/", n)
	}
	if info, err := st.StatUpload(t.Context(), "team/app", u.ID); err != nil || info.Size != 0 {
		t.Fatalf("session: %+v, %v", info, err)
	}
}
