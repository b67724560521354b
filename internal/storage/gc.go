package storage

import (
	"context"
	"errors"
	"time"

	"github.com/opencontainers/go-digest"
)

// ---------------------------------------------------------------------------
// Garbage collection (see docs/gc.md). Kept apart from the request-path
// contract in storage.go: only internal/gc uses these verbs.

// ErrInUse is returned by the Collector's delete verbs when the thing was
// used (written, committed, mounted or referenced by a manifest push) at or
// after the cutoff: a concurrent push claimed it, and it stays.
var ErrInUse = errors.New("storage: in use")

// StoredBlob is a blob whose content is in the store.
type StoredBlob struct {
	Digest digest.Digest
	Size   int64
	// LastUsed is the last time the content was written, committed again,
	// mounted or referenced by a manifest push (at least; a backend may report
	// a later time, never an earlier one).
	LastUsed time.Time
}

// LinkedManifest is a manifest linked into a repository.
type LinkedManifest struct {
	Digest    digest.Digest
	MediaType string
	Subject   digest.Digest // "" when the manifest has none
	// LastPushed is the last time the manifest was pushed (or mounted) into
	// the repository.
	LastPushed time.Time
}

// BlobLink is a blob linked into a repository (DeleteBlob removes it).
type BlobLink struct {
	Digest   digest.Digest
	LastUsed time.Time // last time the link was written (commit or mount)
}

// RepositoryScan is what garbage collection reads of one repository.
type RepositoryScan struct {
	Manifests []LinkedManifest
	Tags      map[string]digest.Digest // tag -> manifest digest
	Blobs     []BlobLink
}

// Collector is what garbage collection needs of a backend. Both backends
// implement it; storagetest runs the same GC contract tests against each.
//
// Backends MUST refresh the "last used" time of a blob's content whenever a
// request relies on that content staying: CommitUpload (also when the
// content was already stored), MountBlob, and PutManifest for the manifest's
// own bytes and for every digest in PutManifestRequest.Refs. PutManifest MUST
// refresh the revision's LastPushed even when the same manifest is pushed again.
type Collector interface {
	// WalkBlobs calls fn for every blob whose content is stored.
	WalkBlobs(ctx context.Context, fn func(StoredBlob) error) error
	// ScanRepository returns the manifests, tags and blob links of repo.
	ScanRepository(ctx context.Context, repo string) (RepositoryScan, error)
	// DeleteBlobContent deletes the content of d unless it was used at or
	// after cutoff (ErrInUse). It returns the bytes freed (0 and no error
	// when the content is already gone).
	DeleteBlobContent(ctx context.Context, d digest.Digest, cutoff time.Time) (int64, error)
	// DeleteBlobLink removes repo's link to d unless the link was written at
	// or after cutoff (ErrInUse). A missing link is not an error.
	DeleteBlobLink(ctx context.Context, repo string, d digest.Digest, cutoff time.Time) error
	// DeleteUntaggedManifest unlinks manifest d from repo like DeleteManifest,
	// unless it was pushed at or after cutoff or a tag points at it (ErrInUse).
	DeleteUntaggedManifest(ctx context.Context, repo string, d digest.Digest, cutoff time.Time) error
}

// TempFile is a file that a write interrupted by a crash left behind: staged
// under a name no reader accepts and never renamed into place.
type TempFile struct {
	Path     string // relative to the backend's root, for reports and DeleteTempFile
	Size     int64
	Modified time.Time // the last write to it
}

// TempCollector is an optional capability of a Collector whose writes stage
// through temporary files (the filesystem backend; S3 stages nothing outside
// upload sessions). Garbage collection removes the temporary files not
// written to since before its cutoff: a write in progress keeps its file's
// modification time recent, so it is never disturbed. Temporary files inside
// upload sessions are not listed: PurgeUploads removes them with their session.
type TempCollector interface {
	// WalkTempFiles calls fn for every temporary file outside upload sessions.
	WalkTempFiles(ctx context.Context, fn func(TempFile) error) error
	// DeleteTempFile removes the temporary file at path (a TempFile.Path)
	// unless it was modified at or after cutoff (ErrInUse). It returns the
	// bytes freed (0 and no error when the file is already gone).
	DeleteTempFile(ctx context.Context, path string, cutoff time.Time) (int64, error)
}
