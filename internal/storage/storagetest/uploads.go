package storagetest

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/storage"
)

func testUploadSingleChunk(t *testing.T, st storage.Store) {
	ctx := t.Context()
	b := content("single", 100_000)
	d := sha256Digest(b)
	blobUnknown(t, st, "repo", d)
	u := begin(t, st, "repo")
	if u.StartedAt.IsZero() {
		t.Fatal("BeginUpload: zero StartedAt")
	}
	appendChunk(t, st, "repo", u.ID, 0, b)
	info, err := st.StatUpload(ctx, "repo", u.ID)
	noErr(t, err, "StatUpload")
	if info.ID != u.ID || info.Repo != "repo" || info.Size != int64(len(b)) || !info.StartedAt.Equal(u.StartedAt) {
		t.Fatalf("StatUpload = %+v, want id %s size %d started %v", info, u.ID, len(b), u.StartedAt)
	}
	got, err := st.CommitUpload(ctx, "repo", u.ID, d)
	noErr(t, err, "CommitUpload")
	if got.Digest != d || got.Size != int64(len(b)) {
		t.Fatalf("CommitUpload = %+v", got)
	}
	checkBlob(t, st, "repo", d, b)
	uploadUnknown(t, st, "repo", u.ID)
	_, err = st.CommitUpload(ctx, "repo", u.ID, d)
	wantErr(t, err, storage.ErrUploadUnknown, "CommitUpload after commit")
}

func testUploadChunks(t *testing.T, st storage.Store) {
	ctx := t.Context()
	b := content("chunks", 3*65536+17)
	d := sha256Digest(b)
	u := begin(t, st, "library/chunks")
	var off int64
	for _, n := range []int{1, 65535, 0, 65536, 65536, 17} {
		off = appendChunk(t, st, "library/chunks", u.ID, off, b[off:off+int64(n)])
		info, err := st.StatUpload(ctx, "library/chunks", u.ID)
		noErr(t, err, "StatUpload")
		if info.Size != off {
			t.Fatalf("StatUpload size %d, want %d", info.Size, off)
		}
	}
	if off != int64(len(b)) {
		t.Fatalf("test bug: appended %d of %d", off, len(b))
	}
	_, err := st.CommitUpload(ctx, "library/chunks", u.ID, d)
	noErr(t, err, "CommitUpload")
	checkBlob(t, st, "library/chunks", d, b)
}

func testUploadEmpty(t *testing.T, st storage.Store) {
	ctx := t.Context()
	d := sha256Digest(nil)
	u := begin(t, st, "repo")
	info, err := st.CommitUpload(ctx, "repo", u.ID, d)
	noErr(t, err, "CommitUpload of empty blob")
	if info.Size != 0 {
		t.Fatalf("CommitUpload size %d", info.Size)
	}
	checkBlob(t, st, "repo", d, nil)
}

func testUploadSHA512(t *testing.T, st storage.Store) {
	ctx := t.Context()
	b := content("sha512", 200_001)
	d := sha512Digest(b)
	u := begin(t, st, "repo")
	off := appendChunk(t, st, "repo", u.ID, 0, b[:100_000])
	appendChunk(t, st, "repo", u.ID, off, b[100_000:])
	_, err := st.CommitUpload(ctx, "repo", u.ID, d)
	noErr(t, err, "CommitUpload sha512")
	checkBlob(t, st, "repo", d, b)
	// The same content under sha256 is a different blob.
	blobUnknown(t, st, "repo", sha256Digest(b))
	if got := readBlob(t, st, "repo", d, 100, 10); !bytes.Equal(got, b[100:110]) {
		t.Fatal("OpenBlob sha512 range differs")
	}
}

func testUploadWrongOffset(t *testing.T, st storage.Store) {
	ctx := t.Context()
	b := content("offset", 1000)
	u := begin(t, st, "repo")
	_, err := st.AppendUpload(ctx, "repo", u.ID, 5, bytes.NewReader(b))
	wantErr(t, err, storage.ErrUploadOffset, "AppendUpload at 5 of empty upload")
	off := appendChunk(t, st, "repo", u.ID, 0, b[:500])
	for _, bad := range []int64{0, 499, 501, -1} {
		_, err := st.AppendUpload(ctx, "repo", u.ID, bad, bytes.NewReader(b[500:]))
		wantErr(t, err, storage.ErrUploadOffset, fmt.Sprintf("AppendUpload at %d of 500", bad))
	}
	info, err := st.StatUpload(ctx, "repo", u.ID)
	noErr(t, err, "StatUpload")
	if info.Size != 500 {
		t.Fatalf("size after refused chunks %d, want 500", info.Size)
	}
	appendChunk(t, st, "repo", u.ID, off, b[500:])
	_, err = st.CommitUpload(ctx, "repo", u.ID, sha256Digest(b))
	noErr(t, err, "CommitUpload")
	checkBlob(t, st, "repo", sha256Digest(b), b)
}

