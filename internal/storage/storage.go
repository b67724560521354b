// Package storage defines the registry-shaped storage contract every berth
// backend implements: the filesystem (fs) and S3-compatible object storage
// (s3).
//
// The verbs are those of a registry, not of a filesystem: blobs are content
// addressed and deduplicated across repositories, and a repository sees only the
// blobs and manifests linked into it. Listings take (after, n) so that a backend
// can answer a page without walking everything.
//
// Backends MUST:
//   - verify size and digest while a blob streams in, and store nothing on mismatch;
//   - never expose partial content: a blob, manifest or tag becomes visible
//     atomically, and only after everything it refers to is durable;
//   - keep upload session state in storage, never only in process memory, so a
//     session survives a restart and can continue on another replica;
//   - return the sentinel errors below (wrapped with %w is fine) so the HTTP layer
//     maps them to OCI error codes in one place.
//
// The contract suite in storagetest keeps every backend honest.
package storage

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/oci"
)

// Sentinel errors. Callers test them with errors.Is.
var (
	ErrBlobUnknown       = errors.New("storage: blob unknown")
	ErrManifestUnknown   = errors.New("storage: manifest unknown")
	ErrTagUnknown        = errors.New("storage: tag unknown")
	ErrRepositoryUnknown = errors.New("storage: repository unknown")
	ErrUploadUnknown     = errors.New("storage: upload unknown")
	// ErrDigestMismatch: the content written does not hash to the claimed digest.
	ErrDigestMismatch = errors.New("storage: digest mismatch")
	// ErrSizeMismatch: the content written does not have the claimed size.
	ErrSizeMismatch = errors.New("storage: size mismatch")
	// ErrUploadOffset: a chunk does not start where the upload currently ends.
	ErrUploadOffset = errors.New("storage: chunk does not continue the upload")
	// ErrTooLarge: content is over a configured size limit.
	ErrTooLarge = errors.New("storage: content too large")
	// ErrUnsupportedDigest: the digest algorithm is not supported (sha256 and sha512 are).
	ErrUnsupportedDigest = errors.New("storage: unsupported digest algorithm")
	// ErrUnavailable: the backend (an object store that cannot be reached,
	// times out or answers 5xx) or something else the store depends on (the
	// shared lock service of several replicas) does not answer; retry later.
	ErrUnavailable = errors.New("storage: temporarily unavailable")
	// ErrInsufficientStorage: the backend has no room left for a write (a full
	// filesystem, ENOSPC, or an exhausted quota, EDQUOT). Nothing partial is
	// visible; the write can be retried once space is freed.
	ErrInsufficientStorage = errors.New("storage: insufficient storage")
)

// BlobInfo describes a stored blob.
type BlobInfo struct {
	Digest digest.Digest
	Size   int64
}

// UploadInfo describes an upload session.
type UploadInfo struct {
	ID        string
	Repo      string
	Size      int64     // bytes received so far
	StartedAt time.Time // when the session began
}

// Manifest is a stored manifest: its exact bytes and the media type it was pushed with.
type Manifest struct {
	Digest    digest.Digest
	MediaType string
	Data      []byte
}

// Descriptor is an OCI content descriptor as stored in the referrers index
// (mediaType, digest, size, artifactType and annotations are set).
type Descriptor = oci.Descriptor

// PutManifestRequest is what PutManifest stores. The HTTP layer has parsed and
// validated the manifest; the store only records it.
type PutManifestRequest struct {
	Manifest Manifest
	// Tags are pointed at the manifest once it is stored (PUT by tag, or ?tag=).
	Tags []string
	// Subject, when not empty, records the manifest as a referrer of Subject;
	// Referrer is the descriptor listed by the referrers API.
	Subject  digest.Digest
	Referrer Descriptor
	// Refs are the stored blobs and child manifests the manifest refers to
	// (config, layers, index entries) that the caller has checked exist. The
	// store marks each as used (see Collector) before linking the manifest,
	// and refuses with ErrBlobUnknown when one has gone meanwhile (garbage
	// collection removed it), so a manifest never refers to swept content.
	Refs []digest.Digest
}

