package fs

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/storage"
	"github.com/berth-registry/berth/internal/storage/backend"
	"github.com/berth-registry/berth/internal/storage/storagetest"
)

func newStore(t testing.TB, opts ...Option) *Store {
	t.Helper()
	s, err := New(t.TempDir(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestContract(t *testing.T) {
	storagetest.RunWithReopen(t,
		func(t *testing.T) storage.Store { return newStore(t) },
		func(t *testing.T, s storage.Store) storage.Store {
			s2, err := New(s.(*Store).Root())
			if err != nil {
				t.Fatal(err)
			}
			return s2
		})
}

func sha256Of(b []byte) digest.Digest {
	s := sha256.Sum256(b)
	return digest.Digest("sha256:" + hex.EncodeToString(s[:]))
}

func sha512Of(b []byte) digest.Digest {
	s := sha512.Sum512(b)
	return digest.Digest("sha512:" + hex.EncodeToString(s[:]))
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mustIs(t testing.TB, err, target error, what string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got %v, want %v", what, err, target)
	}
}

func manifest(name string) storage.Manifest {
	data := []byte(`{"schemaVersion":2,"name":"` + name + `"}`)
	return storage.Manifest{Digest: sha256Of(data), MediaType: "application/vnd.oci.image.manifest.v1+json", Data: data}
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(path), 0o755))
	must(t, os.WriteFile(path, b, 0o644))
}

func TestLayout(t *testing.T) {
	ctx := t.Context()
	s := newStore(t)
	layer := []byte("layer bytes")
	ld := sha256Of(layer)
	u, err := s.BeginUpload(ctx, "library/app")
	must(t, err)
	_, err = s.AppendUpload(ctx, "library/app", u.ID, 0, bytes.NewReader(layer))
	must(t, err)
	_, err = s.CommitUpload(ctx, "library/app", u.ID, ld)
	must(t, err)
	m := manifest("m")
	must(t, s.PutManifest(ctx, "library/app", storage.PutManifestRequest{Manifest: m, Tags: []string{"v1"}}))

	hexOf := func(d digest.Digest) string { return d.Encoded() }
	repo := filepath.Join(s.Root(), "repositories", "library", "app")
	for path, want := range map[string]string{
		filepath.Join(s.Root(), "blobs", "sha256", hexOf(ld)[:2], hexOf(ld)):             string(layer),
		filepath.Join(s.Root(), "blobs", "sha256", hexOf(m.Digest)[:2], hexOf(m.Digest)): string(m.Data),
		filepath.Join(repo, "_blobs", "sha256", hexOf(ld)):                               string(ld),
		filepath.Join(repo, "_manifests", "revisions", "sha256", hexOf(m.Digest)):        m.MediaType,
		filepath.Join(repo, "_manifests", "tags", "v1"):                                  string(m.Digest),
	} {
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("layout: %v", err)
		}
		if string(got) != want {
			t.Fatalf("%s holds %q, want %q", path, got, want)
		}
	}
	// The committed session is gone, and nothing temporary is left anywhere.
	entries, err := os.ReadDir(filepath.Join(repo, "_uploads"))
	must(t, err)
	if len(entries) != 0 {
		t.Fatalf("_uploads not empty after commit: %v", entries)
	}
	assertNoTemp(t, s.Root())
}

func assertNoTemp(t *testing.T, root string) {
	t.Helper()
	filepath.WalkDir(root, func(path string, d iofs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(d.Name(), ".") && path != root {
			t.Errorf("temporary file left behind: %s", path)
		}
		return nil
	})
}

