package fs

// Garbage collection support (storage.Collector), see docs/gc.md.
//
// The "last used" time of a blob's content is the modification time of its
// file: a commit writes it, and CommitUpload of content already stored,
// MountBlob and PutManifest (for the manifest bytes and every Ref) set it to
// now with os.Chtimes, which fails when the file is gone. Deletions rename the
// file to a trash name first and then look at its modification time: a
// request that touched the file before the rename is seen (the file is put
// back, ErrInUse), a request that comes after the rename finds no file (a
// commit stores the content again, a manifest push is refused). So no request
// can rely on content that is then deleted, even across processes sharing
// the root.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/oci"
	"github.com/berth-registry/berth/internal/storage"
	"github.com/berth-registry/berth/internal/storage/backend"
)

var _ storage.Collector = (*Store)(nil)

// touch sets the modification time of path to now; found is false when path
// does not exist.
func touch(path string) (found bool, err error) {
	now := time.Now()
	if err := os.Chtimes(path, now, now); err != nil {
		if isNotExist(err) {
			return false, nil
		}
		return false, fmt.Errorf("fs: touch: %w", err)
	}
	return true, nil
}

// writeOrTouch makes path hold data and refreshes its modification time even
// when it already does.
func (s *Store) writeOrTouch(path string, data []byte) error {
	if cur, err := os.ReadFile(path); err == nil && string(cur) == string(data) {
		if ok, err := touch(path); err != nil || ok {
			return err
		}
	}
	return s.writeFileAtomic(path, data)
}

// touchRefs marks every ref as used; a ref whose content is gone wraps
// storage.ErrBlobUnknown.
func (s *Store) touchRefs(refs []digest.Digest) error {
	for _, d := range refs {
		g, err := lookupDigest(d, storage.ErrBlobUnknown)
		if err != nil {
			return err
		}
		ok, err := touch(s.blobPath(g))
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("fs: manifest reference %s: content gone: %w", d, storage.ErrBlobUnknown)
		}
	}
	return nil
}

// trashName is the name a deletion renames path to: in the same directory,
// invisible to readers, with the time of the rename.
func trashName(path string) string {
	return filepath.Join(filepath.Dir(path), delPrefix+filepath.Base(path)+"-"+strconv.FormatInt(time.Now().UnixNano(), 10))
}

// removeUnused removes path unless its modification time is at or after
// cutoff (ErrInUse). It returns the size removed; a missing path is 0, nil.
func removeUnused(path string, cutoff time.Time) (int64, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		if isNotExist(err) {
			return 0, nil
		}
		return 0, fmt.Errorf("fs: %w", err)
	}
	if !fi.ModTime().Before(cutoff) {
		return 0, fmt.Errorf("fs: %s: %w", path, storage.ErrInUse)
	}
	trash := trashName(path)
	if err := os.Rename(path, trash); err != nil {
		if isNotExist(err) {
			return 0, nil
		}
		return 0, fmt.Errorf("fs: %w", err)
	}
	// Whoever touched path before the rename is visible now.
	fi, err = os.Lstat(trash)
	if err != nil {
		return 0, fmt.Errorf("fs: %w", err)
	}
	if !fi.ModTime().Before(cutoff) {
		if err := os.Rename(trash, path); err != nil {
			return 0, fmt.Errorf("fs: restore %s: %w", path, err)
		}
		return 0, fmt.Errorf("fs: %s: %w", path, storage.ErrInUse)
	}
	if err := os.Remove(trash); err != nil {
		return 0, fmt.Errorf("fs: %w", err)
	}
	return fi.Size(), syncDir(filepath.Dir(path))
}

