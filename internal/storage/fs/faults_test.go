package fs

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/berth-registry/berth/internal/storage"
	"github.com/berth-registry/berth/internal/storage/storagetest"
)

var errCrash = errors.New("test: process killed here")

// crashAt returns Faults whose Commit hook "kills the process" (returns
// errCrash, abandoning the state) before the given steps, in order of calls.
func crashAt(steps ...string) Faults {
	return Faults{Commit: func(step string) error {
		if len(steps) > 0 && steps[0] == step {
			steps = steps[1:]
			return errCrash
		}
		return nil
	}}
}

// TestCommitCrashRetry: a commit killed before any of its steps leaves a
// session that a retried CommitUpload on a restarted store (same root)
// completes without the data being sent again; so does a retry killed in
// turn. Before the fix, a kill after the move into the blob store (before
// "link" or "remove") stranded the upload: ErrUploadUnknown.
func TestCommitCrashRetry(t *testing.T) {
	data := bytes.Repeat([]byte("berth crash "), 100_000)
	d := sha256Of(data)
	for _, crash := range [][]string{{"move"}, {"link"}, {"remove"}, {"link", "link"}, {"link", "remove"}, {"remove", "remove"}} {
		t.Run(strings.Join(crash, "+"), func(t *testing.T) {
			ctx := t.Context()
			root := t.TempDir()
			st, err := New(root, WithFaults(crashAt(crash[0])))
			must(t, err)
			u, err := st.BeginUpload(ctx, "crash/repo")
			must(t, err)
			_, err = st.AppendUpload(ctx, "crash/repo", u.ID, 0, bytes.NewReader(data[:len(data)/2]))
			must(t, err)
			_, err = st.AppendUpload(ctx, "crash/repo", u.ID, int64(len(data)/2), bytes.NewReader(data[len(data)/2:]))
			must(t, err)
			_, err = st.CommitUpload(ctx, "crash/repo", u.ID, d)
			mustIs(t, err, errCrash, "CommitUpload")

			// Every further crash happens in a retry, on a new process.
			for _, step := range crash[1:] {
				st, err = New(root, WithFaults(crashAt(step)))
				must(t, err)
				_, err = st.CommitUpload(ctx, "crash/repo", u.ID, d)
				mustIs(t, err, errCrash, "retried CommitUpload")
			}

			st, err = New(root)
			must(t, err)
			info, err := st.StatUpload(ctx, "crash/repo", u.ID)
			if err != nil || info.Size != int64(len(data)) {
				t.Fatalf("StatUpload after the crash = %+v, %v; want size %d", info, err, len(data))
			}
			got, err := st.CommitUpload(ctx, "crash/repo", u.ID, d)
			if err != nil || got.Digest != d || got.Size != int64(len(data)) {
				t.Fatalf("retried CommitUpload = %+v, %v", got, err)
			}
			rc, err := st.OpenBlob(ctx, "crash/repo", d, 0, -1)
			must(t, err)
			b, err := io.ReadAll(rc)
			rc.Close()
			must(t, err)
			if !bytes.Equal(b, data) {
				t.Fatalf("blob holds %d bytes hashing to %s", len(b), sha256Of(b))
			}
			_, err = st.StatUpload(ctx, "crash/repo", u.ID)
			mustIs(t, err, storage.ErrUploadUnknown, "StatUpload after the commit")
			_, err = st.CommitUpload(ctx, "crash/repo", u.ID, d)
			mustIs(t, err, storage.ErrUploadUnknown, "CommitUpload after the commit")
		})
	}
}