// TestLeftoversInvisible plants what a crash at any point could leave behind
// and checks that none of it becomes visible.
func TestLeftoversInvisible(t *testing.T) {
	ctx := t.Context()
	s := newStore(t)
	m := manifest("real")
	must(t, s.PutManifest(ctx, "repo", storage.PutManifestRequest{Manifest: m, Tags: []string{"latest"}}))
	repo := filepath.Join(s.Root(), "repositories", "repo")

	// A partial blob under a temporary name, and a complete blob never linked.
	partial := []byte("partial blob")
	pd := sha256Of(partial)
	writeFile(t, filepath.Join(s.Root(), "blobs", "sha256", pd.Encoded()[:2], ".tmp-123"), partial[:4])
	_, err := s.StatBlob(ctx, "repo", pd)
	mustIs(t, err, storage.ErrBlobUnknown, "StatBlob of a temp file")
	writeFile(t, filepath.Join(s.Root(), "blobs", "sha256", pd.Encoded()[:2], pd.Encoded()), partial)
	_, err = s.StatBlob(ctx, "repo", pd)
	mustIs(t, err, storage.ErrBlobUnknown, "StatBlob of an unlinked blob")

	// A temp tag file, a tag pointing at a manifest that was never linked, a
	// tag file that is damaged.
	writeFile(t, filepath.Join(repo, "_manifests", "tags", ".tmp-99"), []byte(m.Digest))
	ghost := manifest("ghost")
	writeFile(t, filepath.Join(repo, "_manifests", "tags", "ghost"), []byte(ghost.Digest))
	writeFile(t, filepath.Join(repo, "_manifests", "tags", "torn"), []byte("sha256:12"))
	_, err = s.ResolveTag(ctx, "repo", "ghost")
	mustIs(t, err, storage.ErrTagUnknown, "ResolveTag of a tag pointing at nothing")
	_, err = s.ResolveTag(ctx, "repo", "torn")
	mustIs(t, err, storage.ErrTagUnknown, "ResolveTag of a torn tag")
	tags, err := s.ListTags(ctx, "repo", "", -1)
	must(t, err)
	if slices.Contains(tags, ".tmp-99") {
		t.Fatalf("ListTags shows a temp file: %q", tags)
	}

	// A revision whose bytes are missing.
	writeFile(t, filepath.Join(repo, "_manifests", "revisions", "sha256", ghost.Digest.Encoded()), []byte(ghost.MediaType))
	_, err = s.GetManifest(ctx, "repo", ghost.Digest)
	mustIs(t, err, storage.ErrManifestUnknown, "GetManifest without bytes")
	_, err = s.StatManifest(ctx, "repo", ghost.Digest)
	mustIs(t, err, storage.ErrManifestUnknown, "StatManifest without bytes")
	_, err = s.StatBlob(ctx, "repo", ghost.Digest)
	mustIs(t, err, storage.ErrBlobUnknown, "StatBlob without bytes")

	// A referrer entry whose manifest is not linked, and a temp referrer file.
	other := manifest("other")
	rdir := filepath.Join(repo, "_referrers", "sha256", m.Digest.Encoded())
	writeFile(t, filepath.Join(rdir, "sha256-"+other.Digest.Encoded()), []byte(`{"mediaType":"x","digest":"`+string(other.Digest)+`","size":1}`))
	writeFile(t, filepath.Join(rdir, ".tmp-1"), []byte(`{`))
	refs, err := s.ListReferrers(ctx, "repo", m.Digest)
	must(t, err)
	if len(refs) != 0 {
		t.Fatalf("ListReferrers shows dangling entries: %+v", refs)
	}

	// Half-built repositories and upload sessions.
	must(t, os.MkdirAll(filepath.Join(s.Root(), "repositories", ".tmp-x", "_manifests"), 0o755))
	must(t, os.MkdirAll(filepath.Join(s.Root(), "repositories", "empty", "parent"), 0o755))
	must(t, os.MkdirAll(filepath.Join(s.Root(), "repositories", "onlytmp", "_uploads", ".tmp-1"), 0o755))
	repos, err := s.ListRepositories(ctx, "", -1)
	must(t, err)
	if !slices.Equal(repos, []string{"repo"}) {
		t.Fatalf("ListRepositories = %q, want [repo]", repos)
	}
	_, err = s.ListTags(ctx, "onlytmp", "", -1)
	mustIs(t, err, storage.ErrRepositoryUnknown, "ListTags of a repository with a half-built session only")

	// Purge removes old leftovers but counts sessions only.
	old := time.Now().Add(-48 * time.Hour)
	leftover := filepath.Join(s.Root(), "repositories", "onlytmp", "_uploads", ".tmp-1")
	must(t, os.Chtimes(leftover, old, old))
	n, err := s.PurgeUploads(ctx, time.Now().Add(-time.Hour))
	must(t, err)
	if n != 0 {
		t.Fatalf("PurgeUploads counted %d sessions, want 0", n)
	}
	if _, err := os.Stat(leftover); !errors.Is(err, iofs.ErrNotExist) {
		t.Fatalf("old leftover session not purged: %v", err)
	}
}

