// Package storagetest is the contract suite every storage.Store backend runs:
//
//	func TestContract(t *testing.T) {
//		storagetest.Run(t, func(t *testing.T) storage.Store { return newEmptyStore(t) })
//	}
//
// Each subtest gets a fresh, empty store from newStore. The suite uses the
// storage.Store interface only. Most subtests call t.Parallel; the streaming
// test does not (it measures allocations).
//
// Backends must keep UploadInfo.StartedAt to at least millisecond precision
// (the PurgeUploads test separates two sessions by a few milliseconds).
package storagetest

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/storage"
)

// Run runs the contract suite against stores made by newStore.
func Run(t *testing.T, newStore func(t *testing.T) storage.Store) {
	RunWithReopen(t, newStore, nil)
}

// RunWithReopen runs the contract suite plus the restart tests. reopen must
// return a second store instance over the same backend state as s, as a
// process restart (or another replica) would see it. A nil reopen skips the
// restart tests.
func RunWithReopen(t *testing.T, newStore func(t *testing.T) storage.Store, reopen func(t *testing.T, s storage.Store) storage.Store) {
	tests := []struct {
		name   string
		fn     func(t *testing.T, st storage.Store)
		serial bool
	}{
		{name: "Ping", fn: testPing},
		{name: "UploadSingleChunk", fn: testUploadSingleChunk},
		{name: "UploadChunks", fn: testUploadChunks},
		{name: "UploadEmptyBlob", fn: testUploadEmpty},
		{name: "UploadSHA512", fn: testUploadSHA512},
		{name: "UploadWrongOffset", fn: testUploadWrongOffset},
		{name: "UploadReadError", fn: testUploadReadError},
		{name: "UploadDigestMismatch", fn: testUploadDigestMismatch},
		{name: "UploadUnsupportedDigest", fn: testUploadUnsupportedDigest},
		{name: "UploadUnknown", fn: testUploadUnknown},
		{name: "AbortUpload", fn: testAbortUpload},
		{name: "PurgeUploads", fn: testPurgeUploads},
		{name: "BlobUnknown", fn: testBlobUnknown},
		{name: "OpenBlobRange", fn: testOpenBlobRange},
		{name: "DedupAcrossRepos", fn: testDedupAcrossRepos},
		{name: "MountBlob", fn: testMountBlob},
		{name: "MountManifest", fn: testMountManifest},
		{name: "Manifest", fn: testManifest},
		{name: "ManifestSHA512", fn: testManifestSHA512},
		{name: "ManifestDigestMismatch", fn: testManifestDigestMismatch},
		{name: "ManifestTags", fn: testManifestTags},
		{name: "Referrers", fn: testReferrers},
		{name: "DeleteManifest", fn: testDeleteManifest},
		{name: "DeleteTag", fn: testDeleteTag},
		{name: "ListTags", fn: testListTags},
		{name: "ListTagsUnknownRepository", fn: testListTagsUnknown},
		{name: "ListRepositories", fn: testListRepositories},
		{name: "ConcurrentCommitSameBlob", fn: testConcurrentCommit},
		{name: "ConcurrentPutSameTag", fn: testConcurrentTag},
		{name: "OpenBlobStreams", fn: testOpenBlobStreams, serial: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.serial {
				t.Parallel()
			}
			tc.fn(t, newStore(t))
		})
	}

	reopenTests := []struct {
		name string
		fn   func(t *testing.T, st storage.Store, reopen func(storage.Store) storage.Store)
	}{
		{name: "ReopenUploadSession", fn: testReopenUpload},
		{name: "ReopenContent", fn: testReopenContent},
	}
	for _, tc := range reopenTests {
		t.Run(tc.name, func(t *testing.T) {
			if reopen == nil {
				t.Skip("no reopen function given")
			}
			t.Parallel()
			tc.fn(t, newStore(t), func(s storage.Store) storage.Store { return reopen(t, s) })
		})
	}
}

// ---------------------------------------------------------------------------
// helpers

const manifestType = "application/vnd.oci.image.manifest.v1+json"

func sha512Digest(b []byte) digest.Digest {
	s := sha512.Sum512(b)
	return digest.Digest("sha512:" + hex.EncodeToString(s[:]))
}

func sha256Digest(b []byte) digest.Digest {
	s := sha256.Sum256(b)
	return digest.Digest("sha256:" + hex.EncodeToString(s[:]))
}

// content returns n deterministic pseudo-random bytes.
func content(seed string, n int) []byte {
	out := make([]byte, 0, n+32)
	block := sha256.Sum256([]byte(seed))
	for len(out) < n {
		out = append(out, block[:]...)
		block = sha256.Sum256(block[:])
	}
	return out[:n]
}

func wantErr(t *testing.T, err, sentinel error, what string) {
	t.Helper()
	if !errors.Is(err, sentinel) {
		t.Fatalf("%s: got error %v, want %v", what, err, sentinel)
	}
}