// TestCommitCrashRetryOtherDigest: after a crash past the move, a retry
// claiming another digest is refused and does not link anything.
func TestCommitCrashRetryOtherDigest(t *testing.T) {
	ctx := t.Context()
	root := t.TempDir()
	st, err := New(root, WithFaults(crashAt("link")))
	must(t, err)
	data, other := []byte("the content"), []byte("someone else's blob")
	u, err := st.BeginUpload(ctx, "repo")
	must(t, err)
	_, err = st.AppendUpload(ctx, "repo", u.ID, 0, bytes.NewReader(data))
	must(t, err)
	_, err = st.CommitUpload(ctx, "repo", u.ID, sha256Of(data))
	mustIs(t, err, errCrash, "CommitUpload")

	st, err = New(root)
	must(t, err)
	// other is stored, in another repository.
	u2, err := st.BeginUpload(ctx, "elsewhere")
	must(t, err)
	_, err = st.AppendUpload(ctx, "elsewhere", u2.ID, 0, bytes.NewReader(other))
	must(t, err)
	_, err = st.CommitUpload(ctx, "elsewhere", u2.ID, sha256Of(other))
	must(t, err)

	_, err = st.CommitUpload(ctx, "repo", u.ID, sha256Of(other))
	mustIs(t, err, storage.ErrDigestMismatch, "retry with another digest")
	_, err = st.StatBlob(ctx, "repo", sha256Of(other))
	mustIs(t, err, storage.ErrBlobUnknown, "StatBlob of the other digest")
	_, err = st.StatUpload(ctx, "repo", u.ID)
	mustIs(t, err, storage.ErrUploadUnknown, "StatUpload after the mismatch")
}

// diskFull returns Faults that fail every write with ENOSPC while *full is set.
func diskFull(full *atomic.Bool) Faults {
	return Faults{Write: func(path string) error {
		if full.Load() {
			return &os.PathError{Op: "write", Path: path, Err: syscall.ENOSPC}
		}
		return nil
	}}
}

// TestDiskFull: every write on a full disk wraps ErrInsufficientStorage, and
// writes that would create a repository leave none behind, not even after a
// restart.
func TestDiskFull(t *testing.T) {
	ctx := t.Context()
	root := t.TempDir()
	var full atomic.Bool
	st, err := New(root, WithFaults(diskFull(&full)))
	must(t, err)

	data := []byte("layer bytes")
	u, err := st.BeginUpload(ctx, "src")
	must(t, err)
	_, err = st.AppendUpload(ctx, "src", u.ID, 0, bytes.NewReader(data))
	must(t, err)
	_, err = st.CommitUpload(ctx, "src", u.ID, sha256Of(data))
	must(t, err)
	m := manifest("src")
	must(t, st.PutManifest(ctx, "src", storage.PutManifestRequest{Manifest: m}))
	pending, err := st.BeginUpload(ctx, "src")
	must(t, err)

	full.Store(true)
	_, err = st.BeginUpload(ctx, "src")
	mustIs(t, err, storage.ErrInsufficientStorage, "BeginUpload")
	_, err = st.BeginUpload(ctx, "fresh")
	mustIs(t, err, storage.ErrInsufficientStorage, "BeginUpload in a new repository")
	_, err = st.AppendUpload(ctx, "src", pending.ID, 0, strings.NewReader("more"))
	mustIs(t, err, storage.ErrInsufficientStorage, "AppendUpload")
	err = st.PutManifest(ctx, "src", storage.PutManifestRequest{Manifest: manifest("other")})
	mustIs(t, err, storage.ErrInsufficientStorage, "PutManifest")
	err = st.PutManifest(ctx, "src", storage.PutManifestRequest{Manifest: m, Tags: []string{"v1"}})
	mustIs(t, err, storage.ErrInsufficientStorage, "PutManifest of a tag")
	for i, repo := range []string{"mount/a", "mount/b", "mount/c"} {
		_, err = st.MountBlob(ctx, repo, "src", sha256Of(data))
		mustIs(t, err, storage.ErrInsufficientStorage, "MountBlob "+repo)
		_, err = st.MountBlob(ctx, repo, "src", m.Digest)
		mustIs(t, err, storage.ErrInsufficientStorage, "MountBlob of a manifest into "+repo)
		err = st.PutManifest(ctx, repo, storage.PutManifestRequest{Manifest: m, Tags: []string{"t" + string(rune('0'+i))}})
		mustIs(t, err, storage.ErrInsufficientStorage, "PutManifest into "+repo)
	}

	want := []string{"src"}
	repos, err := st.ListRepositories(ctx, "", -1)
	must(t, err)
	if !slices.Equal(repos, want) {
		t.Errorf("ListRepositories after failed writes = %v, want %v", repos, want)
	}
	if _, err := os.Stat(filepath.Join(root, "repositories", "mount")); err == nil {
		entries, _ := os.ReadDir(filepath.Join(root, "repositories", "mount"))
		for _, e := range entries {
			if !strings.HasPrefix(e.Name(), ".") {
				t.Errorf("failed mounts left repositories/mount/%s", e.Name())
			}
		}
	}
	st2, err := New(root)
	must(t, err)
	repos, err = st2.ListRepositories(ctx, "", -1)
	must(t, err)
	if !slices.Equal(repos, want) {
		t.Errorf("ListRepositories after a restart = %v, want %v", repos, want)
	}

	// Space again: the same writes succeed, and the session resumes.
	full.Store(false)
	_, err = st.MountBlob(ctx, "mount/a", "src", sha256Of(data))
	must(t, err)
	must(t, st.PutManifest(ctx, "src", storage.PutManifestRequest{Manifest: m, Tags: []string{"v1"}}))
	info, err := st.StatUpload(ctx, "src", pending.ID)
	must(t, err)
	_, err = st.AppendUpload(ctx, "src", pending.ID, info.Size, strings.NewReader("more"))
	must(t, err)
	repos, err = st.ListRepositories(ctx, "", -1)
	must(t, err)
	if want := []string{"mount/a", "src"}; !slices.Equal(repos, want) {
		t.Errorf("ListRepositories = %v, want %v", repos, want)
	}
}

