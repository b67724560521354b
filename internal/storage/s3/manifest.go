package s3

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/berth-registry/berth/internal/oci"
	"github.com/berth-registry/berth/internal/storage/backend"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/storage"
)

func manifestUnknown(repo string, d digest.Digest) error {
	return fmt.Errorf("s3: manifest %s in %s: %w", d, repo, storage.ErrManifestUnknown)
}

func (s *Store) manifest(ctx context.Context, repo string, d digest.Digest, withData bool) (storage.Manifest, error) {
	rk, err := s.repoKey(repo, storage.ErrManifestUnknown)
	if err != nil {
		return storage.Manifest{}, err
	}
	g, err := lookupDigest(d, storage.ErrManifestUnknown)
	if err != nil {
		return storage.Manifest{}, err
	}
	rev, err := s.get(ctx, revisionKey(rk, g))
	if err != nil {
		if isNotFound(err) {
			return storage.Manifest{}, manifestUnknown(repo, d)
		}
		return storage.Manifest{}, fmt.Errorf("s3: get manifest: %w", err)
	}
	mediaType, _ := backend.ParseRevision(rev)
	m := storage.Manifest{Digest: d, MediaType: mediaType}
	if withData {
		m.Data, err = s.get(ctx, s.blobKey(g))
		if err != nil {
			if isNotFound(err) {
				return storage.Manifest{}, fmt.Errorf("s3: manifest %s in %s: bytes missing: %w", d, repo, storage.ErrManifestUnknown)
			}
			return storage.Manifest{}, fmt.Errorf("s3: get manifest: %w", err)
		}
		return m, nil
	}
	ok, err := s.exists(ctx, s.blobKey(g))
	if err != nil {
		return storage.Manifest{}, err
	}
	if !ok {
		return storage.Manifest{}, fmt.Errorf("s3: manifest %s in %s: bytes missing: %w", d, repo, storage.ErrManifestUnknown)
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
// then the referrer entry, then the tags, each object written before the
// next. The bytes must hash to Manifest.Digest (ErrDigestMismatch).
func (s *Store) PutManifest(ctx context.Context, repo string, req storage.PutManifestRequest) error {
	rk, err := s.repoKey(repo, nil)
	if err != nil {
		return err
	}
	m := req.Manifest
	cm, err := backend.CheckManifest(req)
	if err != nil {
		return fmt.Errorf("s3: %w", err)
	}
	g, subject, referrer := cm.Digest, cm.Subject, cm.Referrer

	mu := s.repoLock(repo)
	mu.RLock()
	defer mu.RUnlock()
	// Across processes, exclude garbage collection unlinking this manifest
	// as untagged while it is pushed again (gc.go).
	unlock, err := s.lockManifest(ctx, repo, g)
	if err != nil {
		return err
	}
	defer unlock()

	// 0. the repository exists from now on
	if err := s.markRepo(ctx, repo); err != nil {
		return err
	}
	// 0. what it refers to, marked used so garbage collection keeps it (gc.go)
	if err := s.touchRefs(ctx, req.Refs); err != nil {
		return err
	}
	// 1. bytes
	blob := s.blobKey(g)
	have, err := s.exists(ctx, blob)
	if err == nil && have {
		_, have, err = s.touchBlob(ctx, g)
	}
	if err != nil {
		return err
	}
	if !have {
		if err := s.put(ctx, blob, m.Data); err != nil {
			return err
		}
	}
	// 2. revision, always written: its time is the last push (gc.go)
	if err := s.put(ctx, revisionKey(rk, g), backend.FormatRevision(m.MediaType, req.Subject)); err != nil {
		return err
	}
	// 3. referrer
	if req.Subject != "" {
		if err := s.putIfChanged(ctx, referrersKey(rk, subject)+backend.ReferrerName(g), referrer); err != nil {
			return err
		}
	}
	// 4. tags
	for _, tag := range req.Tags {
		if err := s.put(ctx, tagsKey(rk)+tag, []byte(m.Digest)); err != nil {
			return err
		}
	}
	return nil
}

// DeleteManifest removes, in this order, the tags pointing at the manifest,
// its referrer entry and its revision link. The bytes stay for garbage
// collection (other repositories may link them).
func (s *Store) DeleteManifest(ctx context.Context, repo string, d digest.Digest) error {
	rk, err := s.repoKey(repo, storage.ErrManifestUnknown)
	if err != nil {
		return err
	}
	g, err := lookupDigest(d, storage.ErrManifestUnknown)
	if err != nil {
		return err
	}
	mu := s.repoLock(repo)
	mu.Lock()
	defer mu.Unlock()

	revKey := revisionKey(rk, g)
	rev, err := s.get(ctx, revKey)
	if err != nil {
		if isNotFound(err) {
			return manifestUnknown(repo, d)
		}
		return fmt.Errorf("s3: delete manifest: %w", err)
	}

	tk := tagsKey(rk)
	err = s.listKeys(ctx, tk, "", -1, func(key string, _ int64) (bool, error) {
		b, err := s.get(ctx, key)
		if err != nil {
			if isNotFound(err) {
				return true, nil
			}
			return false, fmt.Errorf("s3: delete manifest: %w", err)
		}
		if digest.Digest(bytes.TrimSpace(b)) == d {
			if err := s.del(ctx, key); err != nil {
				return false, err
			}
		}
		return true, nil
	})
	if err != nil {
		return err
	}

	if _, subj := backend.ParseRevision(rev); subj != "" {
		if sg, err := parseDigest(subj); err == nil {
			if err := s.del(ctx, referrersKey(rk, sg)+backend.ReferrerName(g)); err != nil {
				return err
			}
		}
	}
	return s.del(ctx, revKey)
}

// ResolveTag returns the digest the tag points at. A tag whose manifest is
// not linked (which the write order prevents) is reported unknown.
func (s *Store) ResolveTag(ctx context.Context, repo, tag string) (digest.Digest, error) {
	rk, err := s.repoKey(repo, storage.ErrTagUnknown)
	if err != nil {
		return "", err
	}
	if err := s3CheckTag(tag, storage.ErrTagUnknown); err != nil {
		return "", err
	}
	b, err := s.get(ctx, tagsKey(rk)+tag)
	if err != nil {
		if isNotFound(err) {
			return "", fmt.Errorf("s3: tag %s in %s: %w", tag, repo, storage.ErrTagUnknown)
		}
		return "", fmt.Errorf("s3: resolve tag: %w", err)
	}
	d := digest.Digest(bytes.TrimSpace(b))
	g, err := parseDigest(d)
	if err != nil {
		return "", fmt.Errorf("s3: tag %s in %s: damaged: %w", tag, repo, storage.ErrTagUnknown)
	}
	ok, err := s.exists(ctx, revisionKey(rk, g))
	if err != nil {
		return "", err
	}
	if !ok {
		return "", fmt.Errorf("s3: tag %s in %s: manifest %s missing: %w", tag, repo, d, storage.ErrTagUnknown)
	}
	return d, nil
}

// DeleteTag removes a tag; the manifest stays.
func (s *Store) DeleteTag(ctx context.Context, repo, tag string) error {
	rk, err := s.repoKey(repo, storage.ErrTagUnknown)
	if err != nil {
		return err
	}
	if err := s3CheckTag(tag, storage.ErrTagUnknown); err != nil {
		return err
	}
	key := tagsKey(rk) + tag
	ok, err := s.exists(ctx, key)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("s3: tag %s in %s: %w", tag, repo, storage.ErrTagUnknown)
	}
	return s.del(ctx, key)
}

// ListReferrers returns the descriptors of the manifests in repo whose
// subject is d, ordered by referrer digest.
func (s *Store) ListReferrers(ctx context.Context, repo string, d digest.Digest) ([]storage.Descriptor, error) {
	out := []storage.Descriptor{}
	err := s.WalkReferrers(ctx, repo, d, "", func(ref digest.Digest, b []byte) (bool, error) {
		var desc storage.Descriptor
		if err := json.Unmarshal(b, &desc); err != nil {
			return false, fmt.Errorf("s3: referrer %s of %s in %s: %w", ref, d, repo, err)
		}
		out = append(out, desc)
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// WalkReferrers calls fn with the referrers of d in repo after `after`, in key
// order, listing keys page by page and reading one entry object at a time.
func (s *Store) WalkReferrers(ctx context.Context, repo string, d, after digest.Digest, fn func(digest.Digest, []byte) (bool, error)) error {
	rk, err := s.repoKey(repo, storage.ErrManifestUnknown)
	if err != nil {
		return err
	}
	subject, err := lookupDigest(d, storage.ErrManifestUnknown)
	if err != nil {
		return err
	}
	start := ""
	if after != "" {
		g, err := parseDigest(after)
		if err != nil {
			return err
		}
		start = backend.ReferrerName(g)
	}
	prefix := referrersKey(rk, subject)
	var buf []byte // reused for every entry
	return s.listKeys(ctx, prefix, start, -1, func(key string, size int64) (bool, error) {
		name := strings.TrimPrefix(key, prefix)
		alg, enc, ok := strings.Cut(name, "-")
		if !ok {
			return true, nil
		}
		g, err := parseDigest(digest.Digest(alg + ":" + enc))
		if err != nil {
			return true, nil
		}
		if ok, err := s.exists(ctx, revisionKey(rk, g)); err != nil {
			return false, err
		} else if !ok {
			return true, nil
		}
		b, err := s.getInto(ctx, key, size, buf)
		if err != nil {
			if isNotFound(err) {
				return true, nil // deleted meanwhile
			}
			return false, fmt.Errorf("s3: list referrers: %w", err)
		}
		buf = b
		return fn(g.D, b)
	})
}

// getInto is get into buf, grown only when the object (of listed size
// size) is larger, so that reading many objects one after the other does not
// allocate each anew.
func (s *Store) getInto(ctx context.Context, key string, size int64, buf []byte) ([]byte, error) {
	out, err := s.c.GetObject(ctx, &awss3.GetObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return nil, err
	}
	defer out.Body.Close()
	if n := aws.ToInt64(out.ContentLength); n > 0 {
		size = n
	}
	buf = slices.Grow(buf[:0], int(max(size, 0))+1)
	for {
		n, err := out.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
		if len(buf) == cap(buf) { // longer than listed: rewritten meanwhile
			buf = slices.Grow(buf, 4096)
		}
	}
}

// listKeys calls fn with the keys under prefix that sort after prefix+after,
// in order, fetching pages of at most pageHint keys (pageHint <= 0: 1000),
// until fn returns false or the listing ends.
func (s *Store) listKeys(ctx context.Context, prefix, after string, pageHint int, fn func(key string, size int64) (bool, error)) error {
	return s.listEntries(ctx, prefix, after, pageHint, func(key string, o types.Object) (bool, error) {
		return fn(key, aws.ToInt64(o.Size))
	})
}

// listEntries is listKeys with the whole listing entry of each object.
func (s *Store) listEntries(ctx context.Context, prefix, after string, pageHint int, fn func(key string, o types.Object) (bool, error)) error {
	in := &awss3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: aws.String(prefix)}
	if after != "" {
		in.StartAfter = aws.String(prefix + after)
	}
	if pageHint > 0 && pageHint < 1000 {
		in.MaxKeys = aws.Int32(int32(pageHint))
	}
	for {
		out, err := s.c.ListObjectsV2(ctx, in)
		if err != nil {
			return fmt.Errorf("s3: list %s: %w", prefix, err)
		}
		for _, o := range out.Contents {
			key := aws.ToString(o.Key)
			if !strings.HasPrefix(key, prefix) {
				continue
			}
			more, err := fn(key, o)
			if err != nil || !more {
				return err
			}
		}
		if !aws.ToBool(out.IsTruncated) || out.NextContinuationToken == nil {
			return nil
		}
		in.ContinuationToken = out.NextContinuationToken
		in.StartAfter = nil
	}
}

// ListTags returns up to n tags after `after` in lexical order (n < 0: all):
// one ListObjectsV2 page of n keys starting after the tag.
func (s *Store) ListTags(ctx context.Context, repo, after string, n int) ([]string, error) {
	rk, err := s.repoKey(repo, storage.ErrRepositoryUnknown)
	if err != nil {
		return nil, err
	}
	tags := []string{}
	if n != 0 {
		prefix := tagsKey(rk)
		err = s.listKeys(ctx, prefix, after, n, func(key string, _ int64) (bool, error) {
			tag := strings.TrimPrefix(key, prefix)
			if tag > after && oci.ValidTag(tag) {
				tags = append(tags, tag)
			}
			return n < 0 || len(tags) < n, nil
		})
		if err != nil {
			return nil, err
		}
	}
	if len(tags) == 0 {
		ok, err := s.exists(ctx, s.reposKey()+encodeRepo(repo))
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("s3: repository %s: %w", repo, storage.ErrRepositoryUnknown)
		}
	}
	return tags, nil
}

// ListRepositories returns up to n repository names after `after` in lexical
// order (n < 0: all), from the repository markers: one ListObjectsV2 page.
func (s *Store) ListRepositories(ctx context.Context, after string, n int) ([]string, error) {
	repos := []string{}
	if n == 0 {
		return repos, nil
	}
	prefix := s.reposKey()
	err := s.listKeys(ctx, prefix, encodeRepo(after), n, func(key string, _ int64) (bool, error) {
		name, ok := decodeRepo(strings.TrimPrefix(key, prefix))
		if ok && name > after {
			repos = append(repos, name)
		}
		return n < 0 || len(repos) < n, nil
	})
	if err != nil {
		return nil, err
	}
	return repos, nil
}