// WalkBlobs calls fn for every stored blob, with its file's modification
// time as LastUsed. Trash left by an interrupted deletion is put back when the
// blob is missing, else removed.
func (s *Store) WalkBlobs(ctx context.Context, fn func(storage.StoredBlob) error) error {
	algs, err := os.ReadDir(s.blobsDir)
	if err != nil {
		return fmt.Errorf("fs: walk blobs: %w", err)
	}
	for _, a := range algs {
		alg := a.Name()
		if !a.IsDir() || (alg != "sha256" && alg != "sha512") {
			continue
		}
		shards, err := os.ReadDir(filepath.Join(s.blobsDir, alg))
		if err != nil {
			return fmt.Errorf("fs: walk blobs: %w", err)
		}
		for _, sh := range shards {
			if !sh.IsDir() || len(sh.Name()) != 2 {
				continue
			}
			dir := filepath.Join(s.blobsDir, alg, sh.Name())
			entries, err := os.ReadDir(dir)
			if err != nil {
				if isNotExist(err) {
					continue
				}
				return fmt.Errorf("fs: walk blobs: %w", err)
			}
			for _, e := range entries {
				if err := ctx.Err(); err != nil {
					return err
				}
				name := e.Name()
				if strings.HasPrefix(name, delPrefix) {
					recoverTrash(dir, name)
					continue
				}
				g, err := backend.ParseDigest(digest.Digest(alg + ":" + name))
				if err != nil || g.Hex[:2] != sh.Name() {
					continue
				}
				fi, err := e.Info()
				if err != nil {
					if isNotExist(err) {
						continue
					}
					return fmt.Errorf("fs: walk blobs: %w", err)
				}
				if err := fn(storage.StoredBlob{Digest: g.D, Size: fi.Size(), LastUsed: fi.ModTime()}); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// recoverTrash puts a blob renamed away by an interrupted deletion (older
// than a minute: a deletion in flight takes far less) back when nothing
// replaced it, and removes it otherwise.
func recoverTrash(dir, name string) {
	rest := strings.TrimPrefix(name, delPrefix)
	i := strings.LastIndexByte(rest, '-')
	if i < 0 {
		return
	}
	at, err := strconv.ParseInt(rest[i+1:], 10, 64)
	if err != nil || time.Since(time.Unix(0, at)) < time.Minute {
		return
	}
	orig, trash := filepath.Join(dir, rest[:i]), filepath.Join(dir, name)
	if ok, _ := exists(orig); ok {
		os.Remove(trash)
		return
	}
	os.Rename(trash, orig)
}

// ScanRepository returns the manifests, tags and blob links of repo.
func (s *Store) ScanRepository(ctx context.Context, repo string) (storage.RepositoryScan, error) {
	scan := storage.RepositoryScan{Tags: map[string]digest.Digest{}}
	if err := ctx.Err(); err != nil {
		return scan, err
	}
	rdir, err := s.repoDir(repo, storage.ErrRepositoryUnknown)
	if err != nil {
		return scan, err
	}
	err = eachLink(filepath.Join(rdir, dirManifests, "revisions"), func(g oci.Digest, path string, mod time.Time) error {
		rev, err := os.ReadFile(path)
		if err != nil {
			if isNotExist(err) {
				return nil
			}
			return fmt.Errorf("fs: scan %s: %w", repo, err)
		}
		mt, subj := backend.ParseRevision(rev)
		scan.Manifests = append(scan.Manifests, storage.LinkedManifest{Digest: g.D, MediaType: mt, Subject: subj, LastPushed: mod})
		return nil
	})
	if err != nil {
		return scan, err
	}
	err = eachLink(filepath.Join(rdir, dirBlobs), func(g oci.Digest, _ string, mod time.Time) error {
		scan.Blobs = append(scan.Blobs, storage.BlobLink{Digest: g.D, LastUsed: mod})
		return nil
	})
	if err != nil {
		return scan, err
	}
	tdir := tagsDir(rdir)
	entries, err := os.ReadDir(tdir)
	if err != nil && !isNotExist(err) {
		return scan, fmt.Errorf("fs: scan %s: %w", repo, err)
	}
	for _, e := range entries {
		if !oci.ValidTag(e.Name()) || e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(tdir, e.Name()))
		if err != nil {
			if isNotExist(err) {
				continue
			}
			return scan, fmt.Errorf("fs: scan %s: %w", repo, err)
		}
		scan.Tags[e.Name()] = digest.Digest(strings.TrimSpace(string(b)))
	}
	return scan, nil
}

// eachLink calls fn for every <alg>/<hex> file under dir.
func eachLink(dir string, fn func(g oci.Digest, path string, mod time.Time) error) error {
	algs, err := os.ReadDir(dir)
	if err != nil {
		if isNotExist(err) {
			return nil
		}
		return fmt.Errorf("fs: %w", err)
	}
	for _, a := range algs {
		if !a.IsDir() {
			continue
		}
		adir := filepath.Join(dir, a.Name())
		entries, err := os.ReadDir(adir)
		if err != nil {
			if isNotExist(err) {
				continue
			}
			return fmt.Errorf("fs: %w", err)
		}
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), delPrefix) {
				recoverTrash(adir, e.Name()) // a deletion interrupted by a crash
				continue
			}
			g, err := backend.ParseDigest(digest.Digest(a.Name() + ":" + e.Name()))
			if err != nil || e.IsDir() {
				continue
			}
			fi, err := e.Info()
			if err != nil {
				if isNotExist(err) {
					continue
				}
				return fmt.Errorf("fs: %w", err)
			}
			if err := fn(g, filepath.Join(adir, e.Name()), fi.ModTime()); err != nil {
				return err
			}
		}
	}
	return nil
}