// TestWriteIntoNewDirConcurrently: writes racing to create the same new
// directories (one builds them under a temporary name and renames them
// into place, the others find them there) all land, and no temporary
// directory stays.
func TestWriteIntoNewDirConcurrently(t *testing.T) {
	st := newStore(t)
	rdir, err := st.repoDir("new/repo", nil)
	must(t, err)
	const n = 16
	errs := make(chan error, n)
	for i := range n {
		go func() {
			errs <- st.writeFileAtomic(filepath.Join(rdir, dirBlobs, "sha256", strings.Repeat(string(rune('a'+i)), 64)), []byte{byte(i)})
		}()
	}
	for range n {
		must(t, <-errs)
	}
	for i := range n {
		b, err := os.ReadFile(filepath.Join(rdir, dirBlobs, "sha256", strings.Repeat(string(rune('a'+i)), 64)))
		if err != nil || len(b) != 1 || b[0] != byte(i) {
			t.Errorf("file %d: %v %v", i, b, err)
		}
	}
	err = filepath.WalkDir(st.reposDir, func(path string, e os.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(e.Name(), tmpPrefix) {
			t.Errorf("left behind: %s", path)
		}
		return err
	})
	must(t, err)
}

// TestCommitCrashContract: storagetest.CommitCrashRetry at every step of
// the commit.
func TestCommitCrashContract(t *testing.T) {
	storagetest.CommitCrashRetry(t, func(t *testing.T, step string) (storage.Store, func() storage.Store) {
		root := t.TempDir()
		hit := false
		st, err := New(root, WithFaults(Faults{Commit: func(s string) error {
			if s == step && !hit {
				hit = true
				return storagetest.ErrCrash
			}
			return nil
		}}))
		must(t, err)
		return st, func() storage.Store {
			st, err := New(root)
			must(t, err)
			return st
		}
	}, []string{"move", "link", "remove"})
}