func noErr(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func begin(t *testing.T, st storage.Store, repo string) storage.UploadInfo {
	t.Helper()
	u, err := st.BeginUpload(t.Context(), repo)
	noErr(t, err, "BeginUpload "+repo)
	if u.ID == "" || u.Size != 0 || u.Repo != repo {
		t.Fatalf("BeginUpload %s = %+v", repo, u)
	}
	return u
}

func appendChunk(t *testing.T, st storage.Store, repo, id string, offset int64, b []byte) int64 {
	t.Helper()
	n, err := st.AppendUpload(t.Context(), repo, id, offset, bytes.NewReader(b))
	noErr(t, err, fmt.Sprintf("AppendUpload %s at %d", repo, offset))
	if want := offset + int64(len(b)); n != want {
		t.Fatalf("AppendUpload %s at %d: size %d, want %d", repo, offset, n, want)
	}
	return n
}

// upload pushes b into repo in one chunk and commits it as d.
func upload(t *testing.T, st storage.Store, repo string, b []byte, d digest.Digest) storage.BlobInfo {
	t.Helper()
	u := begin(t, st, repo)
	appendChunk(t, st, repo, u.ID, 0, b)
	info, err := st.CommitUpload(t.Context(), repo, u.ID, d)
	noErr(t, err, "CommitUpload "+repo)
	if info.Digest != d || info.Size != int64(len(b)) {
		t.Fatalf("CommitUpload %s = %+v, want %s size %d", repo, info, d, len(b))
	}
	return info
}

func uploadBlob(t *testing.T, st storage.Store, repo string, b []byte) digest.Digest {
	t.Helper()
	d := sha256Digest(b)
	upload(t, st, repo, b, d)
	return d
}

func readBlob(t *testing.T, st storage.Store, repo string, d digest.Digest, offset, length int64) []byte {
	t.Helper()
	rc, err := st.OpenBlob(t.Context(), repo, d, offset, length)
	noErr(t, err, fmt.Sprintf("OpenBlob %s %s [%d,%d]", repo, d, offset, length))
	defer rc.Close()
	b, err := io.ReadAll(rc)
	noErr(t, err, "read blob")
	return b
}

func checkBlob(t *testing.T, st storage.Store, repo string, d digest.Digest, want []byte) {
	t.Helper()
	info, err := st.StatBlob(t.Context(), repo, d)
	noErr(t, err, "StatBlob "+repo)
	if info.Digest != d || info.Size != int64(len(want)) {
		t.Fatalf("StatBlob %s = %+v, want %s size %d", repo, info, d, len(want))
	}
	if got := readBlob(t, st, repo, d, 0, -1); !bytes.Equal(got, want) {
		t.Fatalf("OpenBlob %s %s: content differs (%d bytes, want %d)", repo, d, len(got), len(want))
	}
}

func blobUnknown(t *testing.T, st storage.Store, repo string, d digest.Digest) {
	t.Helper()
	_, err := st.StatBlob(t.Context(), repo, d)
	wantErr(t, err, storage.ErrBlobUnknown, "StatBlob "+repo)
	rc, err := st.OpenBlob(t.Context(), repo, d, 0, -1)
	if err == nil {
		rc.Close()
	}
	wantErr(t, err, storage.ErrBlobUnknown, "OpenBlob "+repo)
}

// newManifest returns a manifest whose bytes are unique to name.
func newManifest(name string) storage.Manifest {
	data := fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[],"annotations":{"name":%q}}`, manifestType, name)
	return storage.Manifest{Digest: sha256Digest(data), MediaType: manifestType, Data: data}
}

func putManifest(t *testing.T, st storage.Store, repo string, m storage.Manifest, tags ...string) {
	t.Helper()
	noErr(t, st.PutManifest(t.Context(), repo, storage.PutManifestRequest{Manifest: m, Tags: tags}), "PutManifest "+repo)
}

func checkManifest(t *testing.T, st storage.Store, repo string, want storage.Manifest) {
	t.Helper()
	got, err := st.GetManifest(t.Context(), repo, want.Digest)
	noErr(t, err, "GetManifest "+repo)
	if got.Digest != want.Digest || got.MediaType != want.MediaType || !bytes.Equal(got.Data, want.Data) {
		t.Fatalf("GetManifest %s = {%s %q %d bytes}, want {%s %q %d bytes}", repo, got.Digest, got.MediaType, len(got.Data), want.Digest, want.MediaType, len(want.Data))
	}
	stat, err := st.StatManifest(t.Context(), repo, want.Digest)
	noErr(t, err, "StatManifest "+repo)
	if stat.Digest != want.Digest || stat.MediaType != want.MediaType || stat.Data != nil {
		t.Fatalf("StatManifest %s = {%s %q %d bytes}, want {%s %q nil}", repo, stat.Digest, stat.MediaType, len(stat.Data), want.Digest, want.MediaType)
	}
}

func manifestUnknown(t *testing.T, st storage.Store, repo string, d digest.Digest) {
	t.Helper()
	_, err := st.GetManifest(t.Context(), repo, d)
	wantErr(t, err, storage.ErrManifestUnknown, "GetManifest "+repo)
	_, err = st.StatManifest(t.Context(), repo, d)
	wantErr(t, err, storage.ErrManifestUnknown, "StatManifest "+repo)
}

func resolve(t *testing.T, st storage.Store, repo, tag string, want digest.Digest) {
	t.Helper()
	got, err := st.ResolveTag(t.Context(), repo, tag)
	noErr(t, err, "ResolveTag "+repo+":"+tag)
	if got != want {
		t.Fatalf("ResolveTag %s:%s = %s, want %s", repo, tag, got, want)
	}
}

func tagUnknown(t *testing.T, st storage.Store, repo, tag string) {
	t.Helper()
	_, err := st.ResolveTag(t.Context(), repo, tag)
	wantErr(t, err, storage.ErrTagUnknown, "ResolveTag "+repo+":"+tag)
}

func uploadUnknown(t *testing.T, st storage.Store, repo, id string) {
	t.Helper()
	_, err := st.StatUpload(t.Context(), repo, id)
	wantErr(t, err, storage.ErrUploadUnknown, "StatUpload "+repo)
}

func equalStrings(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !slices.Equal(got, want) {
		t.Fatalf("%s = %q, want %q", what, got, want)
	}
}

// ---------------------------------------------------------------------------
// tests

func testPing(t *testing.T, st storage.Store) {
	noErr(t, st.Ping(t.Context()), "Ping")
}

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

func testBlobUnknown(t *testing.T, st storage.Store) {
	ctx := t.Context()
	d := sha256Digest([]byte("nothing"))
	blobUnknown(t, st, "repo", d)
	blobUnknown(t, st, "repo", sha512Digest([]byte("nothing")))
	wantErr(t, st.DeleteBlob(ctx, "repo", d), storage.ErrBlobUnknown, "DeleteBlob unknown")
	_, err := st.MountBlob(ctx, "repo", "elsewhere", d)
	wantErr(t, err, storage.ErrBlobUnknown, "MountBlob of unknown blob")

	b := []byte("present")
	pd := uploadBlob(t, st, "repo", b)
	noErr(t, st.DeleteBlob(ctx, "repo", pd), "DeleteBlob")
	blobUnknown(t, st, "repo", pd)
	wantErr(t, st.DeleteBlob(ctx, "repo", pd), storage.ErrBlobUnknown, "DeleteBlob twice")
	// Pushing it again links it again.
	uploadBlob(t, st, "repo", b)
	checkBlob(t, st, "repo", pd, b)
}

func testOpenBlobRange(t *testing.T, st storage.Store) {
	b := content("range", 10_000)
	d := uploadBlob(t, st, "repo", b)
	size := int64(len(b))
	for _, tc := range []struct{ off, n, from, to int64 }{
		{0, -1, 0, size},
		{0, size, 0, size},
		{0, 10, 0, 10},
		{2, 3, 2, 5},
		{5000, -1, 5000, size},
		{9999, 1, 9999, size},
		{9000, 5000, 9000, size}, // past the end: cut at the end
		{100, 0, 100, 100},
		{size, -1, size, size},
	} {
		got := readBlob(t, st, "repo", d, tc.off, tc.n)
		if !bytes.Equal(got, b[tc.from:tc.to]) {
			t.Fatalf("OpenBlob(%d, %d): got %d bytes, want bytes [%d:%d]", tc.off, tc.n, len(got), tc.from, tc.to)
		}
	}
}

func testDedupAcrossRepos(t *testing.T, st storage.Store) {
	ctx := t.Context()
	b := content("dedup", 50_000)
	d := uploadBlob(t, st, "team/a", b)
	uploadBlob(t, st, "team/b", b)
	checkBlob(t, st, "team/a", d, b)
	checkBlob(t, st, "team/b", d, b)
	noErr(t, st.DeleteBlob(ctx, "team/a", d), "DeleteBlob in team/a")
	blobUnknown(t, st, "team/a", d)
	checkBlob(t, st, "team/b", d, b)
	blobUnknown(t, st, "team", d)
}

func testMountBlob(t *testing.T, st storage.Store) {
	ctx := t.Context()
	b := content("mount", 12_345)
	d := uploadBlob(t, st, "src", b)
	blobUnknown(t, st, "dst", d)
	_, err := st.MountBlob(ctx, "dst", "other", d)
	wantErr(t, err, storage.ErrBlobUnknown, "MountBlob from a repo without the blob")
	blobUnknown(t, st, "dst", d)

	info, err := st.MountBlob(ctx, "dst", "src", d)
	noErr(t, err, "MountBlob")
	if info.Digest != d || info.Size != int64(len(b)) {
		t.Fatalf("MountBlob = %+v", info)
	}
	checkBlob(t, st, "dst", d, b)
	// Mounting again is fine.
	_, err = st.MountBlob(ctx, "dst", "src", d)
	noErr(t, err, "MountBlob again")
	noErr(t, st.DeleteBlob(ctx, "src", d), "DeleteBlob in src")
	blobUnknown(t, st, "src", d)
	checkBlob(t, st, "dst", d, b)
	// The source no longer has it.
	_, err = st.MountBlob(ctx, "third", "src", d)
	wantErr(t, err, storage.ErrBlobUnknown, "MountBlob from a repo that deleted it")

	// Without from: any content in the store can be linked; unknown content cannot.
	info, err = st.MountBlob(ctx, "fourth", "", d)
	noErr(t, err, "MountBlob without from")
	if info.Size != int64(len(b)) {
		t.Fatalf("MountBlob without from = %+v", info)
	}
	checkBlob(t, st, "fourth", d, b)
	_, err = st.MountBlob(ctx, "fourth", "", sha256Digest([]byte("never stored")))
	wantErr(t, err, storage.ErrBlobUnknown, "MountBlob without from of unknown content")
}

func testMountManifest(t *testing.T, st storage.Store) {
	ctx := t.Context()
	m := newManifest("child")
	putManifest(t, st, "app/a", m)
	// A manifest is a blob of its repository too.
	checkBlob(t, st, "app/a", m.Digest, m.Data)
	manifestUnknown(t, st, "app/b", m.Digest)
	blobUnknown(t, st, "app/b", m.Digest)

	info, err := st.MountBlob(ctx, "app/b", "app/a", m.Digest)
	noErr(t, err, "MountBlob of a manifest")
	if info.Digest != m.Digest || info.Size != int64(len(m.Data)) {
		t.Fatalf("MountBlob = %+v", info)
	}
	checkBlob(t, st, "app/b", m.Digest, m.Data)
	checkManifest(t, st, "app/b", m)
}

func testManifest(t *testing.T, st storage.Store) {
	ctx := t.Context()
	m := newManifest("plain")
	manifestUnknown(t, st, "repo", m.Digest)
	putManifest(t, st, "repo", m)
	checkManifest(t, st, "repo", m)
	manifestUnknown(t, st, "other", m.Digest)
	// Putting it again is fine, and may change the media type.
	m2 := m
	m2.MediaType = "application/vnd.docker.distribution.manifest.v2+json"
	putManifest(t, st, "repo", m2)
	checkManifest(t, st, "repo", m2)
	// An index in the same repository.
	idx := storage.Manifest{MediaType: "application/vnd.oci.image.index.v1+json"}
	idx.Data = fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":%q,"digest":%q,"size":%d}]}`, manifestType, m.Digest, len(m.Data))
	idx.Digest = sha256Digest(idx.Data)
	noErr(t, st.PutManifest(ctx, "repo", storage.PutManifestRequest{Manifest: idx}), "PutManifest index")
	checkManifest(t, st, "repo", idx)
	checkManifest(t, st, "repo", m2)
}