// DeleteBlobContent deletes the content of d unless it was used at or after cutoff.
func (s *Store) DeleteBlobContent(ctx context.Context, d digest.Digest, cutoff time.Time) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	g, err := parseDigest(d)
	if err != nil {
		return 0, err
	}
	return removeUnused(s.blobPath(g), cutoff)
}

// DeleteBlobLink removes repo's link to d unless it was written at or after cutoff.
func (s *Store) DeleteBlobLink(ctx context.Context, repo string, d digest.Digest, cutoff time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	rdir, err := s.repoDir(repo, nil)
	if err != nil {
		return err
	}
	g, err := parseDigest(d)
	if err != nil {
		return err
	}
	_, err = removeUnused(blobLinkPath(rdir, g), cutoff)
	return err
}

// DeleteUntaggedManifest unlinks manifest d from repo unless it was pushed at
// or after cutoff or a tag points at it.
func (s *Store) DeleteUntaggedManifest(ctx context.Context, repo string, d digest.Digest, cutoff time.Time) error {
	m, err := s.lockRevision(ctx, repo, d)
	if err != nil {
		return fmt.Errorf("fs: %w", err)
	}
	defer m.unlock()
	rdir, g, rev, revPath := m.rdir, m.g, m.rev, m.path
	tdir := tagsDir(rdir)
	entries, err := os.ReadDir(tdir)
	if err != nil && !isNotExist(err) {
		return fmt.Errorf("fs: %w", err)
	}
	for _, e := range entries {
		if b, err := os.ReadFile(filepath.Join(tdir, e.Name())); err == nil && digest.Digest(strings.TrimSpace(string(b))) == d {
			return fmt.Errorf("fs: manifest %s in %s is tagged %s: %w", d, repo, e.Name(), storage.ErrInUse)
		}
	}
	if _, err := removeUnused(revPath, cutoff); err != nil {
		return err
	}
	if _, subj := backend.ParseRevision(rev); subj != "" {
		// Pushed again meanwhile (another process): the entry is its own again.
		if again, err := exists(revPath); err != nil || again {
			return err
		}
		if sg, err := parseDigest(subj); err == nil {
			if _, err := removeDurable(filepath.Join(referrersDir(rdir, sg), backend.ReferrerName(g))); err != nil {
				return err
			}
		}
	}
	return nil
}

var _ storage.TempCollector = (*Store)(nil)

