package fs

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/berth-registry/berth/internal/storage"

	"github.com/berth-registry/berth/internal/storage/layout"
	"github.com/berth-registry/berth/internal/storage/storagetest"
)

// BenchmarkGC: 1000 images of 8 layers (10,000 blobs) in 100 repositories,
// a fifth of them deleted.
func BenchmarkGC(b *testing.B) {
	st := newStore(b)
	images := storagetest.GCBenchImages(1000, 8)
	for _, img := range images {
		rdir, err := st.repoDir(img.Repo, nil)
		if err != nil {
			b.Fatal(err)
		}
		for d, data := range img.Blobs {
			g, _ := layout.ParseDigest(d)
			must(b, writeFileAtomic(st.blobPath(g), data))
			must(b, writeFileAtomic(blobLinkPath(rdir, g), []byte(d)))
		}
		g, _ := layout.ParseDigest(img.Manifest.Digest)
		must(b, writeFileAtomic(st.blobPath(g), img.Manifest.Data))
		if img.Live {
			must(b, writeFileAtomic(revisionPath(rdir, g), layout.FormatRevision(img.Manifest.MediaType, "")))
			must(b, writeFileAtomic(filepath.Join(tagsDir(rdir), img.Tag), []byte(img.Manifest.Digest)))
		}
	}
	storagetest.BenchmarkGC(b, st, images)
}

// TestTrashRecovered: a deletion interrupted by a crash between its rename and
// its check leaves a .del- file; the next walk puts it back when nothing
// replaced it (the collector may have been about to restore it), and a
// deletion in flight (younger than a minute) is left alone.
func TestTrashRecovered(t *testing.T) {
	ctx := t.Context()
	st := newStore(t)
	b := []byte("content renamed away by a crashed collector")
	d := sha256Of(b)
	u, err := st.BeginUpload(ctx, "repo")
	must(t, err)
	_, err = st.AppendUpload(ctx, "repo", u.ID, 0, bytes.NewReader(b))
	must(t, err)
	_, err = st.CommitUpload(ctx, "repo", u.ID, d)
	must(t, err)
	g, _ := layout.ParseDigest(d)
	rdir, _ := st.repoDir("repo", nil)
	blob, link := st.blobPath(g), blobLinkPath(rdir, g)
	crashed := func(path string, at time.Time) string {
		trash := filepath.Join(filepath.Dir(path), delPrefix+filepath.Base(path)+"-"+strconv.FormatInt(at.UnixNano(), 10))
		must(t, os.Rename(path, trash))
		return trash
	}
	oldBlob, oldLink := crashed(blob, time.Now().Add(-2*time.Minute)), crashed(link, time.Now().Add(-2*time.Minute))
	if _, err := st.StatBlob(ctx, "repo", d); err == nil {
		t.Fatal("test bug: blob still visible")
	}
	must(t, st.WalkBlobs(ctx, func(storage.StoredBlob) error { return nil }))
	_, err = st.ScanRepository(ctx, "repo")
	must(t, err)
	for _, p := range []string{oldBlob, oldLink} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Fatalf("%s left behind: %v", p, err)
		}
	}
	info, err := st.StatBlob(ctx, "repo", d)
	if err != nil || info.Size != int64(len(b)) {
		t.Fatalf("StatBlob after recovery = %+v, %v", info, err)
	}
	// In flight: left alone.
	young := crashed(blob, time.Now())
	must(t, st.WalkBlobs(ctx, func(storage.StoredBlob) error { return nil }))
	if _, err := os.Lstat(young); err != nil {
		t.Fatalf("a deletion in flight was disturbed: %v", err)
	}
}