func testManifestSHA512(t *testing.T, st storage.Store) {
	m := newManifest("sha512")
	m.Digest = sha512Digest(m.Data)
	putManifest(t, st, "repo", m, "v512")
	checkManifest(t, st, "repo", m)
	resolve(t, st, "repo", "v512", m.Digest)
}

func testManifestDigestMismatch(t *testing.T, st storage.Store) {
	ctx := t.Context()
	m := newManifest("liar")
	m.Digest = sha256Digest([]byte("not these bytes"))
	err := st.PutManifest(ctx, "repo", storage.PutManifestRequest{Manifest: m, Tags: []string{"latest"}})
	wantErr(t, err, storage.ErrDigestMismatch, "PutManifest with wrong digest")
	manifestUnknown(t, st, "repo", m.Digest)
	tagUnknown(t, st, "repo", "latest")
}

func testManifestTags(t *testing.T, st storage.Store) {
	m1 := newManifest("one")
	m2 := newManifest("two")
	tagUnknown(t, st, "repo", "latest")
	putManifest(t, st, "repo", m1, "latest", "v1", "V1.0_rc-1")
	resolve(t, st, "repo", "latest", m1.Digest)
	resolve(t, st, "repo", "v1", m1.Digest)
	resolve(t, st, "repo", "V1.0_rc-1", m1.Digest)
	tagUnknown(t, st, "repo", "v2")
	tagUnknown(t, st, "other", "latest")
	// Moving a tag.
	putManifest(t, st, "repo", m2, "latest", "v2")
	resolve(t, st, "repo", "latest", m2.Digest)
	resolve(t, st, "repo", "v1", m1.Digest)
	resolve(t, st, "repo", "v2", m2.Digest)
	checkManifest(t, st, "repo", m1)
	checkManifest(t, st, "repo", m2)
}