// WalkTempFiles calls fn for every leftover of a write interrupted by a crash
// (or a full disk), in the root directory, the blob store and the
// repositories, except inside upload sessions (PurgeUploads removes those
// with their session); readers ignore them all:
//
//   - a temporary file (".tmp-*", see writeFileAtomic): a write between its
//     write and its rename;
//   - a temporary directory (".tmp-*", see writeInNewDir): new directories
//     being assembled before they are renamed into place. Its Size is the
//     bytes of the files in it, its Modified the newest modification time
//     of anything in it;
//   - a repository directory that holds no manifest, tag, blob link, upload
//     session or other file, only directories and temporary files (older
//     versions left one behind when a write into a new repository failed),
//     listed as the highest such directory, "repositories/<name>", with the
//     same Size and Modified.
func (s *Store) WalkTempFiles(ctx context.Context, fn func(storage.TempFile) error) error {
	visit := func(path string, e os.DirEntry) error {
		if !strings.HasPrefix(e.Name(), tmpPrefix) {
			return nil
		}
		var size int64
		var mod time.Time
		switch {
		case e.Type().IsRegular():
			fi, err := e.Info()
			if err != nil {
				if isNotExist(err) {
					return nil // renamed into place meanwhile
				}
				return fmt.Errorf("fs: walk temp files: %w", err)
			}
			size, mod = fi.Size(), fi.ModTime()
		case e.IsDir():
			var err error
			if size, mod, err = treeStat(path); err != nil {
				return fmt.Errorf("fs: walk temp files: %w", err)
			}
			if mod.IsZero() {
				return nil // renamed into place meanwhile
			}
		default:
			return nil
		}
		return fn(storage.TempFile{Path: s.relPath(path), Size: size, Modified: mod})
	}
	top, err := os.ReadDir(s.root)
	if err != nil {
		return fmt.Errorf("fs: walk temp files: %w", err)
	}
	for _, e := range top {
		if err := visit(filepath.Join(s.root, e.Name()), e); err != nil {
			return err
		}
	}
	err = filepath.WalkDir(s.blobsDir, func(path string, e os.DirEntry, err error) error {
		if err != nil {
			if isNotExist(err) {
				return nil // removed meanwhile
			}
			return fmt.Errorf("fs: walk temp files: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if path == s.blobsDir {
			return nil
		}
		if err := visit(path, e); err != nil {
			return err
		}
		if e.IsDir() && strings.HasPrefix(e.Name(), tmpPrefix) {
			return filepath.SkipDir
		}
		return nil
	})
	if err != nil {
		return err
	}
	sum, err := s.scanRepoTree(ctx, s.reposDir, false)
	if err != nil {
		return err
	}
	for _, f := range sum.found {
		if err := fn(f); err != nil {
			return err
		}
	}
	return nil
}

// relPath returns path relative to the root, with slashes.
func (s *Store) relPath(path string) string {
	rel, err := filepath.Rel(s.root, path)
	if err != nil {
		return path
	}
	return filepath.ToSlash(rel)
}

// treeStat returns the bytes of the regular files in the tree at dir and the
// newest modification time of anything in it, dir included (zero when dir
// is gone).
func treeStat(dir string) (size int64, newest time.Time, err error) {
	err = filepath.WalkDir(dir, func(path string, e os.DirEntry, err error) error {
		if err != nil {
			if isNotExist(err) {
				return nil
			}
			return err
		}
		fi, err := e.Info()
		if err != nil {
			if isNotExist(err) {
				return nil
			}
			return err
		}
		if fi.Mode().IsRegular() {
			size += fi.Size()
		}
		if fi.ModTime().After(newest) {
			newest = fi.ModTime()
		}
		return nil
	})
	return size, newest, err
}

// repoTree is what scanRepoTree found in a directory under repositories/.
type repoTree struct {
	content bool  // a file or entry that is not a leftover
	size    int64 // bytes of the temporary files in it
	newest  time.Time
	found   []storage.TempFile // leftovers, see WalkTempFiles
}

func (t *repoTree) add(size int64, mod time.Time) {
	t.size += size
	if mod.After(t.newest) {
		t.newest = mod
	}
}

// scanRepoTree walks the directory dir under repositories/ (named: dir is a
// repository or a namespace of repositories, not a repository's internal
// directory), collecting its leftovers; an empty named directory is reported
// whole by its parent. The contents of upload sessions are not looked at: an
// _uploads directory with any entry counts as content.
func (s *Store) scanRepoTree(ctx context.Context, dir string, named bool) (repoTree, error) {
	var t repoTree
	if err := ctx.Err(); err != nil {
		return t, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		if isNotExist(err) {
			return repoTree{content: true}, nil // gone meanwhile: nothing to report
		}
		return t, fmt.Errorf("fs: walk temp files: %w", err)
	}
	if fi, err := os.Lstat(dir); err == nil {
		t.add(0, fi.ModTime())
	}
	for _, e := range entries {
		name := e.Name()
		path := filepath.Join(dir, name)
		switch {
		case strings.HasPrefix(name, tmpPrefix) && (e.Type().IsRegular() || e.IsDir()):
			var size int64
			var mod time.Time
			if e.IsDir() {
				if size, mod, err = treeStat(path); err != nil {
					return t, fmt.Errorf("fs: walk temp files: %w", err)
				}
			} else if fi, err := e.Info(); err == nil {
				size, mod = fi.Size(), fi.ModTime()
			}
			if mod.IsZero() {
				continue // renamed into place meanwhile
			}
			t.add(size, mod)
			t.found = append(t.found, storage.TempFile{Path: s.relPath(path), Size: size, Modified: mod})
		case !e.IsDir() || strings.HasPrefix(name, "."):
			t.content = true // a link, tag, revision, trash of a deletion ...
		case name == dirUploads:
			if hasName(path, func(string) bool { return true }) {
				t.content = true
			}
			if fi, err := e.Info(); err == nil {
				t.add(0, fi.ModTime())
			}
		default:
			childNamed := (named || dir == s.reposDir) && !strings.HasPrefix(name, "_")
			c, err := s.scanRepoTree(ctx, path, childNamed)
			if err != nil {
				return t, err
			}
			if childNamed && !oci.ValidRepoComponent(name) {
				c.content = true // not a repository: left alone
			}
			t.add(c.size, c.newest)
			if childNamed && !c.content {
				// Empty: reported whole, here or by a parent empty too.
				t.found = append(t.found, storage.TempFile{Path: s.relPath(path), Size: c.size, Modified: c.newest})
				continue
			}
			t.content = t.content || c.content
			t.found = append(t.found, c.found...)
		}
	}
	return t, nil
}

// DeleteTempFile removes the leftover at path (relative to the root, see
// WalkTempFiles) unless it was modified at or after cutoff: for a directory,
// anything in it. An empty repository directory is first renamed to a
// temporary name and looked at again there, so that a write that got into it
// before the rename is seen and it is put back (ErrInUse); a write after the
// rename creates the repository anew.
func (s *Store) DeleteTempFile(ctx context.Context, path string, cutoff time.Time) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	rel := filepath.FromSlash(path)
	parts := strings.Split(filepath.ToSlash(rel), "/")
	notTemp := fmt.Errorf("fs: %q is not a temporary file: %w", path, ErrInvalidName)
	if !filepath.IsLocal(rel) || slices.Contains(parts, dirUploads) {
		return 0, notTemp
	}
	full := filepath.Join(s.root, rel)
	if !strings.HasPrefix(filepath.Base(rel), tmpPrefix) {
		if len(parts) < 2 || parts[0] != filepath.Base(s.reposDir) || !oci.ValidRepo(strings.Join(parts[1:], "/")) {
			return 0, notTemp
		}
		return s.removeEmptyRepo(ctx, full, path, cutoff)
	}
	fi, err := os.Lstat(full)
	if err != nil {
		if isNotExist(err) {
			return 0, nil
		}
		return 0, fmt.Errorf("fs: %w", err)
	}
	switch {
	case fi.Mode().IsRegular():
		if !fi.ModTime().Before(cutoff) {
			return 0, fmt.Errorf("fs: %s: %w", path, storage.ErrInUse)
		}
		existed, err := removeDurable(full)
		if err != nil || !existed {
			return 0, err
		}
		return fi.Size(), nil
	case fi.IsDir():
		size, newest, err := treeStat(full)
		if err != nil {
			return 0, fmt.Errorf("fs: %w", err)
		}
		if newest.IsZero() {
			return 0, nil
		}
		if !newest.Before(cutoff) {
			return 0, fmt.Errorf("fs: %s: %w", path, storage.ErrInUse)
		}
		if err := os.RemoveAll(full); err != nil {
			return 0, fmt.Errorf("fs: %w", err)
		}
		return size, syncDir(filepath.Dir(full))
	default:
		return 0, notTemp
	}
}

