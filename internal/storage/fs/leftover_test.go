package fs

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berth-registry/berth/internal/gc"
	"github.com/berth-registry/berth/internal/storage"
)

// age sets the modification time of path and everything under it to t.
func age(t *testing.T, path string, at time.Time) {
	t.Helper()
	err := filepath.WalkDir(path, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Chtimes(p, at, at)
	})
	must(t, err)
}

// TestGCStaleTempDirs: the .tmp-* directories a crash leaves while new
// directories are assembled (writeInNewDir) are listed by a dry run with the
// bytes in them and removed by a real run when nothing in them was modified
// within the grace period; a young one (a write in progress) and one with
// a young file stay. Before the fix only .tmp-* files were collected.
func TestGCStaleTempDirs(t *testing.T) {
	ctx := t.Context()
	st := newStore(t)
	must(t, st.PutManifest(ctx, "team/app", storage.PutManifestRequest{Manifest: manifest("keep"), Tags: []string{"v1"}}))
	root := st.Root()
	old, young := time.Now().Add(-3*time.Hour), time.Now().Add(-10*time.Minute)
	tree := func(rel string, files map[string]int, mod time.Time) string {
		dir := filepath.Join(root, filepath.FromSlash(rel))
		must(t, os.MkdirAll(dir, 0o755))
		for name, n := range files {
			writeFile(t, filepath.Join(dir, filepath.FromSlash(name)), bytes.Repeat([]byte("y"), n))
		}
		age(t, dir, mod)
		return dir
	}
	hex := strings.Repeat("ab", 32)
	stale := map[string]int{
		"blobs/sha512/.tmp-11":                        0, // an empty one
		"blobs/sha256/.tmp-12":                        300,
		"repositories/.tmp-13":                        71 + 40, // a new repository
		"repositories/team/app/_manifests/.tmp-14":    90,
		"repositories/team/app/_blobs/sha256/.tmp-15": 0,
	}
	tree("blobs/sha512/.tmp-11", nil, old)
	tree("blobs/sha256/.tmp-12", map[string]int{"ab/.tmp-99": 300}, old)
	tree("repositories/.tmp-13", map[string]int{"_blobs/sha256/" + hex: 71, "_manifests/tags/v1": 40}, old)
	tree("repositories/team/app/_manifests/.tmp-14", map[string]int{"tags/v2": 90}, old)
	tree("repositories/team/app/_blobs/sha256/.tmp-15", nil, old)
	var staleBytes int64
	for _, n := range stale {
		staleBytes += int64(n)
	}
	kept := []string{
		tree("blobs/sha256/.tmp-young", map[string]int{"ab/.tmp-1": 5}, young),
		tree("repositories/team/.tmp-16", map[string]int{"app2/_manifests/tags/v1": 5}, old),
	}
	// A file written into an old temporary directory just now keeps it.
	writeFile(t, filepath.Join(kept[1], "app2", "_manifests", "tags", "v2"), []byte("new"))

	opts := gc.Options{GracePeriod: time.Hour, DryRun: true}
	dry, err := gc.Run(ctx, st, opts)
	must(t, err)
	listed := map[string]int{}
	for _, f := range dry.TempFileList {
		listed[f.Path] = int(f.Size)
	}
	if !maps.Equal(listed, stale) || dry.TempFiles != len(stale) || dry.TempBytes != staleBytes {
		t.Fatalf("dry run: %d (%d bytes) %v, want %v (%d bytes)", dry.TempFiles, dry.TempBytes, listed, stale, staleBytes)
	}
	for rel := range stale {
		if _, err := os.Lstat(filepath.Join(root, rel)); err != nil {
			t.Fatalf("dry run removed %s: %v", rel, err)
		}
	}
	opts.DryRun = false
	real, err := gc.Run(ctx, st, opts)
	must(t, err)
	if real.TempFiles != dry.TempFiles || real.TempBytes != dry.TempBytes {
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
	if tags, err := st.ListTags(ctx, "team/app", "", -1); err != nil || !slices.Equal(tags, []string{"v1"}) {
		t.Fatalf("tags after gc: %v, %v", tags, err)
	}
}

// TestEmptyRepositoryDirs: repository directories holding only empty
// directories, as a failed write of an older version left them (a mount
// into mnt/a on a full disk left mnt/a/_blobs/sha256/), are not in the
// catalog, and garbage collection removes them — the highest empty
// directory, a namespace too — once nothing in them changed within the grace
// period. Before the fix the catalog listed them and nothing removed them.
func TestEmptyRepositoryDirs(t *testing.T) {
	ctx := t.Context()
	st := newStore(t)
	data := []byte("a layer")
	d := sha256Of(data)
	u, err := st.BeginUpload(ctx, "mnt/b")
	must(t, err)
	_, err = st.AppendUpload(ctx, "mnt/b", u.ID, 0, bytes.NewReader(data))
	must(t, err)
	_, err = st.CommitUpload(ctx, "mnt/b", u.ID, d)
	must(t, err)
	pending, err := st.BeginUpload(ctx, "pending") // a session only
	must(t, err)

	root := st.Root()
	repos := filepath.Join(root, "repositories")
	old, young := time.Now().Add(-3*time.Hour), time.Now().Add(-10*time.Minute)
	mk := func(rel string, mod time.Time) string {
		p := filepath.Join(repos, filepath.FromSlash(rel))
		must(t, os.MkdirAll(p, 0o755))
		age(t, filepath.Join(repos, strings.Split(rel, "/")[0]), mod)
		return p
	}
	mk("mnt/a/_blobs/sha256", old)
	mk("deep/ns/x/_manifests/tags", old)
	mk("deep/ns/y/_uploads", old)
	writeFile(t, filepath.Join(repos, "deep", "ns", "y", "_blobs", "sha256", ".tmp-3"), []byte("partial"))
	age(t, filepath.Join(repos, "deep"), old)
	mk("fresh/_manifests/revisions/sha256", young)
	age(t, filepath.Join(repos, "mnt", "b"), time.Now()) // touched by the commit above anyway

	stale := map[string]int{"repositories/mnt/a": 0, "repositories/deep": len("partial")}
	opts := gc.Options{GracePeriod: time.Hour, DryRun: true}
	dry, err := gc.Run(ctx, st, opts)
	must(t, err)
	listed := map[string]int{}
	for _, f := range dry.TempFileList {
		listed[f.Path] = int(f.Size)
	}
	if !maps.Equal(listed, stale) {
		t.Fatalf("dry run lists %v, want %v", listed, stale)
	}
	opts.DryRun = false
	real, err := gc.Run(ctx, st, opts)
	must(t, err)
	if real.TempFiles != 2 || real.TempBytes != int64(len("partial")) {
		t.Fatalf("real run removed %d (%d bytes): %+v", real.TempFiles, real.TempBytes, real.TempFileList)
	}
	for _, rel := range []string{"mnt/a", "deep"} {
		if _, err := os.Lstat(filepath.Join(repos, rel)); !os.IsNotExist(err) {
			t.Errorf("repositories/%s not removed: %v", rel, err)
		}
	}
	list, err := st.ListRepositories(ctx, "", -1)
	must(t, err)
	if want := []string{"fresh", "mnt/b", "pending"}; !slices.Equal(list, want) {
		t.Fatalf("ListRepositories after gc = %v, want %v", list, want)
	}
	_, err = st.ListTags(ctx, "mnt/a", "", -1)
	mustIs(t, err, storage.ErrRepositoryUnknown, "ListTags of a removed empty repository directory")
	if _, err := os.Lstat(filepath.Join(repos, "fresh")); err != nil {
		t.Errorf("a young empty directory was removed: %v", err)
	}
	if _, err := st.StatBlob(ctx, "mnt/b", d); err != nil {
		t.Fatalf("mnt/b after gc: %v", err)
	}
	if _, err := st.StatUpload(ctx, "pending", pending.ID); err != nil {
		t.Fatalf("session after gc: %v", err)
	}
	// The name works as a new repository afterwards.
	_, err = st.MountBlob(ctx, "mnt/a", "mnt/b", d)
	must(t, err)
	list, err = st.ListRepositories(ctx, "", -1)
	must(t, err)
	if want := []string{"fresh", "mnt/a", "mnt/b", "pending"}; !slices.Equal(list, want) {
		t.Fatalf("ListRepositories = %v, want %v", list, want)
	}
}

// TestDeleteEmptyRepositoryRechecks: the removal of an empty repository
// directory looks again: one written to since it was listed stays, and so
// does one with a recent modification.
func TestDeleteEmptyRepositoryRechecks(t *testing.T) {
	ctx := t.Context()
	st := newStore(t)
	repos := filepath.Join(st.Root(), "repositories")
	dir := filepath.Join(repos, "r", "_blobs", "sha256")
	must(t, os.MkdirAll(dir, 0o755))
	age(t, filepath.Join(repos, "r"), time.Now().Add(-2*time.Hour))
	cutoff := time.Now().Add(-time.Hour)

	hex := strings.Repeat("cd", 32)
	writeFile(t, filepath.Join(dir, hex), []byte("sha256:"+hex))
	age(t, filepath.Join(repos, "r"), time.Now().Add(-2*time.Hour))
	_, err := st.DeleteTempFile(ctx, "repositories/r", cutoff)
	mustIs(t, err, storage.ErrInUse, "DeleteTempFile of a repository holding a link")
	must(t, os.Remove(filepath.Join(dir, hex)))

	writeFile(t, filepath.Join(dir, ".tmp-1"), []byte("x")) // a write in progress
	_, err = st.DeleteTempFile(ctx, "repositories/r", cutoff)
	mustIs(t, err, storage.ErrInUse, "DeleteTempFile of a repository being written to")

	age(t, filepath.Join(repos, "r"), time.Now().Add(-2*time.Hour))
	n, err := st.DeleteTempFile(ctx, "repositories/r", cutoff)
	if err != nil || n != 1 {
		t.Fatalf("DeleteTempFile = %d, %v; want 1", n, err)
	}
	entries, err := os.ReadDir(repos)
	must(t, err)
	if len(entries) != 0 {
		t.Fatalf("left in repositories/: %v", entries)
	}
	for _, bad := range []string{"repositories", "repositories/UPPER", "blobs/sha256", "repositories/r/_blobs"} {
		if _, err := st.DeleteTempFile(ctx, bad, time.Now()); err == nil {
			t.Errorf("DeleteTempFile(%q) succeeded", bad)
		}
	}
}

// BenchmarkListRepositories: the whole catalog of 1000 repositories, 500
// tagged and 500 holding only untagged manifests and blob links (the
// catalog looks into each for a tag, a revision or a link).
func BenchmarkListRepositories(b *testing.B) {
	st := newStore(b)
	hex := strings.Repeat("ef", 32)
	for i := range 1000 {
		rdir, err := st.repoDir(fmt.Sprintf("ns%d/repo%d", i%10, i), nil)
		must(b, err)
		must(b, st.writeFileAtomic(filepath.Join(rdir, dirBlobs, "sha256", hex), []byte("sha256:"+hex)))
		must(b, st.writeFileAtomic(filepath.Join(rdir, dirManifests, "revisions", "sha256", hex), []byte("x")))
		if i%2 == 0 {
			must(b, st.writeFileAtomic(filepath.Join(tagsDir(rdir), "latest"), []byte("sha256:"+hex)))
		}
	}
	b.ResetTimer()
	for range b.N {
		repos, err := st.ListRepositories(b.Context(), "", -1)
		if err != nil || len(repos) != 1000 {
			b.Fatalf("%d repositories, %v", len(repos), err)
		}
	}
}