// TestCrashDataLongerThanState simulates a crash after data reached the data
// file but before the hash state was saved.
func TestCrashDataLongerThanState(t *testing.T) {
	ctx := t.Context()
	root := t.TempDir()
	s, err := New(root)
	must(t, err)
	u, err := s.BeginUpload(ctx, "repo")
	must(t, err)
	_, err = s.AppendUpload(ctx, "repo", u.ID, 0, strings.NewReader("hello "))
	must(t, err)

	data := filepath.Join(root, "repositories", "repo", "_uploads", u.ID, "data")
	f, err := os.OpenFile(data, os.O_WRONLY|os.O_APPEND, 0)
	must(t, err)
	_, err = f.WriteString("world")
	must(t, err)
	must(t, f.Close())

	s2, err := New(root) // restart
	must(t, err)
	info, err := s2.StatUpload(ctx, "repo", u.ID)
	must(t, err)
	if info.Size != 11 {
		t.Fatalf("size after crash %d, want 11 (the data file's real size)", info.Size)
	}
	_, err = s2.AppendUpload(ctx, "repo", u.ID, 6, strings.NewReader("world!"))
	mustIs(t, err, storage.ErrUploadOffset, "AppendUpload at the recorded state's size")
	n, err := s2.AppendUpload(ctx, "repo", u.ID, 11, strings.NewReader("!"))
	must(t, err)
	if n != 12 {
		t.Fatalf("size %d, want 12", n)
	}
	want := []byte("hello world!")
	_, err = s2.CommitUpload(ctx, "repo", u.ID, sha256Of(want))
	must(t, err)
	rc, err := s2.OpenBlob(ctx, "repo", sha256Of(want), 0, -1)
	must(t, err)
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, want) {
		t.Fatalf("blob = %q, want %q", got, want)
	}
}

// TestDamagedHashState: a torn or foreign state file is ignored (re-hash).
func TestDamagedHashState(t *testing.T) {
	ctx := t.Context()
	s := newStore(t)
	for _, damage := range [][]byte{nil, []byte("BHS1"), bytes.Repeat([]byte{0xff}, 200)} {
		u, err := s.BeginUpload(ctx, "repo")
		must(t, err)
		b := make([]byte, 100_000)
		rand.Read(b)
		_, err = s.AppendUpload(ctx, "repo", u.ID, 0, bytes.NewReader(b))
		must(t, err)
		state := filepath.Join(s.Root(), "repositories", "repo", "_uploads", u.ID, fileHashState)
		if _, err := os.Stat(state); err != nil {
			t.Fatalf("no hash state saved: %v", err)
		}
		must(t, os.WriteFile(state, damage, 0o644))
		_, err = s.CommitUpload(ctx, "repo", u.ID, sha256Of(b))
		must(t, err)
	}
	// A state that is intact but covers fewer bytes than the file.
	u, err := s.BeginUpload(ctx, "repo")
	must(t, err)
	_, err = s.AppendUpload(ctx, "repo", u.ID, 0, strings.NewReader("abc"))
	must(t, err)
	dir := filepath.Join(s.Root(), "repositories", "repo", "_uploads", u.ID)
	saved, err := os.ReadFile(filepath.Join(dir, fileHashState))
	must(t, err)
	_, err = s.AppendUpload(ctx, "repo", u.ID, 3, strings.NewReader("def"))
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, fileHashState), saved, 0o644))
	_, err = s.CommitUpload(ctx, "repo", u.ID, sha256Of([]byte("abcdef")))
	must(t, err)
}

// TestCommitResumesHashState shows that a sha256 commit uses the saved state
// instead of re-reading the data (the bytes are swapped behind its back),
// and that a sha512 commit re-reads them.
func TestCommitResumesHashState(t *testing.T) {
	ctx := t.Context()
	s := newStore(t)
	orig := []byte("original content")
	swapped := []byte("SWAPPED content!")
	for _, tc := range []struct {
		d        digest.Digest
		resumed  bool
		wantFail bool
	}{
		{sha256Of(orig), true, false},
		{sha512Of(orig), false, true},
	} {
		u, err := s.BeginUpload(ctx, "repo")
		must(t, err)
		_, err = s.AppendUpload(ctx, "repo", u.ID, 0, bytes.NewReader(orig))
		must(t, err)
		must(t, os.WriteFile(filepath.Join(s.Root(), "repositories", "repo", "_uploads", u.ID, fileData), swapped, 0o644))
		_, err = s.CommitUpload(ctx, "repo", u.ID, tc.d)
		if tc.wantFail {
			mustIs(t, err, storage.ErrDigestMismatch, "sha512 commit of swapped bytes")
		} else {
			must(t, err)
		}
	}
}

