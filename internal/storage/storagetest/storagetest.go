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
	"slices"
	"testing"

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
		{name: "WalkReferrers", fn: testWalkReferrers},
		{name: "DeleteManifest", fn: testDeleteManifest},
		{name: "DeleteTag", fn: testDeleteTag},
		{name: "ListTags", fn: testListTags},
		{name: "ListTagsUnknownRepository", fn: testListTagsUnknown},
		{name: "ListRepositories", fn: testListRepositories},
		{name: "ConcurrentCommitSameBlob", fn: testConcurrentCommit},
		{name: "ConcurrentPutSameTag", fn: testConcurrentTag},
		{name: "OpenBlobStreams", fn: testOpenBlobStreams, serial: true},
		// storage.Browser (browse.go)
		{name: "BrowseTagInfo", fn: testBrowseTagInfo},
		{name: "BrowseManifests", fn: testBrowseManifests},
		{name: "StatRepository", fn: testStatRepository},
	}
	for _, tc := range gcTests {
		tests = append(tests, struct {
			name   string
			fn     func(t *testing.T, st storage.Store)
			serial bool
		}{name: tc.name, fn: tc.fn})
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

// testOpenBlobStreams checks that OpenBlob hands back a stream: opening a
// large blob and reading a little of it must not allocate anything like the
// blob's size.
