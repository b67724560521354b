// Package fs implements storage.Store on a local (or shared POSIX) filesystem.
//
// # Layout
//
// Everything lives under the root directory given to New:
//
//	blobs/<alg>/<hex[0:2]>/<hex>                             blob bytes: layers, configs and manifests
//	repositories/<name>/_blobs/<alg>/<hex>                   link: the blob is in the repository (holds the digest)
//	repositories/<name>/_manifests/revisions/<alg>/<hex>     link: the manifest is in the repository
//	repositories/<name>/_manifests/tags/<tag>                tag: holds the manifest digest
//	repositories/<name>/_referrers/<salg>/<shex>/<alg>-<hex> referrer of subject <salg>:<shex>: descriptor JSON
//	repositories/<name>/_uploads/<id>/data                   bytes received so far
//	repositories/<name>/_uploads/<id>/startedat              session start (RFC 3339, nanoseconds)
//	repositories/<name>/_uploads/<id>/hashstate              running sha256 state and the size it covers
//	repositories/<name>/_uploads/<id>/committed              digest verified by a commit, written before data moves
//
// A revision link holds the manifest media type on its first line and, for a
// manifest pushed with a subject, the subject digest on its second line (so
// DeleteManifest finds the referrer entry without a scan).
//
// Blobs are content addressed and shared by every repository; a repository sees
// a blob only through a link. Manifest bytes are stored as blobs too, and a
// manifest linked into a repository is also visible as a blob of that
// repository (StatBlob, OpenBlob, MountBlob). DeleteBlob removes blob links
// only; manifests are removed with DeleteManifest. Unlinked blobs are left for
// garbage collection.
//
// # Integrity
//
// Every visible file is written to a temporary file (".tmp-*", a name no reader
// accepts) in its final directory, synced, renamed into place, and the
// directory is synced. Directories created on the way are synced into their
// parents. Writes are ordered so that a crash at any point never exposes
// something that refers to missing data: blob bytes, then the manifest
// revision link, then the referrer entry, then tags. DeleteManifest works in
// the reverse order. A committed upload's data file is synced and renamed
// straight into the blob store (same filesystem, atomic): first the verified
// digest is recorded in the session ("committed"), then the data
// moves, then the blob is linked, then the session is removed, so a retried
// commit after a crash at any step finishes it (CommitUpload).
//
// A directory a write needs that does not exist yet (a new repository's) is
// built under a temporary name with the file in it and renamed into place
// whole: a failed write never leaves an empty repository behind. A crash in
// the middle leaves a ".tmp-*" directory, which garbage collection removes
// (WalkTempFiles), with repository directories holding nothing (left by
// older versions, or by deleting everything), which the catalog skips. A full
// filesystem (ENOSPC) or exhausted quota (EDQUOT) is reported as
// storage.ErrInsufficientStorage.
//
// Upload sessions live on disk. After every append the sha256 state
// (crypto/sha256 implements encoding.BinaryMarshaler) is saved with the size
// it covers, the machine's boot id and a checksum; nothing is synced before
// the commit, which syncs the data file once, as for a monolithic upload.
// Every operation on a session first settles the state with the data file
// (settleSession): a state of this boot that covers a prefix is caught up
// from the file; one from before a reboot (a power loss may have dropped
// unsynced data), one covering more than the file, or a damaged one is
// replaced by a re-hash of the file, written durably. So the size of a
// session is always the real size of its data file, and its hash is always
// that of the bytes the file holds. CommitUpload resumes from the state; a
// sha512 commit re-hashes the file.
//
// # Concurrency
//
// Renames are atomic, so concurrent commits of the same blob and concurrent
// pushes of the same tag are safe: the last rename wins and readers see either
// version, never a mix. Within one process, operations on one upload session
// are serialised, and DeleteManifest excludes PutManifest in the same
// repository. Several processes may share a root: blobs, manifests and tags
// stay consistent through the atomic renames alone, but a single upload session
// must not be appended to by two processes at once (clients do not do that).
//
// # Names
//
// Repository names must match the distribution-spec grammar
// ([a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/...)*), tags the OCI tag grammar
// [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}, and upload ids must be ids this package
// generated (32 lowercase hex digits). Anything else is refused with an error
// wrapping ErrInvalidName, so nothing outside root is ever touched. Tags differing
// only in case need a case-sensitive filesystem.
package fs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/berth-registry/berth/internal/oci"
	"github.com/berth-registry/berth/internal/storage/backend"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/storage"
)