// removeEmptyRepo removes the repository directory dir (path: as reported)
// if it still holds nothing but directories and temporary files, none
// modified at or after cutoff.
func (s *Store) removeEmptyRepo(ctx context.Context, dir, path string, cutoff time.Time) (int64, error) {
	// check: still empty, and nothing in it modified since cutoff; the
	// directory's own time counts only before the rename (which may set it).
	check := func(dir string, self bool) (int64, error) {
		t, err := s.scanRepoTree(ctx, dir, true)
		if err != nil {
			return 0, err
		}
		newest := t.newest
		if !self {
			newest = time.Time{}
			for _, f := range t.found {
				if f.Modified.After(newest) {
					newest = f.Modified
				}
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				return 0, fmt.Errorf("fs: %w", err)
			}
			for _, e := range entries {
				if fi, err := e.Info(); err == nil && fi.ModTime().After(newest) {
					newest = fi.ModTime()
				}
			}
		}
		if t.content || !newest.Before(cutoff) {
			return 0, fmt.Errorf("fs: %s: %w", path, storage.ErrInUse)
		}
		return t.size, nil
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		if isNotExist(err) {
			return 0, nil
		}
		return 0, fmt.Errorf("fs: %w", err)
	}
	if !fi.IsDir() {
		return 0, fmt.Errorf("fs: %q is not a directory: %w", path, ErrInvalidName)
	}
	if _, err := check(dir, true); err != nil {
		return 0, err
	}
	parent := filepath.Dir(dir)
	gone := filepath.Join(parent, tmpPrefix+"gc-"+filepath.Base(dir)+"-"+backend.RandomHex(4))
	if err := os.Rename(dir, gone); err != nil {
		if isNotExist(err) {
			return 0, nil
		}
		return 0, fmt.Errorf("fs: %w", err)
	}
	size, err := check(gone, false)
	if err != nil {
		if rerr := os.Rename(gone, dir); rerr != nil {
			return 0, fmt.Errorf("fs: %s was written to while being removed, and could not be put back from %s: %w", path, gone, rerr)
		}
		return 0, err
	}
	if err := os.RemoveAll(gone); err != nil {
		return 0, fmt.Errorf("fs: %w", err)
	}
	return size, syncDir(parent)
}
