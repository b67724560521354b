package storagetest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"runtime"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/storage"
)

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
