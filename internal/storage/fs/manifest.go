package fs

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/berth-registry/berth/internal/oci"
	"github.com/berth-registry/berth/internal/storage/backend"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/storage"
)

func manifestUnknown(repo string, d digest.Digest) error {
	return fmt.Errorf("fs: manifest %s in %s: %w", d, repo, storage.ErrManifestUnknown)
}

func (s *Store) manifest(ctx context.Context, repo string, d digest.Digest, withData bool) (storage.Manifest, error) {
	if err := ctx.Err(); err != nil {
		return storage.Manifest{}, err
	}
	rdir, err := s.repoDir(repo, storage.ErrManifestUnknown)
	if err != nil {
		return storage.Manifest{}, err
	}
	g, err := lookupDigest(d, storage.ErrManifestUnknown)
	if err != nil {
		return storage.Manifest{}, err
	}
	rev, err := os.ReadFile(revisionPath(rdir, g))
	if err != nil {
		if isNotExist(err) {
			return storage.Manifest{}, manifestUnknown(repo, d)
		}
		return storage.Manifest{}, fmt.Errorf("fs: get manifest: %w", err)
	}
	mediaType, _ := backend.ParseRevision(rev)
	m := storage.Manifest{Digest: d, MediaType: mediaType}
	if withData {
		m.Data, err = os.ReadFile(s.blobPath(g))
	} else {
		_, err = os.Stat(s.blobPath(g))
	}
	if err != nil {
		if isNotExist(err) {
			return storage.Manifest{}, fmt.Errorf("fs: manifest %s in %s: bytes missing: %w", d, repo, storage.ErrManifestUnknown)
		}
		return storage.Manifest{}, fmt.Errorf("fs: get manifest: %w", err)
	}
	return m, nil
}

// GetManifest returns a manifest linked into repo, or ErrManifestUnknown.
func (s *Store) GetManifest(ctx context.Context, repo string, d digest.Digest) (storage.Manifest, error) {
	return s.manifest(ctx, repo, d, true)
}

// StatManifest is GetManifest without the bytes.
func (s *Store) StatManifest(ctx context.Context, repo string, d digest.Digest) (storage.Manifest, error) {
	return s.manifest(ctx, repo, d, false)
}

// PutManifest stores the manifest bytes as a blob, then links the revision,
// then the referrer entry, then the tags, each step durable before the next.
// The bytes must hash to Manifest.Digest (ErrDigestMismatch).
func (s *Store) PutManifest(ctx context.Context, repo string, req storage.PutManifestRequest) (err error) {
	defer noSpace(&err)
	if err := ctx.Err(); err != nil {
		return err
	}
	rdir, err := s.repoDir(repo, nil)
	if err != nil {
		return err
	}
	m := req.Manifest
	cm, err := backend.CheckManifest(req)
	if err != nil {
		return fmt.Errorf("fs: %w", err)
	}
	g, subject, referrer := cm.Digest, cm.Subject, cm.Referrer

	mu := s.repoLock(repo)
	mu.RLock()
	defer mu.RUnlock()

	// 0. what it refers to, marked used so garbage collection keeps it (gc.go)
	if err := s.touchRefs(req.Refs); err != nil {
		return err
	}
	// 1. bytes
	blob := s.blobPath(g)
	have, err := touch(blob)
	if err != nil {
		return err
	}
	if !have {
		if err := s.writeFileAtomic(blob, m.Data); err != nil {
			return err
		}
	}
	// 2. revision (its time is when the manifest was last pushed)
	if err := s.writeOrTouch(revisionPath(rdir, g), backend.FormatRevision(m.MediaType, req.Subject)); err != nil {
		return err
	}
	// 3. referrer
	if req.Subject != "" {
		if err := s.writeFileIfChanged(filepath.Join(referrersDir(rdir, subject), backend.ReferrerName(g)), referrer); err != nil {
			return err
		}
	}
	// 4. tags
	for _, tag := range req.Tags {
		if err := s.writeFileIfChanged(filepath.Join(tagsDir(rdir), tag), []byte(m.Digest)); err != nil {
			return err
		}
	}
	return nil
}

