package fs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/oci"
	"github.com/berth-registry/berth/internal/storage"
	"github.com/berth-registry/berth/internal/storage/backend"
)

// Browsing listings (storage.Browser). Times are file modification times:
// tags and revision links are written by rename, so a tag's time is when it
// was last pointed at a manifest.

// knownRepo returns the repository directory, or ErrRepositoryUnknown when
// it has never been pushed to.
func (s *Store) knownRepo(repo string) (string, error) {
	rdir, err := s.repoDir(repo, storage.ErrRepositoryUnknown)
	if err != nil {
		return "", err
	}
	entries, err := os.ReadDir(rdir)
	if err != nil && !isNotExist(err) {
		return "", fmt.Errorf("fs: stat repository: %w", err)
	}
	if !isRepository(rdir, entries) {
		return "", fmt.Errorf("fs: repository %s: %w", repo, storage.ErrRepositoryUnknown)
	}
	return rdir, nil
}

// ListTagInfo implements storage.Browser.
func (s *Store) ListTagInfo(ctx context.Context, repo, after string, n int) ([]storage.TagInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rdir, err := s.knownRepo(repo)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(tagsDir(rdir))
	if err != nil && !isNotExist(err) {
		return nil, fmt.Errorf("fs: list tags: %w", err)
	}
	out := []storage.TagInfo{}
	for _, e := range entries { // sorted by name
		if n >= 0 && len(out) >= n {
			break
		}
		name := e.Name()
		if name <= after || e.IsDir() || !oci.ValidTag(name) {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			if isNotExist(err) {
				continue // deleted meanwhile
			}
			return nil, fmt.Errorf("fs: list tags: %w", err)
		}
		out = append(out, storage.TagInfo{Name: name, Updated: fi.ModTime().UTC()})
	}
	return out, nil
}

// ListManifests implements storage.Browser.
func (s *Store) ListManifests(ctx context.Context, repo string, after digest.Digest, n int) ([]storage.ManifestInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rdir, err := s.knownRepo(repo)
	if err != nil {
		return nil, err
	}
	out := []storage.ManifestInfo{}
	err = eachLinkAfter(filepath.Join(rdir, dirManifests, "revisions"), string(after), func(d digest.Digest, fi os.FileInfo) bool {
		if n >= 0 && len(out) >= n {
			return false
		}
		out = append(out, storage.ManifestInfo{Digest: d, Updated: fi.ModTime().UTC()})
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("fs: list manifests: %w", err)
	}
	return out, nil
}

// StatRepository implements storage.Browser. It reads the repository's tag,
// revision and blob-link directories and stats each linked blob once.
func (s *Store) StatRepository(ctx context.Context, repo string) (storage.RepositoryInfo, error) {
	info := storage.RepositoryInfo{Name: repo}
	rdir, err := s.knownRepo(repo)
	if err != nil {
		return info, err
	}
	tags, err := s.ListTagInfo(ctx, repo, "", -1)
	if err != nil {
		return info, err
	}
	info.Tags = len(tags)
	for _, t := range tags {
		if t.Updated.After(info.Updated) {
			info.Updated = t.Updated
		}
	}
	seen := map[digest.Digest]bool{}
	var statErr error
	add := func(d digest.Digest) {
		if seen[d] || statErr != nil {
			return
		}
		seen[d] = true
		g, err := backend.ParseDigest(d)
		if err != nil {
			return
		}
		fi, err := os.Stat(s.blobPath(g))
		switch {
		case err == nil:
			info.Size += fi.Size()
		case !isNotExist(err):
			statErr = err
		}
	}
	err = eachLinkAfter(filepath.Join(rdir, dirManifests, "revisions"), "", func(d digest.Digest, fi os.FileInfo) bool {
		info.Manifests++
		if t := fi.ModTime().UTC(); t.After(info.Updated) {
			info.Updated = t
		}
		add(d)
		return ctx.Err() == nil && statErr == nil
	})
	if err == nil {
		err = eachLinkAfter(filepath.Join(rdir, dirBlobs), "", func(d digest.Digest, _ os.FileInfo) bool {
			add(d)
			return ctx.Err() == nil && statErr == nil
		})
	}
	if err == nil {
		err = statErr
	}
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return info, fmt.Errorf("fs: stat repository %s: %w", repo, err)
	}
	return info, nil
}

// eachLinkAfter calls fn, in digest order, for every link file dir/<alg>/<hex>
// whose digest sorts after `after`, until fn returns false.
func eachLinkAfter(dir, after string, fn func(d digest.Digest, fi os.FileInfo) bool) error {
	algs := []string{"sha256", "sha512"} // "sha256:…" < "sha512:…"
	for _, alg := range algs {
		if after != "" && alg+":" < after[:min(len(after), len(alg)+1)] {
			continue
		}
		entries, err := os.ReadDir(filepath.Join(dir, alg))
		if err != nil {
			if isNotExist(err) {
				continue
			}
			return err
		}
		names := make([]string, 0, len(entries))
		for _, e := range entries {
			if !e.IsDir() {
				names = append(names, e.Name())
			}
		}
		slices.Sort(names)
		for _, hex := range names {
			d := digest.Digest(alg + ":" + hex)
			if string(d) <= after {
				continue
			}
			if _, err := backend.ParseDigest(d); err != nil {
				continue // temporary or foreign file
			}
			fi, err := os.Lstat(filepath.Join(dir, alg, hex))
			if err != nil {
				if isNotExist(err) {
					continue
				}
				return err
			}
			if !fn(d, fi) {
				return nil
			}
		}
	}
	return nil
}
