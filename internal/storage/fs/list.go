package fs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/berth-registry/berth/internal/storage/layout"
)

func hasEntry(entries []os.DirEntry, name string) bool {
	for _, e := range entries {
		if e.Name() == name && e.IsDir() {
			return true
		}
	}
	return false
}

// isRepository reports whether the directory dir, whose entries are given,
// is a repository: it has _manifests or _blobs, or _uploads holding a session.
// Only directories are read, never file contents.
func isRepository(dir string, entries []os.DirEntry) bool {
	if hasEntry(entries, dirManifests) || hasEntry(entries, dirBlobs) {
		return true
	}
	if !hasEntry(entries, dirUploads) {
		return false
	}
	sessions, err := os.ReadDir(filepath.Join(dir, dirUploads))
	if err != nil {
		return false
	}
	for _, e := range sessions {
		if layout.ValidUploadID(e.Name()) {
			return true
		}
	}
	return false
}

// walkRepos calls fn for every directory under repositories/ whose path is
// a valid repository name, with its entries. Entries starting with "_" or
// "." are repository internals or temporary and are not descended into;
// symbolic links are not followed.
func (s *Store) walkRepos(ctx context.Context, fn func(name, dir string, entries []os.DirEntry) error) error {
	var walk func(name, dir string) error
	walk = func(name, dir string) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			if isNotExist(err) {
				return nil
			}
			return fmt.Errorf("fs: list repositories: %w", err)
		}
		if name != "" {
			if err := fn(name, dir, entries); err != nil {
				return err
			}
		}
		for _, e := range entries {
			c := e.Name()
			if !e.IsDir() || strings.HasPrefix(c, "_") || strings.HasPrefix(c, ".") || !layout.ValidRepoComponent(c) {
				continue
			}
			child := c
			if name != "" {
				child = name + "/" + c
			}
			if err := walk(child, filepath.Join(dir, c)); err != nil {
				return err
			}
		}
		return nil
	}
	return walk("", s.reposDir)
}

// ListRepositories returns up to n repository names after `after` in lexical
// order (n < 0: all). It reads directories only. Nested names do not sort
// like a depth-first walk ("a-b" < "a/b"), so the names are collected and
// sorted.
func (s *Store) ListRepositories(ctx context.Context, after string, n int) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	repos := []string{}
	err := s.walkRepos(ctx, func(name, dir string, entries []os.DirEntry) error {
		if name > after && isRepository(dir, entries) {
			repos = append(repos, name)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(repos)
	if n >= 0 && len(repos) > n {
		repos = repos[:n]
	}
	return repos, nil
}