type failingReader struct {
	r   io.Reader
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, f.err
	}
	return n, err
}

func testUploadReadError(t *testing.T, st storage.Store) {
	ctx := t.Context()
	b := content("readerr", 300_000)
	u := begin(t, st, "repo")
	boom := errors.New("connection reset")
	n, err := st.AppendUpload(ctx, "repo", u.ID, 0, &failingReader{r: bytes.NewReader(b[:200_000]), err: boom})
	if err == nil {
		t.Fatal("AppendUpload with failing reader: no error")
	}
	if n < 0 || n > 200_000 {
		t.Fatalf("AppendUpload with failing reader: size %d outside [0, 200000]", n)
	}
	info, err := st.StatUpload(ctx, "repo", u.ID)
	noErr(t, err, "StatUpload after read error")
	if info.Size != n {
		t.Fatalf("StatUpload size %d, AppendUpload reported %d", info.Size, n)
	}
	appendChunk(t, st, "repo", u.ID, n, b[n:])
	_, err = st.CommitUpload(ctx, "repo", u.ID, sha256Digest(b))
	noErr(t, err, "CommitUpload after resume")
	checkBlob(t, st, "repo", sha256Digest(b), b)
}

func testUploadDigestMismatch(t *testing.T, st storage.Store) {
	ctx := t.Context()
	b := content("mismatch", 5000)
	right := sha256Digest(b)
	wrong := sha256Digest([]byte("something else"))
	u := begin(t, st, "repo")
	appendChunk(t, st, "repo", u.ID, 0, b)
	_, err := st.CommitUpload(ctx, "repo", u.ID, wrong)
	wantErr(t, err, storage.ErrDigestMismatch, "CommitUpload with wrong digest")
	blobUnknown(t, st, "repo", wrong)
	blobUnknown(t, st, "repo", right)
	uploadUnknown(t, st, "repo", u.ID)

	// sha512 too.
	u = begin(t, st, "repo")
	appendChunk(t, st, "repo", u.ID, 0, b)
	_, err = st.CommitUpload(ctx, "repo", u.ID, sha512Digest([]byte("other")))
	wantErr(t, err, storage.ErrDigestMismatch, "CommitUpload with wrong sha512 digest")
	uploadUnknown(t, st, "repo", u.ID)
	blobUnknown(t, st, "repo", sha512Digest(b))
}

func testUploadUnsupportedDigest(t *testing.T, st storage.Store) {
	ctx := t.Context()
	b := content("unsupported", 100)
	u := begin(t, st, "repo")
	appendChunk(t, st, "repo", u.ID, 0, b)
	for _, d := range []digest.Digest{
		"md5:" + digest.Digest(hex.EncodeToString(make([]byte, 16))),
		"sha1:" + digest.Digest(hex.EncodeToString(make([]byte, 20))),
		"blake3:" + digest.Digest(hex.EncodeToString(make([]byte, 32))),
	} {
		_, err := st.CommitUpload(ctx, "repo", u.ID, d)
		wantErr(t, err, storage.ErrUnsupportedDigest, "CommitUpload "+string(d))
	}
	m := newManifest("unsupported")
	m.Digest = "md5:" + digest.Digest(hex.EncodeToString(make([]byte, 16)))
	err := st.PutManifest(ctx, "repo", storage.PutManifestRequest{Manifest: m})
	wantErr(t, err, storage.ErrUnsupportedDigest, "PutManifest with md5 digest")
}

func testUploadUnknown(t *testing.T, st storage.Store) {
	ctx := t.Context()
	d := sha256Digest([]byte("x"))
	u := begin(t, st, "repo-a")
	for _, tc := range []struct{ repo, id string }{
		{"repo-a", "0123456789abcdef0123456789abcdef"},
		{"repo-b", u.ID}, // a session belongs to its repository
	} {
		uploadUnknown(t, st, tc.repo, tc.id)
		_, err := st.AppendUpload(ctx, tc.repo, tc.id, 0, bytes.NewReader([]byte("x")))
		wantErr(t, err, storage.ErrUploadUnknown, "AppendUpload")
		_, err = st.CommitUpload(ctx, tc.repo, tc.id, d)
		wantErr(t, err, storage.ErrUploadUnknown, "CommitUpload")
		wantErr(t, st.AbortUpload(ctx, tc.repo, tc.id), storage.ErrUploadUnknown, "AbortUpload")
	}
	if _, err := st.StatUpload(ctx, "repo-a", u.ID); err != nil {
		t.Fatalf("StatUpload of the real session after attempts from elsewhere: %v", err)
	}
	u2 := begin(t, st, "repo-a")
	if u2.ID == u.ID {
		t.Fatal("BeginUpload returned the same id twice")
	}
}

