package fs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/berth-registry/berth/internal/oci"
	"github.com/berth-registry/berth/internal/storage/backend"
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
// Only directories are read, never file contents. A directory holding only
// empty directories (left by a failed write of an older version) is still
// listed until garbage collection removes it (WalkTempFiles): looking deeper
// for content here made the catalog 1.5–2× slower.
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
		if backend.ValidUploadID(e.Name()) {
			return true
		}
	}
	return false
}

// hasName reports whether dir has an entry whose name passes ok, reading
// the directory only until it finds one.
func hasName(dir string, ok func(string) bool) bool {
	f, err := os.Open(dir)
	if err != nil {
		return false
	}
	defer f.Close()
	for {
		names, err := f.Readdirnames(32)
		for _, n := range names {
			if ok(n) {
				return true
			}
		}
		if err != nil {
			return false
		}
	}
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
			if !e.IsDir() || strings.HasPrefix(c, "_") || strings.HasPrefix(c, ".") || !oci.ValidRepoComponent(c) {
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
// order (n < 0: all). It reads directories only, and only as many as the page
// needs: subtrees that sort wholly before `after` are skipped and the walk
// stops once n names are found, so a page costs O(page + depth), not O(all
// repositories).
//
// Nested names do not sort like a plain depth-first walk ("a-b" < "a/b"):
// within a directory, a child c is visited twice in one sorted sequence — as
// the name c itself, and as the prefix "c/" of everything below it — which
// is exactly lexical order of the full names.
func (s *Store) ListRepositories(ctx context.Context, after string, n int) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	repos := []string{}
	if n == 0 {
		return repos, nil
	}
	var walk func(prefix, dir string) (bool, error) // done: the page is full
	walk = func(prefix, dir string) (bool, error) {
		if err := ctx.Err(); err != nil {
			return true, err
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			if isNotExist(err) {
				return false, nil
			}
			return true, fmt.Errorf("fs: list repositories: %w", err)
		}
		type step struct {
			key     string // full name, or full name + "/" for the subtree
			child   string
			subtree bool
		}
		steps := make([]step, 0, 2*len(entries))
		for _, e := range entries {
			c := e.Name()
			if !e.IsDir() || strings.HasPrefix(c, "_") || strings.HasPrefix(c, ".") || !oci.ValidRepoComponent(c) {
				continue
			}
			steps = append(steps, step{prefix + c, c, false}, step{prefix + c + "/", c, true})
		}
		slices.SortFunc(steps, func(a, b step) int { return strings.Compare(a.key, b.key) })
		for _, st := range steps {
			childDir := filepath.Join(dir, st.child)
			if st.subtree {
				// Every name below starts with st.key: skip the subtree when
				// they all sort at or before after.
				if st.key <= after && !strings.HasPrefix(after, st.key) {
					continue
				}
				if done, err := walk(st.key, childDir); done || err != nil {
					return done, err
				}
				continue
			}
			if st.key <= after {
				continue
			}
			ce, err := os.ReadDir(childDir)
			if err != nil {
				if isNotExist(err) {
					continue
				}
				return true, fmt.Errorf("fs: list repositories: %w", err)
			}
			if isRepository(childDir, ce) {
				repos = append(repos, st.key)
				if n > 0 && len(repos) == n {
					return true, nil
				}
			}
		}
		return false, nil
	}
	if _, err := walk("", s.reposDir); err != nil {
		return nil, err
	}
	return repos, nil
}
