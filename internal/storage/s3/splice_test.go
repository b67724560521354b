package s3

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/oci"
	"github.com/berth-registry/berth/internal/storage"
)

// Large blobs from a plain-HTTP endpoint are read over a connection of the
// store's own and spliced to the client: the bytes, ranges and errors must be
// exactly those of the SDK path.
func TestOpenBlobSpliced(t *testing.T) {
	st := openStore(t, testOptions(t, newPrefix()))
	ctx := t.Context()
	const repo = "team/app"
	size := spliceMin + 123457
	data := randomBytes(7, size)
	d := sha256Of(data)
	u, err := st.BeginUpload(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.AppendUpload(ctx, repo, u.ID, 0, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CommitUpload(ctx, repo, u.ID, d); err != nil {
		t.Fatal(err)
	}

	for _, r := range []struct{ off, n int64 }{{0, -1}, {0, int64(size)}, {1000, spliceMin}, {int64(size) - spliceMin - 1, -1}, {5, 100}} {
		want := data[r.off:]
		if r.n >= 0 {
			want = want[:r.n]
		}
		// Read, as any reader.
		rc, err := st.OpenBlob(ctx, repo, d, r.off, r.n)
		if err != nil {
			t.Fatal(err)
		}
		_, spliced := rc.(*spliceBody)
		if spliced != (len(want) >= spliceMin) {
			t.Fatalf("range %+v (%d bytes): spliced = %v", r, len(want), spliced)
		}
		got, err := io.ReadAll(struct{ io.Reader }{rc})
		rc.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("range %+v: Read gave %d bytes (want %d), err %v", r, len(got), len(want), err)
		}
		// Copied into a real HTTP response: the ReadFrom (splice) path.
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			rc, err := st.OpenBlob(req.Context(), repo, d, r.off, r.n)
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			defer rc.Close()
			io.Copy(w, rc)
		}))
		res, err := http.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		got, err = io.ReadAll(res.Body)
		res.Body.Close()
		srv.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("range %+v: HTTP copy gave %d bytes (want %d), err %v", r, len(got), len(want), err)
		}
	}

	// A blob whose object vanished behind the store's back: the fast path
	// declines (404) and the SDK path reports the blob unknown.
	key := st.blobKey(mustGet(t, d))
	if _, err := st.c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: &st.bucket, Key: &key}); err != nil {
		t.Fatal(err)
	}
	if rc, err := st.OpenBlob(ctx, repo, d, 0, -1); !errors.Is(err, storage.ErrBlobUnknown) {
		if rc != nil {
			rc.Close()
		}
		t.Fatalf("vanished object: %v", err)
	}

}

func mustGet(t *testing.T, d digest.Digest) oci.Digest {
	t.Helper()
	g, err := lookupDigest(d, storage.ErrBlobUnknown)
	if err != nil {
		t.Fatal(err)
	}
	return g
}