func descriptorsByDigest(ds []storage.Descriptor) map[digest.Digest]storage.Descriptor {
	out := make(map[digest.Digest]storage.Descriptor, len(ds))
	for _, d := range ds {
		out[d.Digest] = d
	}
	return out
}

func sameDescriptor(a, b storage.Descriptor) bool {
	if a.MediaType != b.MediaType || a.Digest != b.Digest || a.Size != b.Size || a.ArtifactType != b.ArtifactType || len(a.Annotations) != len(b.Annotations) {
		return false
	}
	for k, v := range a.Annotations {
		if bv, ok := b.Annotations[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

func referrer(name, artifactType string, subject storage.Manifest) (storage.PutManifestRequest, storage.Descriptor) {
	m := newManifest(name)
	desc := storage.Descriptor{
		MediaType:    m.MediaType,
		Digest:       m.Digest,
		Size:         int64(len(m.Data)),
		ArtifactType: artifactType,
		Annotations:  map[string]string{"org.opencontainers.image.created": "2024-01-01T00:00:00Z", "name": name},
	}
	return storage.PutManifestRequest{Manifest: m, Subject: subject.Digest, Referrer: desc}, desc
}

func testReferrers(t *testing.T, st storage.Store) {
	ctx := t.Context()
	subject := newManifest("subject")
	putManifest(t, st, "repo", subject, "latest")
	refs, err := st.ListReferrers(ctx, "repo", subject.Digest)
	noErr(t, err, "ListReferrers with none")
	if len(refs) != 0 {
		t.Fatalf("ListReferrers with none = %+v", refs)
	}

	r1, d1 := referrer("sbom", "application/spdx+json", subject)
	r2, d2 := referrer("signature", "application/vnd.dev.cosign.artifact.sig.v1+json", subject)
	r2.Tags = []string{"sha256-sig"}
	noErr(t, st.PutManifest(ctx, "repo", r1), "PutManifest referrer 1")
	noErr(t, st.PutManifest(ctx, "repo", r2), "PutManifest referrer 2")
	checkManifest(t, st, "repo", r1.Manifest)
	resolve(t, st, "repo", "sha256-sig", r2.Manifest.Digest)

	refs, err = st.ListReferrers(ctx, "repo", subject.Digest)
	noErr(t, err, "ListReferrers")
	got := descriptorsByDigest(refs)
	if len(refs) != 2 || !sameDescriptor(got[d1.Digest], d1) || !sameDescriptor(got[d2.Digest], d2) {
		t.Fatalf("ListReferrers = %+v, want %+v and %+v", refs, d1, d2)
	}
	// Referrers are per repository, and per subject.
	refs, err = st.ListReferrers(ctx, "other", subject.Digest)
	noErr(t, err, "ListReferrers in another repository")
	if len(refs) != 0 {
		t.Fatalf("ListReferrers in another repository = %+v", refs)
	}
	refs, err = st.ListReferrers(ctx, "repo", r1.Manifest.Digest)
	noErr(t, err, "ListReferrers of a referrer")
	if len(refs) != 0 {
		t.Fatalf("ListReferrers of a referrer = %+v", refs)
	}
	// A subject need not exist (yet).
	ghost := newManifest("ghost")
	r3, d3 := referrer("early", "application/example", ghost)
	noErr(t, st.PutManifest(ctx, "repo", r3), "PutManifest referrer of missing subject")
	refs, err = st.ListReferrers(ctx, "repo", ghost.Digest)
	noErr(t, err, "ListReferrers of missing subject")
	if len(refs) != 1 || !sameDescriptor(refs[0], d3) {
		t.Fatalf("ListReferrers of missing subject = %+v", refs)
	}
}

func testDeleteManifest(t *testing.T, st storage.Store) {
	ctx := t.Context()
	subject := newManifest("subject")
	other := newManifest("other")
	putManifest(t, st, "repo", subject, "latest")
	putManifest(t, st, "repo", other, "keep")
	req, _ := referrer("sig", "application/example", subject)
	req.Tags = []string{"sig", "sig2"}
	noErr(t, st.PutManifest(ctx, "repo", req), "PutManifest referrer")
	putManifest(t, st, "mirror", req.Manifest, "sig")

	noErr(t, st.DeleteManifest(ctx, "repo", req.Manifest.Digest), "DeleteManifest")
	manifestUnknown(t, st, "repo", req.Manifest.Digest)
	tagUnknown(t, st, "repo", "sig")
	tagUnknown(t, st, "repo", "sig2")
	resolve(t, st, "repo", "latest", subject.Digest)
	resolve(t, st, "repo", "keep", other.Digest)
	refs, err := st.ListReferrers(ctx, "repo", subject.Digest)
	noErr(t, err, "ListReferrers after delete")
	if len(refs) != 0 {
		t.Fatalf("ListReferrers after delete = %+v", refs)
	}
	tags, err := st.ListTags(ctx, "repo", "", -1)
	noErr(t, err, "ListTags")
	equalStrings(t, "ListTags after delete", tags, []string{"keep", "latest"})
	// Other repositories keep their copy.
	checkManifest(t, st, "mirror", req.Manifest)
	resolve(t, st, "mirror", "sig", req.Manifest.Digest)

	wantErr(t, st.DeleteManifest(ctx, "repo", req.Manifest.Digest), storage.ErrManifestUnknown, "DeleteManifest twice")
	wantErr(t, st.DeleteManifest(ctx, "nowhere", subject.Digest), storage.ErrManifestUnknown, "DeleteManifest in another repository")

	noErr(t, st.DeleteManifest(ctx, "repo", subject.Digest), "DeleteManifest of subject")
	tagUnknown(t, st, "repo", "latest")
	manifestUnknown(t, st, "repo", subject.Digest)
	checkManifest(t, st, "repo", other)

	// Pushing it again brings it back.
	putManifest(t, st, "repo", subject, "latest")
	resolve(t, st, "repo", "latest", subject.Digest)
}

func testDeleteTag(t *testing.T, st storage.Store) {
	ctx := t.Context()
	m := newManifest("m")
	putManifest(t, st, "repo", m, "a", "b")
	noErr(t, st.DeleteTag(ctx, "repo", "a"), "DeleteTag")
	tagUnknown(t, st, "repo", "a")
	resolve(t, st, "repo", "b", m.Digest)
	checkManifest(t, st, "repo", m)
	wantErr(t, st.DeleteTag(ctx, "repo", "a"), storage.ErrTagUnknown, "DeleteTag twice")
	wantErr(t, st.DeleteTag(ctx, "repo", "never"), storage.ErrTagUnknown, "DeleteTag unknown")
	wantErr(t, st.DeleteTag(ctx, "other", "b"), storage.ErrTagUnknown, "DeleteTag in another repository")
	noErr(t, st.DeleteTag(ctx, "repo", "b"), "DeleteTag last")
	checkManifest(t, st, "repo", m)
	tags, err := st.ListTags(ctx, "repo", "", -1)
	noErr(t, err, "ListTags with no tags left")
	equalStrings(t, "ListTags with no tags left", tags, nil)
}

func testListTags(t *testing.T, st storage.Store) {
	ctx := t.Context()
	all := []string{"1.0", "Latest", "_private", "latest", "v1", "v1.10", "v1.2", "v1.2-rc1", "v2"}
	shuffled := []string{"v1.2", "latest", "_private", "v2", "Latest", "v1", "1.0", "v1.10", "v1.2-rc1"}
	for i, tag := range shuffled {
		putManifest(t, st, "repo", newManifest(fmt.Sprint("tag", i)), tag)
	}
	for _, tc := range []struct {
		after string
		n     int
		want  []string
	}{
		{"", -1, all},
		{"", 100, all},
		{"", 0, nil},
		{"", 3, all[:3]},
		{"_private", 2, []string{"latest", "v1"}},
		{"v1", -1, all[5:]},
		{"v1.2", 1, []string{"v1.2-rc1"}},
		{"m", 2, []string{"v1", "v1.10"}}, // after need not be a tag
		{"v2", -1, nil},
		{"zzz", 5, nil},
	} {
		got, err := st.ListTags(ctx, "repo", tc.after, tc.n)
		noErr(t, err, "ListTags")
		equalStrings(t, fmt.Sprintf("ListTags(after %q, n %d)", tc.after, tc.n), got, tc.want)
	}
	// Paging through with n = 2 yields everything once.
	var paged []string
	for after := ""; ; {
		page, err := st.ListTags(ctx, "repo", after, 2)
		noErr(t, err, "ListTags page")
		if len(page) == 0 {
			break
		}
		if len(page) > 2 {
			t.Fatalf("ListTags page of %d with n = 2", len(page))
		}
		paged = append(paged, page...)
		after = page[len(page)-1]
	}
	equalStrings(t, "ListTags paged", paged, all)
}

func testListTagsUnknown(t *testing.T, st storage.Store) {
	ctx := t.Context()
	_, err := st.ListTags(ctx, "never/pushed", "", -1)
	wantErr(t, err, storage.ErrRepositoryUnknown, "ListTags of never-pushed repository")
	putManifest(t, st, "untagged", newManifest("untagged"))
	tags, err := st.ListTags(ctx, "untagged", "", -1)
	noErr(t, err, "ListTags of a repository without tags")
	equalStrings(t, "ListTags of a repository without tags", tags, nil)
	uploadBlob(t, st, "blobsonly", []byte("layer"))
	tags, err = st.ListTags(ctx, "blobsonly", "", -1)
	noErr(t, err, "ListTags of a repository with blobs only")
	equalStrings(t, "ListTags of a repository with blobs only", tags, nil)
	// A parent of a repository is not a repository.
	putManifest(t, st, "deep/nested/repo", newManifest("deep"), "latest")
	_, err = st.ListTags(ctx, "deep/nested", "", -1)
	wantErr(t, err, storage.ErrRepositoryUnknown, "ListTags of a parent path")
}

func testListRepositories(t *testing.T, st storage.Store) {
	ctx := t.Context()
	repos, err := st.ListRepositories(ctx, "", -1)
	noErr(t, err, "ListRepositories of empty store")
	equalStrings(t, "ListRepositories of empty store", repos, nil)

	// Pushed in a scrambled order; some with manifests, some with blobs only.
	names := []string{"b", "a/b/c", "a-b", "a", "library/ubuntu", "a/b", "a.b", "a_b", "z/y/x/w", "ab", "a/c"}
	for i, name := range names {
		if i%2 == 0 {
			putManifest(t, st, name, newManifest(name), "latest")
		} else {
			uploadBlob(t, st, name, []byte(name))
		}
	}
	want := slices.Clone(names)
	slices.Sort(want) // byte order: "a" < "a-b" < "a.b" < "a/b" < "a/b/c" < "a/c" < "a_b" < "ab" < ...

	for _, tc := range []struct {
		after string
		n     int
		want  []string
	}{
		{"", -1, want},
		{"", 1000, want},
		{"", 0, nil},
		{"", 4, want[:4]},
		{"a", 3, want[1:4]},
		{"a/b", -1, want[4:]},
		{"a/b/c", 2, want[5:7]},
		{"a/a", 1, []string{"a/b"}}, // after need not be a repository
		{"z/y/x/w", -1, nil},
	} {
		got, err := st.ListRepositories(ctx, tc.after, tc.n)
		noErr(t, err, "ListRepositories")
		equalStrings(t, fmt.Sprintf("ListRepositories(after %q, n %d)", tc.after, tc.n), got, tc.want)
	}
	var paged []string
	for after := ""; ; {
		page, err := st.ListRepositories(ctx, after, 3)
		noErr(t, err, "ListRepositories page")
		if len(page) == 0 {
			break
		}
		if len(page) > 3 {
			t.Fatalf("ListRepositories page of %d with n = 3", len(page))
		}
		paged = append(paged, page...)
		after = page[len(page)-1]
	}
	equalStrings(t, "ListRepositories paged", paged, want)
}

func testConcurrentCommit(t *testing.T, st storage.Store) {
	ctx := t.Context()
	b := content("concurrent", 1<<20+3)
	d := sha256Digest(b)
	const workers = 16
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for i := range workers {
		wg.Go(func() {
			repo := "shared"
			if i%2 == 1 {
				repo = fmt.Sprintf("own/%d", i)
			}
			u, err := st.BeginUpload(ctx, repo)
			if err != nil {
				errs[i] = err
				return
			}
			off := int64(0)
			for off < int64(len(b)) {
				end := min(off+300_000, int64(len(b)))
				if off, err = st.AppendUpload(ctx, repo, u.ID, off, bytes.NewReader(b[off:end])); err != nil {
					errs[i] = err
					return
				}
			}
			info, err := st.CommitUpload(ctx, repo, u.ID, d)
			if err == nil && (info.Digest != d || info.Size != int64(len(b))) {
				err = fmt.Errorf("CommitUpload = %+v", info)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		noErr(t, err, fmt.Sprintf("worker %d", i))
	}
	checkBlob(t, st, "shared", d, b)
	for i := 1; i < workers; i += 2 {
		checkBlob(t, st, fmt.Sprintf("own/%d", i), d, b)
	}
}

func testConcurrentTag(t *testing.T, st storage.Store) {
	ctx := t.Context()
	const workers = 12
	manifests := make(map[digest.Digest]storage.Manifest, workers)
	var list []storage.Manifest
	for i := range workers {
		m := newManifest(fmt.Sprint("racer", i))
		manifests[m.Digest] = m
		list = append(list, m)
	}

	done := make(chan struct{})
	readerErr := make(chan error, 1)
	go func() {
		defer close(readerErr)
		for {
			select {
			case <-done:
				return
			default:
			}
			d, err := st.ResolveTag(ctx, "repo", "latest")
			if errors.Is(err, storage.ErrTagUnknown) {
				continue // not pushed yet
			}
			if err != nil {
				readerErr <- fmt.Errorf("ResolveTag during pushes: %w", err)
				return
			}
			if _, ok := manifests[d]; !ok {
				readerErr <- fmt.Errorf("tag points at %s, which nobody pushed", d)
				return
			}
			if _, err := st.GetManifest(ctx, "repo", d); err != nil {
				readerErr <- fmt.Errorf("tag points at %s, which is not there: %w", d, err)
				return
			}
		}
	}()

	var wg sync.WaitGroup
	errs := make([]error, workers)
	for i, m := range list {
		wg.Go(func() {
			for range 3 {
				if err := st.PutManifest(ctx, "repo", storage.PutManifestRequest{Manifest: m, Tags: []string{"latest"}}); err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	wg.Wait()
	close(done)
	if err := <-readerErr; err != nil {
		t.Fatal(err)
	}
	for i, err := range errs {
		noErr(t, err, fmt.Sprintf("PutManifest worker %d", i))
	}
	d, err := st.ResolveTag(ctx, "repo", "latest")
	noErr(t, err, "ResolveTag after the race")
	m, ok := manifests[d]
	if !ok {
		t.Fatalf("tag points at %s, which nobody pushed", d)
	}
	checkManifest(t, st, "repo", m)
	for _, m := range list {
		checkManifest(t, st, "repo", m)
	}
}

// testOpenBlobStreams checks that OpenBlob hands back a stream: opening a
// large blob and reading a little of it must not allocate anything like the
// blob's size.
func testOpenBlobStreams(t *testing.T, st storage.Store) {
	ctx := t.Context()
	const size = 32 << 20
	b := content("stream", size)
	d := sha256Digest(b)
	u := begin(t, st, "repo")
	off := int64(0)
	for off < size {
		end := min(off+4<<20, size)
		off = appendChunk(t, st, "repo", u.ID, off, b[off:end])
	}
	_, err := st.CommitUpload(ctx, "repo", u.ID, d)
	noErr(t, err, "CommitUpload")

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	rc, err := st.OpenBlob(ctx, "repo", d, 1000, -1)
	noErr(t, err, "OpenBlob")
	head := make([]byte, 4096)
	if _, err := io.ReadFull(rc, head); err != nil {
		t.Fatalf("read head: %v", err)
	}
	runtime.ReadMemStats(&after)
	if grown := after.TotalAlloc - before.TotalAlloc; grown > size/4 {
		t.Fatalf("OpenBlob of a %d byte blob allocated %d bytes before the first 4 KiB were read: not streaming", size, grown)
	}
	if !bytes.Equal(head, b[1000:1000+4096]) {
		t.Fatal("OpenBlob: wrong head")
	}
	// The rest streams correctly, and closing early is fine.
	h := sha256.New()
	h.Write(b[:1000])
	h.Write(head)
	n, err := io.Copy(h, rc)
	noErr(t, err, "read rest")
	if n != size-1000-4096 || digest.Digest("sha256:"+hex.EncodeToString(h.Sum(nil))) != d {
		t.Fatalf("OpenBlob: streamed %d bytes that do not hash to %s", n, d)
	}
	noErr(t, rc.Close(), "Close")
	rc, err = st.OpenBlob(ctx, "repo", d, 0, -1)
	noErr(t, err, "OpenBlob again")
	noErr(t, rc.Close(), "Close before reading")
}

// ---------------------------------------------------------------------------
// restart tests

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

func testReopenContent(t *testing.T, st storage.Store, reopen func(storage.Store) storage.Store) {
	ctx := t.Context()
	layer := content("layer", 10_000)
	ld := uploadBlob(t, st, "app", layer)
	subject := newManifest("subject")
	putManifest(t, st, "app", subject, "latest", "v1")
	req, desc := referrer("sig", "application/example", subject)
	noErr(t, st.PutManifest(ctx, "app", req), "PutManifest referrer")

	st2 := reopen(st)
	checkBlob(t, st2, "app", ld, layer)
	checkManifest(t, st2, "app", subject)
	resolve(t, st2, "app", "latest", subject.Digest)
	tags, err := st2.ListTags(ctx, "app", "", -1)
	noErr(t, err, "ListTags after reopen")
	equalStrings(t, "ListTags after reopen", tags, []string{"latest", "v1"})
	repos, err := st2.ListRepositories(ctx, "", -1)
	noErr(t, err, "ListRepositories after reopen")
	equalStrings(t, "ListRepositories after reopen", repos, []string{"app"})
	refs, err := st2.ListReferrers(ctx, "app", subject.Digest)
	noErr(t, err, "ListReferrers after reopen")
	if len(refs) != 1 || !sameDescriptor(refs[0], desc) {
		t.Fatalf("ListReferrers after reopen = %+v", refs)
	}
	noErr(t, st2.DeleteManifest(ctx, "app", req.Manifest.Digest), "DeleteManifest after reopen")
	refs, err = st.ListReferrers(ctx, "app", subject.Digest)
	noErr(t, err, "ListReferrers in first instance")
	if len(refs) != 0 {
		t.Fatalf("ListReferrers in first instance after delete = %+v", refs)
	}
	noErr(t, st2.Ping(ctx), "Ping after reopen")
}