// ErrInvalidName is wrapped by the errors returned for a repository name, tag
// or upload id that does not match its grammar. Lookups wrap the matching
// storage "unknown" sentinel as well.
var ErrInvalidName = backend.ErrInvalidName

const (
	tmpPrefix   = ".tmp-"
	delPrefix   = ".del-"
	lockStripes = 64
	copyBufSize = 1 << 20

	dirBlobs     = "_blobs"
	dirManifests = "_manifests"
	dirUploads   = "_uploads"
	dirReferrers = "_referrers"

	fileData      = "data"
	fileStartedAt = "startedat"
	fileHashState = "hashstate"
	fileCommitted = "committed"
)

var (
	bufPool = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}
)

// Option configures a Store.
type Option func(*Store)

// WithMaxBlobSize makes AppendUpload refuse to grow an upload beyond n bytes
// (storage.ErrTooLarge). n <= 0 means no limit, the default.
func WithMaxBlobSize(n int64) Option { return func(s *Store) { s.maxBlobSize = n } }

// Faults injects failures into a Store, for tests. Nil fields inject nothing.
type Faults struct {
	// Write is called with the final path before a file is created or
	// written (a link, tag, manifest, session file, or a chunk of upload
	// data); an error it returns, such as &os.PathError{Op: "write", Path:
	// path, Err: syscall.ENOSPC}, becomes the error of that write.
	Write func(path string) error
	// Commit is called by CommitUpload before each of its steps ("move": the
	// data into the blob store, "link": the blob into the repository,
	// "remove": the session), once the content is verified. An error it
	// returns makes CommitUpload return it at once and touch nothing more,
	// leaving the files as a process killed at that point would.
	Commit func(step string) error
}

// WithFaults installs fault injection points (tests only).
func WithFaults(f Faults) Option { return func(s *Store) { s.faults = f } }

// Store is the filesystem backend. It is safe for concurrent use.
type Store struct {
	root        string
	blobsDir    string
	reposDir    string
	maxBlobSize int64
	faults      Faults
	bootID      [bootIDLen]byte // see settleSession

	uploadLocks [lockStripes]sync.Mutex
	repoLocks   [lockStripes]sync.RWMutex
}

var _ storage.Store = (*Store)(nil)

