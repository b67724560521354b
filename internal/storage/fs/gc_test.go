package fs

import (
	"bytes"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/berth-registry/berth/internal/gc"
	"github.com/berth-registry/berth/internal/storage"

	"github.com/berth-registry/berth/internal/storage/backend"
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
			g, _ := backend.ParseDigest(d)
			must(b, st.writeFileAtomic(st.blobPath(g), data))
			must(b, st.writeFileAtomic(blobLinkPath(rdir, g), []byte(d)))
		}
		g, _ := backend.ParseDigest(img.Manifest.Digest)
		must(b, st.writeFileAtomic(st.blobPath(g), img.Manifest.Data))
		if img.Live {
			must(b, st.writeFileAtomic(revisionPath(rdir, g), backend.FormatRevision(img.Manifest.MediaType, "")))
			must(b, st.writeFileAtomic(filepath.Join(tagsDir(rdir), img.Tag), []byte(img.Manifest.Digest)))
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
	g, _ := backend.ParseDigest(d)
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

// TestGCStaleTempFiles: temporary files a crash left behind (a write never
// renamed into place) are removed by garbage collection once older than the
// grace period, counted in what it frees and listed by a dry run; younger
// ones (a write in progress), those inside upload sessions and anything that
// is not a regular .tmp- file stay.
func TestGCStaleTempFiles(t *testing.T) {
	ctx := t.Context()
	st := newStore(t)
	m := manifest("keep")
	must(t, st.PutManifest(ctx, "team/app", storage.PutManifestRequest{Manifest: m, Tags: []string{"v1"}}))
	u, err := st.BeginUpload(ctx, "team/app")
	must(t, err)
	root := st.Root()
	rdir := filepath.Join(root, "repositories", "team", "app")

	now := time.Now()
	old, young := now.Add(-3*time.Hour), now.Add(-10*time.Minute)
	plant := func(rel string, size int, mod time.Time) string {
		p := filepath.Join(root, filepath.FromSlash(rel))
		writeFile(t, p, bytes.Repeat([]byte("x"), size))
		must(t, os.Chtimes(p, mod, mod))
		return p
	}
	stale := map[string]int{ // path -> size
		"blobs/sha256/ab/.tmp-1234":                                1 << 20,
		"repositories/team/app/_manifests/tags/.tmp-99":            71,
		"repositories/team/app/_manifests/revisions/sha256/.tmp-5": 40,
		"repositories/team/app/_blobs/sha256/.tmp-6":               71,
		".tmp-ping-7": 0,
	}
	var staleBytes int64
	for rel, n := range stale {
		plant(rel, n, old)
		staleBytes += int64(n)
	}
	kept := []string{
		plant("blobs/sha256/ab/.tmp-young", 500, young),                      // a write in progress
		plant("repositories/team/app/_uploads/"+u.ID+"/.tmp-state", 30, old), // PurgeUploads' business
		plant("repositories/team/app/_uploads/.tmp-half", 30, old),
		plant("blobs/sha256/ab/not-tmp", 12, old),
		filepath.Join(rdir, "_manifests", "tags", "v1"),
	}
	must(t, os.Mkdir(filepath.Join(root, "blobs", "sha256", ".tmp-dir"), 0o755))
	kept = append(kept, filepath.Join(root, "blobs", "sha256", ".tmp-dir"))
	must(t, os.Symlink(kept[0], filepath.Join(root, "blobs", "sha256", "ab", ".tmp-link")))
	kept = append(kept, filepath.Join(root, "blobs", "sha256", "ab", ".tmp-link"))

	opts := gc.Options{GracePeriod: time.Hour, DryRun: true}
	dry, err := gc.Run(ctx, st, opts)
	must(t, err)
	if dry.TempFiles != len(stale) || dry.TempBytes != staleBytes {
		t.Fatalf("dry run: %d temp files (%d bytes), want %d (%d)", dry.TempFiles, dry.TempBytes, len(stale), staleBytes)
	}
	listed := map[string]int{}
	for _, f := range dry.TempFileList {
		listed[f.Path] = int(f.Size)
	}
	if !maps.Equal(listed, stale) {
		t.Fatalf("dry run lists %v, want %v", listed, stale)
	}
	for rel := range stale {
		if _, err := os.Lstat(filepath.Join(root, rel)); err != nil {
			t.Fatalf("dry run removed %s: %v", rel, err)
		}
	}

	opts.DryRun = false
	real, err := gc.Run(ctx, st, opts)
	must(t, err)
	if real.TempFiles != dry.TempFiles || real.TempBytes != dry.TempBytes || len(real.TempFileList) != len(dry.TempFileList) {
		t.Fatalf("real run: %d temp files (%d bytes), dry run said %d (%d)", real.TempFiles, real.TempBytes, dry.TempFiles, dry.TempBytes)
	}
	for rel := range stale {
		if _, err := os.Lstat(filepath.Join(root, rel)); !os.IsNotExist(err) {
			t.Errorf("stale %s not removed: %v", rel, err)
		}
	}
	for _, p := range kept {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s removed: %v", p, err)
		}
	}
	checkManifest, err := st.GetManifest(ctx, "team/app", m.Digest)
	if err != nil || !bytes.Equal(checkManifest.Data, m.Data) {
		t.Fatalf("manifest after gc: %v", err)
	}
	if _, err := st.StatUpload(ctx, "team/app", u.ID); err != nil {
		t.Fatalf("upload session after gc: %v", err)
	}
	again, err := gc.Run(ctx, st, opts)
	must(t, err)
	if again.TempFiles != 0 {
		t.Fatalf("second run removed %d temp files", again.TempFiles)
	}

	// Grace period 0: a temp file written within gc.MinTempAge stays (the
	// one written 10 minutes ago goes now).
	recent := plant("blobs/sha256/cd/.tmp-recent", 10, now.Add(-gc.MinTempAge/2))
	rep, err := gc.Run(ctx, st, gc.Options{GracePeriod: 0})
	must(t, err)
	if rep.TempFiles != 1 || rep.TempBytes != 500 || rep.TempFileList[0].Path != "blobs/sha256/ab/.tmp-young" {
		t.Fatalf("grace 0: removed %+v, want only .tmp-young", rep.TempFileList)
	}
	if _, err := os.Lstat(recent); err != nil {
		t.Fatalf("grace 0 removed a temp file younger than MinTempAge: %v", err)
	}
	// ... and one just older goes.
	must(t, os.Chtimes(recent, now.Add(-2*gc.MinTempAge), now.Add(-2*gc.MinTempAge)))
	rep, err = gc.Run(ctx, st, gc.Options{GracePeriod: 0})
	must(t, err)
	if rep.TempFiles != 1 || rep.TempBytes != 10 {
		t.Fatalf("grace 0: removed %d temp files (%d bytes), want 1 (10)", rep.TempFiles, rep.TempBytes)
	}
}