func TestMaxBlobSize(t *testing.T) {
	ctx := t.Context()
	s := newStore(t, WithMaxBlobSize(10))
	u, err := s.BeginUpload(ctx, "repo")
	must(t, err)
	n, err := s.AppendUpload(ctx, "repo", u.ID, 0, strings.NewReader("0123456789"))
	must(t, err)
	_, err = s.AppendUpload(ctx, "repo", u.ID, n, strings.NewReader("x"))
	mustIs(t, err, storage.ErrTooLarge, "AppendUpload over the limit")
	info, err := s.StatUpload(ctx, "repo", u.ID)
	must(t, err)
	if info.Size != 10 {
		t.Fatalf("size %d after refused chunk, want 10", info.Size)
	}
}

func TestPingFailsWithoutRoot(t *testing.T) {
	root := filepath.Join(t.TempDir(), "root")
	s, err := New(root)
	must(t, err)
	must(t, s.Ping(t.Context()))
	must(t, os.RemoveAll(root))
	if err := s.Ping(t.Context()); err == nil {
		t.Fatal("Ping succeeded without a root directory")
	}
}

func TestPathEscape(t *testing.T) {
	ctx := t.Context()
	parent := t.TempDir()
	root := filepath.Join(parent, "root")
	s, err := New(root)
	must(t, err)
	good := "good/repo"
	m := manifest("m")
	must(t, s.PutManifest(ctx, good, storage.PutManifestRequest{Manifest: m, Tags: []string{"latest"}}))
	up, err := s.BeginUpload(ctx, good)
	must(t, err)
	d := m.Digest

	badRepos := []string{
		"", "..", "../x", "a/../b", "a/..", "../../../../../../tmp/x", "/abs", "a/", "/a", "a//b",
		"./a", "a/./b", ".", "a\\b", "..\\x", "a\x00b", "Upper", "a b", "a/_manifests", "_x",
		"a/_uploads/x", ".hidden", "a/.tmp-x", "-a", "a-", "a..b", "é",
	}
	for _, repo := range badRepos {
		_, err := s.StatBlob(ctx, repo, d)
		checkRefused(t, "StatBlob "+repo, err, storage.ErrBlobUnknown)
		_, err = s.OpenBlob(ctx, repo, d, 0, -1)
		checkRefused(t, "OpenBlob "+repo, err, storage.ErrBlobUnknown)
		_, err = s.MountBlob(ctx, repo, good, d)
		checkRefused(t, "MountBlob into "+repo, err, nil)
		if repo != "" { // "" means "from anywhere"
			_, err = s.MountBlob(ctx, good, repo, d)
			checkRefused(t, "MountBlob from "+repo, err, storage.ErrBlobUnknown)
		}
		checkRefused(t, "DeleteBlob "+repo, s.DeleteBlob(ctx, repo, d), storage.ErrBlobUnknown)
		_, err = s.BeginUpload(ctx, repo)
		checkRefused(t, "BeginUpload "+repo, err, nil)
		_, err = s.StatUpload(ctx, repo, up.ID)
		checkRefused(t, "StatUpload "+repo, err, storage.ErrUploadUnknown)
		_, err = s.AppendUpload(ctx, repo, up.ID, 0, strings.NewReader("x"))
		checkRefused(t, "AppendUpload "+repo, err, storage.ErrUploadUnknown)
		_, err = s.CommitUpload(ctx, repo, up.ID, d)
		checkRefused(t, "CommitUpload "+repo, err, storage.ErrUploadUnknown)
		checkRefused(t, "AbortUpload "+repo, s.AbortUpload(ctx, repo, up.ID), storage.ErrUploadUnknown)
		_, err = s.GetManifest(ctx, repo, d)
		checkRefused(t, "GetManifest "+repo, err, storage.ErrManifestUnknown)
		_, err = s.StatManifest(ctx, repo, d)
		checkRefused(t, "StatManifest "+repo, err, storage.ErrManifestUnknown)
		checkRefused(t, "PutManifest "+repo, s.PutManifest(ctx, repo, storage.PutManifestRequest{Manifest: m, Tags: []string{"x"}}), nil)
		checkRefused(t, "DeleteManifest "+repo, s.DeleteManifest(ctx, repo, d), storage.ErrManifestUnknown)
		_, err = s.ResolveTag(ctx, repo, "latest")
		checkRefused(t, "ResolveTag "+repo, err, storage.ErrTagUnknown)
		checkRefused(t, "DeleteTag "+repo, s.DeleteTag(ctx, repo, "latest"), storage.ErrTagUnknown)
		_, err = s.ListTags(ctx, repo, "", -1)
		checkRefused(t, "ListTags "+repo, err, storage.ErrRepositoryUnknown)
		_, err = s.ListReferrers(ctx, repo, d)
		checkRefused(t, "ListReferrers "+repo, err, storage.ErrManifestUnknown)
	}

	badTags := []string{"", ".", "..", "../x", "../../../../etc/passwd", "a/b", ".hidden", "-dash", "a\\b", "a\x00", "a b", strings.Repeat("a", 129), "é"}
	for _, tag := range badTags {
		checkRefused(t, "PutManifest tag "+tag, s.PutManifest(ctx, good, storage.PutManifestRequest{Manifest: manifest("t"), Tags: []string{"ok", tag}}), nil)
		_, err := s.ResolveTag(ctx, good, tag)
		checkRefused(t, "ResolveTag "+tag, err, storage.ErrTagUnknown)
		checkRefused(t, "DeleteTag "+tag, s.DeleteTag(ctx, good, tag), storage.ErrTagUnknown)
	}
	// A refused PutManifest stores nothing (tags are checked first).
	_, err = s.GetManifest(ctx, good, manifest("t").Digest)
	mustIs(t, err, storage.ErrManifestUnknown, "GetManifest after refused PutManifest")
	if _, err := s.ResolveTag(ctx, good, strings.Repeat("a", 128)); !errors.Is(err, storage.ErrTagUnknown) || errors.Is(err, ErrInvalidName) {
		t.Fatalf("a 128 character tag is valid: %v", err)
	}

	badIDs := []string{"", "..", "../../x", "../" + up.ID, up.ID + "/..", strings.ToUpper(up.ID), up.ID[:31], up.ID + "0", "zz" + up.ID[2:], "a\x00" + up.ID[3:]}
	for _, id := range badIDs {
		_, err := s.StatUpload(ctx, good, id)
		checkRefused(t, "StatUpload id "+id, err, storage.ErrUploadUnknown)
		_, err = s.AppendUpload(ctx, good, id, 0, strings.NewReader("x"))
		checkRefused(t, "AppendUpload id "+id, err, storage.ErrUploadUnknown)
		_, err = s.CommitUpload(ctx, good, id, d)
		checkRefused(t, "CommitUpload id "+id, err, storage.ErrUploadUnknown)
		checkRefused(t, "AbortUpload id "+id, s.AbortUpload(ctx, good, id), storage.ErrUploadUnknown)
	}

	badDigests := []digest.Digest{"sha256:../../../../etc/passwd", "sha256:" + digest.Digest(strings.Repeat("../", 21)) + "a", "../sha256:" + digest.Digest(strings.Repeat("a", 64)), "sha256", "", "sha256:" + digest.Digest(strings.ToUpper(d.Encoded()))}
	for _, bd := range badDigests {
		_, err := s.StatBlob(ctx, good, bd)
		checkRefused(t, "StatBlob digest "+string(bd), err, nil)
		_, err = s.GetManifest(ctx, good, bd)
		checkRefused(t, "GetManifest digest "+string(bd), err, nil)
		_, err = s.ListReferrers(ctx, good, bd)
		checkRefused(t, "ListReferrers digest "+string(bd), err, nil)
		err = s.PutManifest(ctx, good, storage.PutManifestRequest{Manifest: storage.Manifest{Digest: bd, Data: m.Data}})
		checkRefused(t, "PutManifest digest "+string(bd), err, nil)
		if bd != "" { // an empty subject means none
			err = s.PutManifest(ctx, good, storage.PutManifestRequest{Manifest: manifest("s"), Subject: bd})
			checkRefused(t, "PutManifest subject "+string(bd), err, nil)
		}
	}

	// The session and the good repository are intact, nothing escaped root.
	if _, err := s.StatUpload(ctx, good, up.ID); err != nil {
		t.Fatalf("session damaged: %v", err)
	}
	if got, err := s.ResolveTag(ctx, good, "latest"); err != nil || got != m.Digest {
		t.Fatalf("ResolveTag latest = %s, %v", got, err)
	}
	entries, err := os.ReadDir(parent)
	must(t, err)
	if len(entries) != 1 || entries[0].Name() != "root" {
		t.Fatalf("something was created next to root: %v", entries)
	}
	repos, err := s.ListRepositories(ctx, "", -1)
	must(t, err)
	if !slices.Equal(repos, []string{good}) {
		t.Fatalf("ListRepositories = %q", repos)
	}
	var dirs []string
	filepath.WalkDir(filepath.Join(root, "repositories"), func(path string, de iofs.DirEntry, err error) error {
		must(t, err)
		if de.IsDir() {
			rel, _ := filepath.Rel(root, path)
			dirs = append(dirs, filepath.ToSlash(rel))
		}
		return nil
	})
	for _, dir := range dirs {
		if dir != "repositories" && dir != "repositories/good" && !strings.HasPrefix(dir, "repositories/good/repo") {
			t.Fatalf("unexpected directory %s", dir)
		}
	}
}