// DeleteManifest removes, in this order, the tags pointing at the manifest,
// its referrer entry and its revision link. The bytes stay for garbage
// collection (other repositories may link them).
func (s *Store) DeleteManifest(ctx context.Context, repo string, d digest.Digest) (err error) {
	defer noSpace(&err)
	m, err := s.lockRevision(ctx, repo, d)
	if err != nil {
		return fmt.Errorf("fs: delete manifest: %w", err)
	}
	defer m.unlock()
	rdir, g, rev, revPath := m.rdir, m.g, m.rev, m.path

	tdir := tagsDir(rdir)
	entries, err := os.ReadDir(tdir)
	if err != nil && !isNotExist(err) {
		return fmt.Errorf("fs: delete manifest: %w", err)
	}
	removed := false
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		p := filepath.Join(tdir, e.Name())
		b, err := os.ReadFile(p)
		if err != nil {
			if isNotExist(err) {
				continue
			}
			return fmt.Errorf("fs: delete manifest: %w", err)
		}
		if digest.Digest(bytes.TrimSpace(b)) == d {
			if err := os.Remove(p); err != nil && !isNotExist(err) {
				return fmt.Errorf("fs: delete manifest: %w", err)
			}
			removed = true
		}
	}
	if removed {
		if err := syncDir(tdir); err != nil {
			return err
		}
	}

	if _, subj := backend.ParseRevision(rev); subj != "" {
		if sg, err := parseDigest(subj); err == nil {
			if _, err := removeDurable(filepath.Join(referrersDir(rdir, sg), backend.ReferrerName(g))); err != nil {
				return err
			}
		}
	}

	if _, err := removeDurable(revPath); err != nil {
		return err
	}
	return nil
}

// ResolveTag returns the digest the tag points at. A tag whose manifest is
// not linked (which the write order prevents) is reported unknown.
func (s *Store) ResolveTag(ctx context.Context, repo, tag string) (digest.Digest, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	rdir, err := s.repoDir(repo, storage.ErrTagUnknown)
	if err != nil {
		return "", err
	}
	if err := fsCheckTag(tag, storage.ErrTagUnknown); err != nil {
		return "", err
	}
	b, err := os.ReadFile(filepath.Join(tagsDir(rdir), tag))
	if err != nil {
		if isNotExist(err) {
			return "", fmt.Errorf("fs: tag %s in %s: %w", tag, repo, storage.ErrTagUnknown)
		}
		return "", fmt.Errorf("fs: resolve tag: %w", err)
	}
	d := digest.Digest(bytes.TrimSpace(b))
	g, err := parseDigest(d)
	if err != nil {
		return "", fmt.Errorf("fs: tag %s in %s: damaged: %w", tag, repo, storage.ErrTagUnknown)
	}
	ok, err := exists(revisionPath(rdir, g))
	if err != nil {
		return "", err
	}
	if !ok {
		return "", fmt.Errorf("fs: tag %s in %s: manifest %s missing: %w", tag, repo, d, storage.ErrTagUnknown)
	}
	return d, nil
}

// DeleteTag removes a tag; the manifest stays.
func (s *Store) DeleteTag(ctx context.Context, repo, tag string) (err error) {
	defer noSpace(&err)
	if err := ctx.Err(); err != nil {
		return err
	}
	rdir, err := s.repoDir(repo, storage.ErrTagUnknown)
	if err != nil {
		return err
	}
	if err := fsCheckTag(tag, storage.ErrTagUnknown); err != nil {
		return err
	}
	existed, err := removeDurable(filepath.Join(tagsDir(rdir), tag))
	if err != nil {
		return err
	}
	if !existed {
		return fmt.Errorf("fs: tag %s in %s: %w", tag, repo, storage.ErrTagUnknown)
	}
	return nil
}