// Store is the storage contract. Repository names are validated by the caller
// (the HTTP layer) against the distribution-spec grammar before they get here;
// backends must still refuse anything that would escape their namespace.
type Store interface {
	// Ping reports whether the backend answers (readiness).
	Ping(ctx context.Context) error

	// StatBlob returns the blob if it is linked into repo, else ErrBlobUnknown.
	StatBlob(ctx context.Context, repo string, d digest.Digest) (BlobInfo, error)
	// OpenBlob streams length bytes of the blob from offset (length < 0: to the end).
	OpenBlob(ctx context.Context, repo string, d digest.Digest, offset, length int64) (io.ReadCloser, error)
	// MountBlob links a blob (or a manifest, as the docker CLI mounts child
	// manifests of an index) that is linked into from into repo. With from ==
	// "" it links a blob whose content exists anywhere in the store: callers
	// allow that only when every repository is readable by the caller.
	MountBlob(ctx context.Context, repo, from string, d digest.Digest) (BlobInfo, error)
	// DeleteBlob unlinks the blob from repo. Space is reclaimed by garbage collection.
	DeleteBlob(ctx context.Context, repo string, d digest.Digest) error

	// BeginUpload starts an upload session in repo.
	BeginUpload(ctx context.Context, repo string) (UploadInfo, error)
	// StatUpload returns the session, or ErrUploadUnknown.
	StatUpload(ctx context.Context, repo, id string) (UploadInfo, error)
	// AppendUpload appends r to the session; offset must equal the current size
	// (else ErrUploadOffset). It returns the new size. On a read error the bytes
	// already appended stay, so the client can resume from the reported size.
	// Appends need not be durable: a store reports (StatUpload) only bytes
	// that are there and hashed consistently after a crash, and makes the
	// content durable at commit.
	AppendUpload(ctx context.Context, repo, id string, offset int64, r io.Reader) (int64, error)
	// CommitUpload verifies the session's content against d (ErrDigestMismatch:
	// nothing is stored and the session is removed), moves it into the blob store
	// and links it into repo.
	CommitUpload(ctx context.Context, repo, id string, d digest.Digest) (BlobInfo, error)
	// AbortUpload removes the session.
	AbortUpload(ctx context.Context, repo, id string) error
	// PurgeUploads removes sessions started before olderThan and returns how many.
	PurgeUploads(ctx context.Context, olderThan time.Time) (int, error)

	// GetManifest returns a manifest linked into repo, or ErrManifestUnknown.
	GetManifest(ctx context.Context, repo string, d digest.Digest) (Manifest, error)
	// StatManifest is GetManifest without the bytes (Data is nil).
	StatManifest(ctx context.Context, repo string, d digest.Digest) (Manifest, error)
	// PutManifest stores a manifest, then (if set) its referrer entry and tags.
	// It verifies that Data hashes to Digest (ErrDigestMismatch otherwise).
	PutManifest(ctx context.Context, repo string, req PutManifestRequest) error
	// DeleteManifest unlinks the manifest, every tag pointing at it and its referrer entry.
	DeleteManifest(ctx context.Context, repo string, d digest.Digest) error

	// ResolveTag returns the digest the tag points at, or ErrTagUnknown.
	ResolveTag(ctx context.Context, repo, tag string) (digest.Digest, error)
	// DeleteTag removes a tag (the manifest stays).
	DeleteTag(ctx context.Context, repo, tag string) error
	// ListTags returns up to n tags after `after` in lexical order (n < 0: all);
	// ErrRepositoryUnknown if the repository has never been pushed to.
	ListTags(ctx context.Context, repo, after string, n int) ([]string, error)
	// ListRepositories returns up to n repository names after `after` in lexical order (n < 0: all).
	ListRepositories(ctx context.Context, after string, n int) ([]string, error)
	// ListReferrers returns the descriptors of the manifests in repo whose subject is d.
	// It holds them all in memory: the referrers API uses WalkReferrers.
	ListReferrers(ctx context.Context, repo string, d digest.Digest) ([]Descriptor, error)
	// WalkReferrers calls fn with each referrer of d in repo, one at a time, in
	// the order of the referrer's digest string, starting after the referrer
	// `after` ("" from the first): ref is the referrer's digest and desc its
	// Descriptor as stored (JSON; valid only during the call, the backend
	// reuses the buffer: fn copies what it keeps). It stops when fn returns
	// false or an error (returned as is). Memory stays bounded whatever the
	// number of referrers: a backend never holds them all at once.
	WalkReferrers(ctx context.Context, repo string, d, after digest.Digest, fn func(ref digest.Digest, desc []byte) (bool, error)) error

	// Browsing listings for the web UI (browse.go).
	Browser
}

// WholeUploader is an optional capability of a Store: storing a whole blob
// whose digest is known before its first byte (POST ?digest= with the body,
// or PUT ?digest= with the body on an empty session) more cheaply than
// AppendUpload + CommitUpload — on S3 the bytes go straight to their content
// address instead of being copied there after the upload.
//
// The outcome is CommitUpload's: the blob is stored and linked into repo only
// if the bytes hash to d, and the session is removed; on a digest mismatch
// (ErrDigestMismatch) nothing is stored and the session is removed too. A
// session that already holds bytes gives ErrUploadOffset; a read error leaves
// the session as it was (empty), so the client can try again.
type WholeUploader interface {
	UploadWhole(ctx context.Context, repo, id string, d digest.Digest, r io.Reader) (BlobInfo, error)
}