// checkRefused fails unless err is an error (and, if unknown is set, wraps it).
func checkRefused(t *testing.T, what string, err, unknown error) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: accepted", what)
	}
	if unknown != nil && !errors.Is(err, unknown) {
		t.Fatalf("%s: %v does not wrap %v", what, err, unknown)
	}
	if !strings.HasPrefix(err.Error(), "fs: ") {
		t.Fatalf("%s: error %q lacks the fs: prefix", what, err)
	}
}

// ---------------------------------------------------------------------------
// benchmarks

const benchBlobSize = 64 << 20

func benchContent(b *testing.B) []byte {
	buf := make([]byte, benchBlobSize)
	rand.Read(buf)
	return buf
}

// BenchmarkCommitUpload: "append+commit" is a whole 64 MiB upload pushed in
// 8 MiB chunks; "commit" times CommitUpload alone (sha256 resumes the saved
// hash state, sha512 re-reads the file).
func BenchmarkCommitUpload(b *testing.B) {
	content := benchContent(b)
	for _, bc := range []struct {
		name       string
		alg        string
		commitOnly bool
	}{
		{"append+commit/sha256", "sha256", false},
		{"commit/sha256", "sha256", true},
		{"commit/sha512", "sha512", true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := b.Context()
			s := newStore(b)
			b.SetBytes(benchBlobSize)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				// Making a new blob and its expected digest is not the store's work.
				b.StopTimer()
				copy(content, []byte(time.Now().String()))
				var d digest.Digest
				if bc.alg == "sha256" {
					d = sha256Of(content)
				} else {
					d = sha512Of(content)
				}
				if !bc.commitOnly {
					b.StartTimer()
				}
				u, err := s.BeginUpload(ctx, "bench")
				must(b, err)
				for off := int64(0); off < benchBlobSize; off += 8 << 20 {
					_, err := s.AppendUpload(ctx, "bench", u.ID, off, bytes.NewReader(content[off:off+8<<20]))
					must(b, err)
				}
				if bc.commitOnly {
					b.StartTimer()
				}
				info, err := s.CommitUpload(ctx, "bench", u.ID, d)
				must(b, err)
				b.StopTimer()
				g, _ := backend.ParseDigest(info.Digest)
				must(b, os.Remove(s.blobPath(g))) // keep the disk use flat
				b.StartTimer()
			}
		})
	}
}

func BenchmarkOpenBlob(b *testing.B) {
	ctx := b.Context()
	s := newStore(b)
	content := benchContent(b)
	d := sha256Of(content)
	u, err := s.BeginUpload(ctx, "bench")
	must(b, err)
	_, err = s.AppendUpload(ctx, "bench", u.ID, 0, bytes.NewReader(content))
	must(b, err)
	_, err = s.CommitUpload(ctx, "bench", u.ID, d)
	must(b, err)
	for _, bc := range []struct {
		name        string
		off, length int64
	}{
		{"full", 0, -1},
		{"range-4MiB", 1 << 20, 4 << 20},
	} {
		b.Run(bc.name, func(b *testing.B) {
			n := bc.length
			if n < 0 {
				n = benchBlobSize - bc.off
			}
			b.SetBytes(n)
			b.ReportAllocs()
			for b.Loop() {
				rc, err := s.OpenBlob(ctx, "bench", d, bc.off, bc.length)
				must(b, err)
				got, err := io.Copy(io.Discard, rc)
				must(b, err)
				rc.Close()
				if got != n {
					b.Fatalf("read %d bytes, want %d", got, n)
				}
			}
		})
	}
}