func testAbortUpload(t *testing.T, st storage.Store) {
	ctx := t.Context()
	b := content("abort", 1000)
	u := begin(t, st, "repo")
	appendChunk(t, st, "repo", u.ID, 0, b)
	noErr(t, st.AbortUpload(ctx, "repo", u.ID), "AbortUpload")
	uploadUnknown(t, st, "repo", u.ID)
	_, err := st.CommitUpload(ctx, "repo", u.ID, sha256Digest(b))
	wantErr(t, err, storage.ErrUploadUnknown, "CommitUpload after abort")
	wantErr(t, st.AbortUpload(ctx, "repo", u.ID), storage.ErrUploadUnknown, "AbortUpload twice")
	blobUnknown(t, st, "repo", sha256Digest(b))
}

func testPurgeUploads(t *testing.T, st storage.Store) {
	ctx := t.Context()
	old1 := begin(t, st, "repo")
	appendChunk(t, st, "repo", old1.ID, 0, []byte("old"))
	old2 := begin(t, st, "other/repo")
	time.Sleep(20 * time.Millisecond)
	young := begin(t, st, "repo")
	if !old2.StartedAt.Before(young.StartedAt) {
		t.Fatalf("StartedAt not increasing: %v then %v", old2.StartedAt, young.StartedAt)
	}

	n, err := st.PurgeUploads(ctx, old1.StartedAt.Add(-time.Hour))
	noErr(t, err, "PurgeUploads (nothing old)")
	if n != 0 {
		t.Fatalf("PurgeUploads removed %d sessions, want 0", n)
	}
	n, err = st.PurgeUploads(ctx, young.StartedAt)
	noErr(t, err, "PurgeUploads")
	if n != 2 {
		t.Fatalf("PurgeUploads removed %d sessions, want 2", n)
	}
	uploadUnknown(t, st, "repo", old1.ID)
	uploadUnknown(t, st, "other/repo", old2.ID)
	if _, err := st.StatUpload(ctx, "repo", young.ID); err != nil {
		t.Fatalf("young session purged: %v", err)
	}
	b := []byte("young")
	appendChunk(t, st, "repo", young.ID, 0, b)
	_, err = st.CommitUpload(ctx, "repo", young.ID, sha256Digest(b))
	noErr(t, err, "CommitUpload of surviving session")

	n, err = st.PurgeUploads(ctx, time.Now().Add(time.Hour))
	noErr(t, err, "PurgeUploads (all)")
	if n != 0 {
		t.Fatalf("PurgeUploads removed %d sessions, want 0 (the last one was committed)", n)
	}
}

func testReopenUpload(t *testing.T, st storage.Store, reopen func(storage.Store) storage.Store) {
	ctx := t.Context()
	b := content("restart", 700_000)
	d := sha256Digest(b)
	b512 := content("restart512", 300_000)
	d512 := sha512Digest(b512)
	u := begin(t, st, "repo")
	appendChunk(t, st, "repo", u.ID, 0, b[:400_000])
	u2 := begin(t, st, "repo")
	appendChunk(t, st, "repo", u2.ID, 0, b512[:1000])
	aborted := begin(t, st, "repo")

	st2 := reopen(st)
	info, err := st2.StatUpload(ctx, "repo", u.ID)
	noErr(t, err, "StatUpload after reopen")
	if info.Size != 400_000 || !info.StartedAt.Equal(u.StartedAt) {
		t.Fatalf("StatUpload after reopen = %+v, want size 400000 started %v", info, u.StartedAt)
	}
	_, err = st2.AppendUpload(ctx, "repo", u.ID, 0, bytes.NewReader(b))
	wantErr(t, err, storage.ErrUploadOffset, "AppendUpload at 0 after reopen")
	appendChunk(t, st2, "repo", u.ID, 400_000, b[400_000:])
	_, err = st2.CommitUpload(ctx, "repo", u.ID, d)
	noErr(t, err, "CommitUpload after reopen")
	checkBlob(t, st2, "repo", d, b)
	checkBlob(t, st, "repo", d, b) // the first instance sees it too

	appendChunk(t, st2, "repo", u2.ID, 1000, b512[1000:])
	_, err = st2.CommitUpload(ctx, "repo", u2.ID, d512)
	noErr(t, err, "CommitUpload sha512 after reopen")
	checkBlob(t, st, "repo", d512, b512)

	noErr(t, st2.AbortUpload(ctx, "repo", aborted.ID), "AbortUpload after reopen")
	uploadUnknown(t, st, "repo", aborted.ID)
}
