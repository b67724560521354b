package s3

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/oci"
	"github.com/berth-registry/berth/internal/storage"
	"github.com/berth-registry/berth/internal/storage/backend"
)

// Browsing listings (storage.Browser). Times are the objects' LastModified:
// a tag object is rewritten when the tag moves.

// statConcurrency bounds the HEAD requests StatRepository runs at once.
const statConcurrency = 8

// listObjectsAfter is listKeys with each object's LastModified.
func (s *Store) listObjectsAfter(ctx context.Context, prefix, after string, pageHint int, fn func(key string, modified time.Time) bool) error {
	return s.listEntries(ctx, prefix, after, pageHint, func(key string, o types.Object) (bool, error) {
		return fn(key, aws.ToTime(o.LastModified).UTC()), nil
	})
}

// knownRepo returns the repository's key prefix, or ErrRepositoryUnknown
// when it has never been pushed to.
func (s *Store) knownRepo(ctx context.Context, repo string) (string, error) {
	rk, err := s.repoKey(repo, storage.ErrRepositoryUnknown)
	if err != nil {
		return "", err
	}
	ok, err := s.exists(ctx, s.reposKey()+encodeRepo(repo))
	if err != nil {
		return "", err
	}
	if !ok {
		return "", fmt.Errorf("s3: repository %s: %w", repo, storage.ErrRepositoryUnknown)
	}
	return rk, nil
}

// ListTagInfo implements storage.Browser: one ListObjectsV2 page of n keys.
func (s *Store) ListTagInfo(ctx context.Context, repo, after string, n int) ([]storage.TagInfo, error) {
	rk, err := s.knownRepo(ctx, repo)
	if err != nil {
		return nil, err
	}
	out := []storage.TagInfo{}
	if n == 0 {
		return out, nil
	}
	prefix := tagsKey(rk)
	err = s.listObjectsAfter(ctx, prefix, after, n, func(key string, mod time.Time) bool {
		tag := strings.TrimPrefix(key, prefix)
		if tag > after && oci.ValidTag(tag) {
			out = append(out, storage.TagInfo{Name: tag, Updated: mod})
		}
		return n < 0 || len(out) < n
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ListManifests implements storage.Browser: revision keys sort like their
// digests ("sha256/…" < "sha512/…").
func (s *Store) ListManifests(ctx context.Context, repo string, after digest.Digest, n int) ([]storage.ManifestInfo, error) {
	rk, err := s.knownRepo(ctx, repo)
	if err != nil {
		return nil, err
	}
	out := []storage.ManifestInfo{}
	if n == 0 {
		return out, nil
	}
	prefix := rk + "_manifests/revisions/"
	err = s.eachLinkAfter(ctx, prefix, after, n, func(d digest.Digest, mod time.Time) bool {
		out = append(out, storage.ManifestInfo{Digest: d, Updated: mod})
		return n < 0 || len(out) < n
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// eachLinkAfter lists link keys prefix<alg>/<hex> after the digest `after`.
func (s *Store) eachLinkAfter(ctx context.Context, prefix string, after digest.Digest, pageHint int, fn func(d digest.Digest, mod time.Time) bool) error {
	start := strings.Replace(string(after), ":", "/", 1)
	return s.listObjectsAfter(ctx, prefix, start, pageHint, func(key string, mod time.Time) bool {
		alg, hex, ok := strings.Cut(strings.TrimPrefix(key, prefix), "/")
		if !ok {
			return true
		}
		d := digest.Digest(alg + ":" + hex)
		if _, err := backend.ParseDigest(d); err != nil || d <= after {
			return true
		}
		return fn(d, mod)
	})
}

// StatRepository implements storage.Browser: it lists the repository's
// tags, revisions and blob links, and HEADs each linked blob once.
func (s *Store) StatRepository(ctx context.Context, repo string) (storage.RepositoryInfo, error) {
	info := storage.RepositoryInfo{Name: repo}
	rk, err := s.knownRepo(ctx, repo)
	if err != nil {
		return info, err
	}
	newer := func(t time.Time) {
		if t.After(info.Updated) {
			info.Updated = t
		}
	}
	prefix := tagsKey(rk)
	err = s.listObjectsAfter(ctx, prefix, "", 0, func(key string, mod time.Time) bool {
		if oci.ValidTag(strings.TrimPrefix(key, prefix)) {
			info.Tags++
			newer(mod)
		}
		return true
	})
	if err != nil {
		return info, err
	}
	seen := map[digest.Digest]bool{}
	var digests []digest.Digest
	err = s.eachLinkAfter(ctx, rk+"_manifests/revisions/", "", 0, func(d digest.Digest, mod time.Time) bool {
		info.Manifests++
		newer(mod)
		if !seen[d] {
			seen[d] = true
			digests = append(digests, d)
		}
		return true
	})
	if err == nil {
		err = s.eachLinkAfter(ctx, rk+"_blobs/", "", 0, func(d digest.Digest, _ time.Time) bool {
			if !seen[d] {
				seen[d] = true
				digests = append(digests, d)
			}
			return true
		})
	}
	if err != nil {
		return info, err
	}
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
		sem      = make(chan struct{}, statConcurrency)
	)
	for _, d := range digests {
		g, _ := backend.ParseDigest(d)
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			size, found, err := s.head(ctx, s.blobKey(g))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil && firstErr == nil:
				firstErr = err
			case found:
				info.Size += size
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return info, fmt.Errorf("s3: stat repository %s: %w", repo, firstErr)
	}
	return info, nil
}