// New opens (creating it if needed) a store rooted at root.
func New(root string, opts ...Option) (*Store, error) {
	if root == "" {
		return nil, errors.New("fs: empty root")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("fs: root: %w", err)
	}
	s := &Store{
		root:     abs,
		blobsDir: filepath.Join(abs, "blobs"),
		reposDir: filepath.Join(abs, "repositories"),
		bootID:   currentBootID(),
	}
	for _, o := range opts {
		o(s)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("fs: create root: %w", err)
	}
	for _, d := range []string{s.blobsDir, s.reposDir} {
		if err := mkdirAll(d); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Root returns the absolute root directory of the store.
func (s *Store) Root() string { return s.root }

// ---------------------------------------------------------------------------
// names, digests and paths

// repoDir returns the directory of repo; unknown, if not nil, is wrapped
// into the error for an invalid name.
func (s *Store) repoDir(repo string, unknown error) (string, error) {
	if !oci.ValidRepo(repo) {
		return "", fsNameErr("repository name", repo, unknown)
	}
	return filepath.Join(s.reposDir, filepath.FromSlash(repo)), nil
}

func (s *Store) blobPath(g oci.Digest) string {
	return filepath.Join(s.blobsDir, g.Alg, g.Hex[:2], g.Hex)
}

func blobLinkPath(rdir string, g oci.Digest) string {
	return filepath.Join(rdir, dirBlobs, g.Alg, g.Hex)
}

func revisionPath(rdir string, g oci.Digest) string {
	return filepath.Join(rdir, dirManifests, "revisions", g.Alg, g.Hex)
}

func tagsDir(rdir string) string { return filepath.Join(rdir, dirManifests, "tags") }

func referrersDir(rdir string, subject oci.Digest) string {
	return filepath.Join(rdir, dirReferrers, subject.Alg, subject.Hex)
}

func (s *Store) uploadLock(id string) *sync.Mutex {
	h := fnv.New32a()
	h.Write([]byte(id))
	return &s.uploadLocks[h.Sum32()%lockStripes]
}

func (s *Store) repoLock(repo string) *sync.RWMutex {
	h := fnv.New32a()
	h.Write([]byte(repo))
	return &s.repoLocks[h.Sum32()%lockStripes]
}

// ---------------------------------------------------------------------------
// file helpers

// writeFault returns the error injected for a write of path, if any.
func (s *Store) writeFault(path string) error {
	if s.faults.Write == nil {
		return nil
	}
	return s.faults.Write(path)
}

// commitFault returns the error injected before a step of CommitUpload, if any.
func (s *Store) commitFault(step string) error {
	if s.faults.Commit == nil {
		return nil
	}
	return s.faults.Commit(step)
}

// noSpace makes *errp wrap storage.ErrInsufficientStorage when the
// filesystem is full (ENOSPC) or a quota is exhausted (EDQUOT). Every
// exported method that writes defers it, so the HTTP layer can say what
// happened instead of answering an internal error.
func noSpace(errp *error) {
	err := *errp
	if err == nil || errors.Is(err, storage.ErrInsufficientStorage) {
		return
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		*errp = fmt.Errorf("%w: %w", storage.ErrInsufficientStorage, err)
	}
}

func isNotExist(err error) bool {
	return errors.Is(err, iofs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

func exists(path string) (bool, error) {
	_, err := os.Lstat(path)
	if err == nil {
		return true, nil
	}
	if isNotExist(err) {
		return false, nil
	}
	return false, fmt.Errorf("fs: %w", err)
}

// syncDir makes the entries of dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("fs: sync dir: %w", err)
	}
	err = d.Sync()
	cerr := d.Close()
	if err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOTSUP) {
		return fmt.Errorf("fs: sync dir: %w", err)
	}
	if cerr != nil {
		return fmt.Errorf("fs: sync dir: %w", cerr)
	}
	return nil
}

// mkdirAll creates dir and its missing parents, syncing every parent that
// gained an entry.
func mkdirAll(dir string) error {
	fi, err := os.Stat(dir)
	if err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("fs: %s is not a directory", dir)
		}
		return nil
	}
	if !isNotExist(err) {
		return fmt.Errorf("fs: %w", err)
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirAll(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		if errors.Is(err, iofs.ErrExist) {
			return nil // created concurrently
		}
		return fmt.Errorf("fs: %w", err)
	}
	return syncDir(parent)
}

// writeFileAtomic makes path hold data: temp file in the same directory,
// sync, rename, sync directory.
//
// Directories missing on the way are not left behind if the write fails
// (a full disk): the missing subtree is assembled with the file under a
// temporary name (".tmp-*", which no reader accepts) beside its highest
// missing directory and renamed into place whole. So a repository directory
// appears only holding what was written into it, never empty.
func (s *Store) writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	top, err := missingDir(dir)
	if err != nil {
		return err
	}
	if top != "" {
		err := s.writeInNewDir(top, path, data)
		if !errors.Is(err, errDirExists) {
			return err
		}
		// Created meanwhile by another write: write into it.
		if err := mkdirAll(dir); err != nil {
			return err
		}
	}
	tmp, err := s.writeTemp(dir, path, data)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("fs: rename: %w", err)
	}
	return syncDir(dir)
}

// errDirExists: the directory writeInNewDir was to create exists now.
var errDirExists = errors.New("fs: directory created concurrently")

// missingDir returns the highest missing directory on the way to dir, or
// "" if dir exists.
func missingDir(dir string) (string, error) {
	top := ""
	for {
		fi, err := os.Stat(dir)
		if err == nil {
			if !fi.IsDir() {
				return "", fmt.Errorf("fs: %s is not a directory", dir)
			}
			return top, nil
		}
		if !isNotExist(err) {
			return "", fmt.Errorf("fs: %w", err)
		}
		top = dir
		parent := filepath.Dir(dir)
		if parent == dir {
			return top, nil
		}
		dir = parent
	}
}