// TestDeleteTempFile: the delete re-checks the time and refuses anything
// that is not a temporary file outside the upload sessions.
func TestDeleteTempFile(t *testing.T) {
	ctx := t.Context()
	st := newStore(t)
	root := st.Root()
	p := filepath.Join(root, "blobs", "sha256", "ab", ".tmp-1")
	writeFile(t, p, []byte("abc"))
	cutoff := time.Now().Add(-time.Hour)
	_, err := st.DeleteTempFile(ctx, "blobs/sha256/ab/.tmp-1", cutoff)
	mustIs(t, err, storage.ErrInUse, "DeleteTempFile of a file written after the cutoff")
	old := time.Now().Add(-2 * time.Hour)
	must(t, os.Chtimes(p, old, old))
	n, err := st.DeleteTempFile(ctx, "blobs/sha256/ab/.tmp-1", cutoff)
	if err != nil || n != 3 {
		t.Fatalf("DeleteTempFile = %d, %v; want 3", n, err)
	}
	n, err = st.DeleteTempFile(ctx, "blobs/sha256/ab/.tmp-1", cutoff)
	if err != nil || n != 0 {
		t.Fatalf("DeleteTempFile of a gone file = %d, %v; want 0, nil", n, err)
	}
	writeFile(t, filepath.Join(root, "blobs", "sha256", "ab", "abcd"), []byte("x"))
	for _, bad := range []string{"../.tmp-x", "/etc/.tmp-x", "blobs/sha256/ab/abcd", "repositories/r/_uploads/.tmp-1", "repositories/r/_uploads/0123/.tmp-1", "blobs/../../.tmp-x"} {
		if _, err := st.DeleteTempFile(ctx, bad, time.Now()); !errors.Is(err, ErrInvalidName) {
			t.Errorf("DeleteTempFile(%q) = %v, want ErrInvalidName", bad, err)
		}
	}
	if _, err := os.Lstat(filepath.Join(root, "blobs", "sha256", "ab", "abcd")); err != nil {
		t.Fatal("a blob was removed")
	}
}