// ListReferrers returns the descriptors of the manifests in repo whose
// subject is d, ordered by referrer digest.
func (s *Store) ListReferrers(ctx context.Context, repo string, d digest.Digest) ([]storage.Descriptor, error) {
	out := []storage.Descriptor{}
	err := s.WalkReferrers(ctx, repo, d, "", func(ref digest.Digest, b []byte) (bool, error) {
		var desc storage.Descriptor
		if err := json.Unmarshal(b, &desc); err != nil {
			return false, fmt.Errorf("fs: referrer %s of %s in %s: %w", ref, d, repo, err)
		}
		out = append(out, desc)
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// referrerBatch is how many entry names of a referrers directory WalkReferrers
// holds at once (the smallest after its cursor); a directory with more is
// scanned again from the last name handed out.
const referrerBatch = 1000

// WalkReferrers calls fn with the referrers of d in repo after `after`, in
// entry-name order, reading one entry file at a time.
func (s *Store) WalkReferrers(ctx context.Context, repo string, d, after digest.Digest, fn func(digest.Digest, []byte) (bool, error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	rdir, err := s.repoDir(repo, storage.ErrManifestUnknown)
	if err != nil {
		return err
	}
	subject, err := lookupDigest(d, storage.ErrManifestUnknown)
	if err != nil {
		return err
	}
	cursor := ""
	if after != "" {
		g, err := parseDigest(after)
		if err != nil {
			return err
		}
		cursor = backend.ReferrerName(g)
	}
	dir := referrersDir(rdir, subject)
	var buf []byte // reused for every entry
	for {
		names, full, err := smallestNamesAfter(dir, cursor, referrerBatch)
		if err != nil {
			return fmt.Errorf("fs: list referrers: %w", err)
		}
		for _, name := range names {
			if err := ctx.Err(); err != nil {
				return err
			}
			cursor = name
			alg, enc, _ := strings.Cut(name, "-")
			g, err := parseDigest(digest.Digest(alg + ":" + enc))
			if err != nil {
				continue
			}
			if ok, err := exists(revisionPath(rdir, g)); err != nil {
				return err
			} else if !ok {
				continue
			}
			b, err := readFileInto(filepath.Join(dir, name), buf)
			if err != nil {
				if isNotExist(err) {
					continue // deleted meanwhile
				}
				return fmt.Errorf("fs: list referrers: %w", err)
			}
			buf = b
			if more, err := fn(g.D, b); err != nil || !more {
				return err
			}
		}
		if !full {
			return nil
		}
	}
}

// readFileInto is os.ReadFile into buf (grown only when the file is larger).
func readFileInto(path string, buf []byte) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	buf = slices.Grow(buf[:0], int(fi.Size())+1)
	for {
		n, err := f.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
		if len(buf) == cap(buf) { // grew meanwhile
			buf = slices.Grow(buf, 4096)
		}
	}
}

// smallestNamesAfter returns, sorted, the n smallest entry names of dir that
// are referrer names ("<alg>-<hex>", no dot file) sorting after `after`,
// reading the directory in small batches so that memory does not grow with
// its size; full reports that more such names may remain. A missing
// directory has none.
func smallestNamesAfter(dir, after string, n int) (names []string, full bool, err error) {
	f, err := os.Open(dir)
	if err != nil {
		if isNotExist(err) {
			return nil, false, nil
		}
		return nil, false, err
	}
	defer f.Close()
	dropped := false
	for {
		batch, rerr := f.ReadDir(256)
		for _, e := range batch {
			name := e.Name()
			if name > after && !strings.HasPrefix(name, ".") && strings.Contains(name, "-") {
				names = append(names, name)
			}
		}
		if len(names) > 2*n {
			slices.Sort(names)
			names = names[:n]
			dropped = true
		}
		if rerr != nil {
			if rerr == io.EOF {
				break
			}
			return nil, false, rerr
		}
	}
	slices.Sort(names)
	if len(names) > n {
		names, dropped = names[:n], true
	}
	return names, dropped || len(names) == n, nil
}

// ListTags returns up to n tags after `after` in lexical order (n < 0: all).
func (s *Store) ListTags(ctx context.Context, repo, after string, n int) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rdir, err := s.repoDir(repo, storage.ErrRepositoryUnknown)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(tagsDir(rdir))
	if err != nil {
		if !isNotExist(err) {
			return nil, fmt.Errorf("fs: list tags: %w", err)
		}
		rentries, err := os.ReadDir(rdir)
		if err != nil && !isNotExist(err) {
			return nil, fmt.Errorf("fs: list tags: %w", err)
		}
		if !isRepository(rdir, rentries) {
			return nil, fmt.Errorf("fs: repository %s: %w", repo, storage.ErrRepositoryUnknown)
		}
	}
	tags := []string{}
	for _, e := range entries { // sorted by name
		name := e.Name()
		if name > after && oci.ValidTag(name) && !e.IsDir() {
			tags = append(tags, name)
		}
	}
	slices.Sort(tags)
	if n >= 0 && len(tags) > n {
		tags = tags[:n]
	}
	return tags, nil
}

// lockedRevision is a manifest's revision link read under its repository's
// write lock; unlock releases the lock.
type lockedRevision struct {
	rdir, path string
	g          oci.Digest
	rev        []byte
	unlock     func()
}

// lockRevision resolves repo and d, takes the repository's write lock and
// reads the revision link (ErrManifestUnknown when there is none). On error
// the lock is not held.
func (s *Store) lockRevision(ctx context.Context, repo string, d digest.Digest) (lockedRevision, error) {
	if err := ctx.Err(); err != nil {
		return lockedRevision{}, err
	}
	rdir, err := s.repoDir(repo, storage.ErrManifestUnknown)
	if err != nil {
		return lockedRevision{}, err
	}
	g, err := lookupDigest(d, storage.ErrManifestUnknown)
	if err != nil {
		return lockedRevision{}, err
	}
	mu := s.repoLock(repo)
	mu.Lock()
	path := revisionPath(rdir, g)
	rev, err := os.ReadFile(path)
	if err != nil {
		mu.Unlock()
		if isNotExist(err) {
			return lockedRevision{}, manifestUnknown(repo, d)
		}
		return lockedRevision{}, err
	}
	return lockedRevision{rdir: rdir, path: path, g: g, rev: rev, unlock: mu.Unlock}, nil
}