// writeInNewDir writes path, below the missing directory top, into a
// temporary copy of the subtree and renames that to top. errDirExists:
// top was created meanwhile (nothing was written).
func (s *Store) writeInNewDir(top, path string, data []byte) (err error) {
	parent := filepath.Dir(top)
	tmp, err := os.MkdirTemp(parent, tmpPrefix+"*")
	if err != nil {
		return fmt.Errorf("fs: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("fs: %w", err)
	}
	rel, err := filepath.Rel(top, path)
	if err != nil {
		return fmt.Errorf("fs: %w", err)
	}
	inner := filepath.Join(tmp, rel)
	idir := filepath.Dir(inner)
	if err := os.MkdirAll(idir, 0o755); err != nil {
		return fmt.Errorf("fs: %w", err)
	}
	f, err := s.writeTemp(idir, path, data)
	if err != nil {
		return err
	}
	if err := os.Rename(f, inner); err != nil {
		return fmt.Errorf("fs: rename: %w", err)
	}
	for d := idir; ; d = filepath.Dir(d) {
		if err := syncDir(d); err != nil {
			return err
		}
		if d == tmp {
			break
		}
	}
	if err := os.Rename(tmp, top); err != nil {
		if errors.Is(err, iofs.ErrExist) || errors.Is(err, syscall.ENOTEMPTY) {
			return errDirExists
		}
		return fmt.Errorf("fs: rename: %w", err)
	}
	return syncDir(parent)
}

// writeTemp writes data to a new synced temporary file in dir, which is to
// become path, and returns its name.
func (s *Store) writeTemp(dir, path string, data []byte) (name string, err error) {
	if err := s.writeFault(path); err != nil {
		return "", fmt.Errorf("fs: %w", err)
	}
	f, err := os.CreateTemp(dir, tmpPrefix+"*")
	if err != nil {
		return "", fmt.Errorf("fs: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if f != nil {
			f.Close()
		}
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return "", fmt.Errorf("fs: write: %w", err)
	}
	if err := f.Chmod(0o644); err != nil {
		return "", fmt.Errorf("fs: %w", err)
	}
	if err := f.Sync(); err != nil {
		return "", fmt.Errorf("fs: sync: %w", err)
	}
	cerr := f.Close()
	f = nil
	if cerr != nil {
		return "", fmt.Errorf("fs: close: %w", cerr)
	}
	return tmp, nil
}

// writeFileIfChanged is writeFileAtomic that skips the write when path
// already holds data.
func (s *Store) writeFileIfChanged(path string, data []byte) error {
	if cur, err := os.ReadFile(path); err == nil && bytes.Equal(cur, data) {
		return nil
	}
	return s.writeFileAtomic(path, data)
}

// removeDurable removes path and syncs its directory. It reports whether
// path existed.
func removeDurable(path string) (bool, error) {
	if err := os.Remove(path); err != nil {
		if isNotExist(err) {
			return false, nil
		}
		return false, fmt.Errorf("fs: remove: %w", err)
	}
	return true, syncDir(filepath.Dir(path))
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// ---------------------------------------------------------------------------
// Ping

// Ping checks that the root directory exists and is writable.
func (s *Store) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	fi, err := os.Stat(s.root)
	if err != nil {
		return fmt.Errorf("fs: ping: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("fs: ping: %s is not a directory", s.root)
	}
	f, err := os.CreateTemp(s.root, tmpPrefix+"ping-*")
	if err != nil {
		return fmt.Errorf("fs: ping: root not writable: %w", err)
	}
	name := f.Name()
	f.Close()
	if err := os.Remove(name); err != nil {
		return fmt.Errorf("fs: ping: %w", err)
	}
	return nil
}

// ---------------------------------------------------------------------------
// blobs

// linkedBlob reports how g is linked into the repository at rdir: as a blob,
// as a manifest (with its revision content), or not at all.
func linkedBlob(rdir string, g oci.Digest) (asBlob bool, revision []byte, err error) {
	asBlob, err = exists(blobLinkPath(rdir, g))
	if err != nil {
		return false, nil, err
	}
	revision, err = os.ReadFile(revisionPath(rdir, g))
	if err != nil {
		if !isNotExist(err) {
			return false, nil, fmt.Errorf("fs: %w", err)
		}
		revision = nil
	}
	return asBlob, revision, nil
}

// statLinked returns the size of a blob linked into rdir (as a blob or as a
// manifest), or ErrBlobUnknown.
func (s *Store) statLinked(rdir, repo string, g oci.Digest) (int64, error) {
	linked, err := exists(blobLinkPath(rdir, g))
	if err == nil && !linked {
		linked, err = exists(revisionPath(rdir, g))
	}
	if err != nil {
		return 0, err
	}
	if !linked {
		return 0, fmt.Errorf("fs: blob %s in %s: %w", g.D, repo, storage.ErrBlobUnknown)
	}
	fi, err := os.Stat(s.blobPath(g))
	if err != nil {
		if isNotExist(err) {
			return 0, fmt.Errorf("fs: blob %s in %s: data missing: %w", g.D, repo, storage.ErrBlobUnknown)
		}
		return 0, fmt.Errorf("fs: %w", err)
	}
	return fi.Size(), nil
}

// StatBlob returns the blob if it is linked into repo (as a blob or as a manifest).
func (s *Store) StatBlob(ctx context.Context, repo string, d digest.Digest) (storage.BlobInfo, error) {
	if err := ctx.Err(); err != nil {
		return storage.BlobInfo{}, err
	}
	rdir, err := s.repoDir(repo, storage.ErrBlobUnknown)
	if err != nil {
		return storage.BlobInfo{}, err
	}
	g, err := lookupDigest(d, storage.ErrBlobUnknown)
	if err != nil {
		return storage.BlobInfo{}, err
	}
	size, err := s.statLinked(rdir, repo, g)
	if err != nil {
		return storage.BlobInfo{}, err
	}
	return storage.BlobInfo{Digest: d, Size: size}, nil
}

// rangeReader streams a bounded range of an open blob file.
type rangeReader struct {
	r io.LimitedReader
	f *os.File
}

func (r *rangeReader) Read(p []byte) (int, error) { return r.r.Read(p) }
func (r *rangeReader) Close() error               { return r.f.Close() }

// OpenBlob streams length bytes of the blob from offset (length < 0: to the
// end). A range that runs past the end is cut at the end; an offset outside
// [0, size] is an error. When the range runs to the end the reader is the
// *os.File itself, so copying it to a socket can use sendfile.
func (s *Store) OpenBlob(ctx context.Context, repo string, d digest.Digest, offset, length int64) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rdir, err := s.repoDir(repo, storage.ErrBlobUnknown)
	if err != nil {
		return nil, err
	}
	g, err := lookupDigest(d, storage.ErrBlobUnknown)
	if err != nil {
		return nil, err
	}
	if _, err := s.statLinked(rdir, repo, g); err != nil {
		return nil, err
	}
	f, err := os.Open(s.blobPath(g))
	if err != nil {
		if isNotExist(err) {
			return nil, fmt.Errorf("fs: blob %s in %s: %w", d, repo, storage.ErrBlobUnknown)
		}
		return nil, fmt.Errorf("fs: open blob: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("fs: open blob: %w", err)
	}
	size := fi.Size()
	if offset < 0 || offset > size {
		f.Close()
		return nil, fmt.Errorf("fs: blob %s: offset %d outside [0, %d]", d, offset, size)
	}
	if offset > 0 {
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			f.Close()
			return nil, fmt.Errorf("fs: open blob: %w", err)
		}
	}
	if length < 0 || length >= size-offset {
		return f, nil
	}
	return &rangeReader{r: io.LimitedReader{R: f, N: length}, f: f}, nil
}

// MountBlob links a blob or manifest linked into from into repo. A manifest
// is mounted as a manifest (same media type), so GetManifest finds it too.
func (s *Store) MountBlob(ctx context.Context, repo, from string, d digest.Digest) (_ storage.BlobInfo, err error) {
	defer noSpace(&err)
	if err := ctx.Err(); err != nil {
		return storage.BlobInfo{}, err
	}
	rdir, err := s.repoDir(repo, nil)
	if err != nil {
		return storage.BlobInfo{}, err
	}
	g, err := lookupDigest(d, storage.ErrBlobUnknown)
	if err != nil {
		return storage.BlobInfo{}, err
	}
	var asBlob bool
	var rev []byte
	if from == "" {
		// Mount from anywhere: the content exists in the store, linked in some repository.
		asBlob = true
	} else {
		fdir, err := s.repoDir(from, storage.ErrBlobUnknown)
		if err != nil {
			return storage.BlobInfo{}, err
		}
		asBlob, rev, err = linkedBlob(fdir, g)
		if err != nil {
			return storage.BlobInfo{}, err
		}
	}
	if !asBlob && rev == nil {
		return storage.BlobInfo{}, fmt.Errorf("fs: mount %s from %s: %w", d, from, storage.ErrBlobUnknown)
	}
	// Mark the content used (gc.go) before linking it.
	found, err := touch(s.blobPath(g))
	if err == nil && !found {
		err = fmt.Errorf("fs: mount %s from %s: data missing: %w", d, from, storage.ErrBlobUnknown)
	}
	if err != nil {
		return storage.BlobInfo{}, err
	}
	fi, err := os.Stat(s.blobPath(g))
	if err != nil {
		if isNotExist(err) {
			return storage.BlobInfo{}, fmt.Errorf("fs: mount %s from %s: data missing: %w", d, from, storage.ErrBlobUnknown)
		}
		return storage.BlobInfo{}, fmt.Errorf("fs: %w", err)
	}
	if asBlob {
		if err := s.writeOrTouch(blobLinkPath(rdir, g), []byte(d)); err != nil {
			return storage.BlobInfo{}, err
		}
	}
	if rev != nil {
		mediaType, _ := backend.ParseRevision(rev)
		mu := s.repoLock(repo)
		mu.RLock()
		err := s.linkMountedManifest(rdir, g, mediaType)
		mu.RUnlock()
		if err != nil {
			return storage.BlobInfo{}, err
		}
	}
	return storage.BlobInfo{Digest: d, Size: fi.Size()}, nil
}

// linkMountedManifest links a mounted manifest into rdir unless it is
// already there (keeping an existing revision, which may carry a subject).
func (s *Store) linkMountedManifest(rdir string, g oci.Digest, mediaType string) error {
	path := revisionPath(rdir, g)
	ok, err := touch(path)
	if err != nil || ok {
		return err
	}
	return s.writeFileAtomic(path, backend.FormatRevision(mediaType, ""))
}

// DeleteBlob removes the blob link from repo. Manifests are deleted with DeleteManifest.
func (s *Store) DeleteBlob(ctx context.Context, repo string, d digest.Digest) (err error) {
	defer noSpace(&err)
	if err := ctx.Err(); err != nil {
		return err
	}
	rdir, err := s.repoDir(repo, storage.ErrBlobUnknown)
	if err != nil {
		return err
	}
	g, err := lookupDigest(d, storage.ErrBlobUnknown)
	if err != nil {
		return err
	}
	existed, err := removeDurable(blobLinkPath(rdir, g))
	if err != nil {
		return err
	}
	if !existed {
		return fmt.Errorf("fs: delete blob %s in %s: %w", d, repo, storage.ErrBlobUnknown)
	}
	return nil
}

// fsNameErr is backend.NameErr with this package's error prefix.
func fsNameErr(what, name string, unknown error) error {
	return fmt.Errorf("fs: %w", backend.NameErr(what, name, unknown))
}

// fsCheckTag is backend.CheckTag with this package's error prefix.
func fsCheckTag(tag string, unknown error) error {
	if err := backend.CheckTag(tag, unknown); err != nil {
		return fmt.Errorf("fs: %w", err)
	}
	return nil
}

// parseDigest is backend.ParseDigest with this package's error prefix.
func parseDigest(d digest.Digest) (oci.Digest, error) {
	g, err := backend.ParseDigest(d)
	if err != nil {
		err = fmt.Errorf("fs: %w", err)
	}
	return g, err
}

// lookupDigest is backend.LookupDigest with this package's error prefix.
func lookupDigest(d digest.Digest, unknown error) (oci.Digest, error) {
	g, err := backend.LookupDigest(d, unknown)
	if err != nil {
		err = fmt.Errorf("fs: %w", err)
	}
	return g, err
}
