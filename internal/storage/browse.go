package storage

import (
	"context"
	"time"

	"github.com/opencontainers/go-digest"
)

// Browser is the part of the contract the web UI reads: listings with the
// metadata a page shows (push times, counts, sizes). Like every listing it
// takes (after, n), so a page costs what is on it, not what is in the store.
//
// Times are those of the storage backend (file modification time, S3
// LastModified): when the tag was last pointed at a manifest, when the
// manifest was first linked into the repository.
type Browser interface {
	// ListTagInfo is ListTags with the time each tag was last written.
	ListTagInfo(ctx context.Context, repo, after string, n int) ([]TagInfo, error)
	// ListManifests returns up to n manifests linked into repo whose digest
	// sorts after `after` (n < 0: all), in digest order;
	// ErrRepositoryUnknown if the repository has never been pushed to.
	ListManifests(ctx context.Context, repo string, after digest.Digest, n int) ([]ManifestInfo, error)
	// StatRepository summarises one repository. It reads the repository's
	// own listings (tags, manifests, blob links), never other repositories;
	// callers showing many repositories should cache it.
	StatRepository(ctx context.Context, repo string) (RepositoryInfo, error)
}

// TagInfo is a tag and when it was last pointed at a manifest.
type TagInfo struct {
	Name    string
	Updated time.Time
}

// ManifestInfo is a manifest linked into a repository and when it was linked.
type ManifestInfo struct {
	Digest  digest.Digest
	Updated time.Time
}

// RepositoryInfo summarises a repository.
type RepositoryInfo struct {
	Name      string
	Tags      int
	Manifests int
	// Size is the sum of the sizes of the blobs and manifests linked into the
	// repository, each counted once.
	Size int64
	// Updated is the latest push: the newest tag or manifest link (zero when
	// the repository holds neither).
	Updated time.Time
}
