package s3

// Garbage collection support (storage.Collector), see docs/gc.md.
//
// S3 cannot change an object's time without rewriting it, so the "last used"
// time of a blob is the later of its content object's LastModified and that
// of an empty marker object, _used/<alg>/<hex>, which CommitUpload (when the
// content was already stored), MountBlob and PutManifest (for the manifest
// bytes and every Ref) write before they HEAD the content. Times are compared
// with a margin of one second, because S3 reports Last-Modified in whole
// seconds.
//
// S3 has no rename, so marking a blob used (write the marker, HEAD the
// content) and deleting it (HEAD the marker and the content, DELETE) hold the
// same lock, per blob: an in-process lock stripe and, when Options.Locker is
// set (Redis), a lock shared by every process on the bucket. A request that
// marks the blob either finishes before the deletion looks (which then sees
// the fresh marker and keeps the blob) or starts after the content is gone
// (and fails or uploads it again). Without a Locker a collector in another
// process (berth gc next to a server without Redis) is not excluded: the
// window is then one DeleteObject call; docs/gc.md discusses it. Unlinking an
// untagged manifest and pushing it again are excluded the same way
// (lockManifest).

import (
	"context"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/oci"
	"github.com/berth-registry/berth/internal/storage"
	"github.com/berth-registry/berth/internal/storage/backend"
)

var _ storage.Collector = (*Store)(nil)

// timeMargin covers the whole-second precision of Last-Modified.
const timeMargin = time.Second

// touchConcurrency bounds the marker writes of one manifest push.
const touchConcurrency = 8

func (s *Store) usedKey(g oci.Digest) string { return s.prefix + "_used/" + g.Alg + "/" + g.Hex }

// touchBlob marks g's content used and reports whether the content exists.
// The marker is written before the content is looked at.
func (s *Store) touchBlob(ctx context.Context, g oci.Digest) (size int64, found bool, err error) {
	unlock, err := s.lockBlob(ctx, g)
	if err != nil {
		return 0, false, err
	}
	defer unlock()
	if err := s.put(ctx, s.usedKey(g), nil); err != nil {
		return 0, false, err
	}
	return s.head(ctx, s.blobKey(g))
}

// lockBlob serialises marking g used and deleting it: the in-process stripe,
// then the cross-process Locker when there is one.
func (s *Store) lockBlob(ctx context.Context, g oci.Digest) (unlock func(), err error) {
	h := fnv.New32a()
	h.Write([]byte(g.Hex))
	mu := &s.blobLocks[h.Sum32()%lockStripes]
	mu.Lock()
	if s.locker == nil {
		return mu.Unlock, nil
	}
	release, err := s.locker.Lock(ctx, "blob:"+s.bucket+"/"+s.prefix+g.Alg+":"+g.Hex)
	if err != nil {
		mu.Unlock()
		return nil, fmt.Errorf("s3: blob %s: lock: %w", g.D, err)
	}
	return func() { release(); mu.Unlock() }, nil
}

// touchRefs marks every ref used; a ref whose content is gone wraps
// storage.ErrBlobUnknown.
func (s *Store) touchRefs(ctx context.Context, refs []digest.Digest) error {
	gs := make([]oci.Digest, 0, len(refs))
	for _, d := range refs {
		g, err := lookupDigest(d, storage.ErrBlobUnknown)
		if err != nil {
			return err
		}
		gs = append(gs, g)
	}
	errs := make([]error, len(gs))
	sem := make(chan struct{}, touchConcurrency)
	var wg sync.WaitGroup
	for i, g := range gs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			_, ok, err := s.touchBlob(ctx, g)
			if err == nil && !ok {
				err = fmt.Errorf("s3: manifest reference %s: content gone: %w", g.D, storage.ErrBlobUnknown)
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// listObjects calls fn with every object under prefix.
func (s *Store) listObjects(ctx context.Context, prefix string, fn func(o types.Object) error) error {
	return s.listEntries(ctx, prefix, "", 0, func(_ string, o types.Object) (bool, error) {
		return true, fn(o)
	})
}

// headTime returns the Last-Modified of key; found is false when it does not exist.
func (s *Store) headTime(ctx context.Context, key string) (mod time.Time, size int64, found bool, err error) {
	out, err := s.c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		if isNotFound(err) {
			return time.Time{}, 0, false, nil
		}
		return time.Time{}, 0, false, fmt.Errorf("s3: head %s: %w", key, err)
	}
	return aws.ToTime(out.LastModified), aws.ToInt64(out.ContentLength), true, nil
}

// usedSince reports whether a Last-Modified time may be at or after cutoff.
func usedSince(mod, cutoff time.Time) bool { return !mod.Add(timeMargin).Before(cutoff) }

// WalkBlobs calls fn for every stored blob. LastUsed is the later of the
// content's and the marker's Last-Modified, plus the one-second margin. The
// markers are read first, into memory (one entry per blob ever reused).
func (s *Store) WalkBlobs(ctx context.Context, fn func(storage.StoredBlob) error) error {
	usedPrefix := s.prefix + "_used/"
	used := map[string]time.Time{}
	err := s.listObjects(ctx, usedPrefix, func(o types.Object) error {
		used[strings.TrimPrefix(aws.ToString(o.Key), usedPrefix)] = aws.ToTime(o.LastModified)
		return nil
	})
	if err != nil {
		return err
	}
	blobPrefix := s.prefix + "blobs/"
	return s.listObjects(ctx, blobPrefix, func(o types.Object) error {
		rel := strings.TrimPrefix(aws.ToString(o.Key), blobPrefix)
		alg, hex, ok := strings.Cut(rel, "/")
		if !ok {
			return nil
		}
		g, err := backend.ParseDigest(digest.Digest(alg + ":" + hex))
		if err != nil {
			return nil
		}
		last := aws.ToTime(o.LastModified)
		if u, ok := used[rel]; ok && u.After(last) {
			last = u
		}
		return fn(storage.StoredBlob{Digest: g.D, Size: aws.ToInt64(o.Size), LastUsed: last.Add(timeMargin)})
	})
}

// ScanRepository returns the manifests, tags and blob links of repo.
func (s *Store) ScanRepository(ctx context.Context, repo string) (storage.RepositoryScan, error) {
	scan := storage.RepositoryScan{Tags: map[string]digest.Digest{}}
	rk, err := s.repoKey(repo, storage.ErrRepositoryUnknown)
	if err != nil {
		return scan, err
	}
	revPrefix := rk + "_manifests/revisions/"
	err = s.listObjects(ctx, revPrefix, func(o types.Object) error {
		g, ok := keyDigest(strings.TrimPrefix(aws.ToString(o.Key), revPrefix))
		if !ok {
			return nil
		}
		rev, err := s.get(ctx, aws.ToString(o.Key))
		if err != nil {
			if isNotFound(err) {
				return nil
			}
			return fmt.Errorf("s3: scan %s: %w", repo, err)
		}
		mt, subj := backend.ParseRevision(rev)
		scan.Manifests = append(scan.Manifests, storage.LinkedManifest{Digest: g.D, MediaType: mt, Subject: subj,
			LastPushed: aws.ToTime(o.LastModified).Add(timeMargin)})
		return nil
	})
	if err != nil {
		return scan, err
	}
	linkPrefix := rk + "_blobs/"
	err = s.listObjects(ctx, linkPrefix, func(o types.Object) error {
		if g, ok := keyDigest(strings.TrimPrefix(aws.ToString(o.Key), linkPrefix)); ok {
			scan.Blobs = append(scan.Blobs, storage.BlobLink{Digest: g.D, LastUsed: aws.ToTime(o.LastModified).Add(timeMargin)})
		}
		return nil
	})
	if err != nil {
		return scan, err
	}
	tk := tagsKey(rk)
	err = s.listObjects(ctx, tk, func(o types.Object) error {
		tag := strings.TrimPrefix(aws.ToString(o.Key), tk)
		if !oci.ValidTag(tag) {
			return nil
		}
		b, err := s.get(ctx, aws.ToString(o.Key))
		if err != nil {
			if isNotFound(err) {
				return nil
			}
			return fmt.Errorf("s3: scan %s: %w", repo, err)
		}
		scan.Tags[tag] = digest.Digest(strings.TrimSpace(string(b)))
		return nil
	})
	return scan, err
}

// keyDigest parses "<alg>/<hex>".
func keyDigest(rel string) (oci.Digest, bool) {
	alg, hex, ok := strings.Cut(rel, "/")
	if !ok {
		return oci.Digest{}, false
	}
	g, err := backend.ParseDigest(digest.Digest(alg + ":" + hex))
	return g, err == nil
}

// lockManifest takes the cross-process lock on manifest g of repo when there
// is a Locker: PutManifest and DeleteUntaggedManifest hold it, so a manifest
// pushed (or tagged) again is never unlinked halfway. In one process the
// repository lock already excludes them.
func (s *Store) lockManifest(ctx context.Context, repo string, g oci.Digest) (unlock func(), err error) {
	if s.locker == nil {
		return func() {}, nil
	}
	release, err := s.locker.Lock(ctx, "manifest:"+s.bucket+"/"+s.prefix+repo+"@"+g.Alg+":"+g.Hex)
	if err != nil {
		return nil, fmt.Errorf("s3: manifest %s in %s: lock: %w", g.D, repo, err)
	}
	return release, nil
}

// DeleteBlobContent deletes the content of d (and its marker) unless it was
// used at or after cutoff.
func (s *Store) DeleteBlobContent(ctx context.Context, d digest.Digest, cutoff time.Time) (int64, error) {
	g, err := parseDigest(d)
	if err != nil {
		return 0, err
	}
	blob, marker := s.blobKey(g), s.usedKey(g)
	unlock, err := s.lockBlob(ctx, g)
	if err != nil {
		return 0, err
	}
	defer unlock()
	mmod, _, mfound, err := s.headTime(ctx, marker)
	if err != nil {
		return 0, err
	}
	if mfound && usedSince(mmod, cutoff) {
		return 0, fmt.Errorf("s3: blob %s: %w", d, storage.ErrInUse)
	}
	bmod, size, found, err := s.headTime(ctx, blob)
	if err != nil || !found {
		return 0, err
	}
	if usedSince(bmod, cutoff) {
		return 0, fmt.Errorf("s3: blob %s: %w", d, storage.ErrInUse)
	}
	if err := s.del(ctx, blob); err != nil {
		return 0, err
	}
	if mfound {
		if err := s.del(ctx, marker); err != nil {
			return size, err
		}
	}
	return size, nil
}

// DeleteBlobLink removes repo's link to d unless it was written at or after cutoff.
func (s *Store) DeleteBlobLink(ctx context.Context, repo string, d digest.Digest, cutoff time.Time) error {
	rk, err := s.repoKey(repo, nil)
	if err != nil {
		return err
	}
	g, err := parseDigest(d)
	if err != nil {
		return err
	}
	key := linkKey(rk, g)
	mod, _, found, err := s.headTime(ctx, key)
	if err != nil || !found {
		return err
	}
	if usedSince(mod, cutoff) {
		return fmt.Errorf("s3: link %s in %s: %w", d, repo, storage.ErrInUse)
	}
	return s.del(ctx, key)
}

// DeleteUntaggedManifest unlinks manifest d from repo unless it was pushed at
// or after cutoff or a tag points at it.
func (s *Store) DeleteUntaggedManifest(ctx context.Context, repo string, d digest.Digest, cutoff time.Time) error {
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
	unlock, err := s.lockManifest(ctx, repo, g)
	if err != nil {
		return err
	}
	defer unlock()

	revKey := revisionKey(rk, g)
	mod, _, found, err := s.headTime(ctx, revKey)
	if err != nil {
		return err
	}
	if !found {
		return manifestUnknown(repo, d)
	}
	if usedSince(mod, cutoff) {
		return fmt.Errorf("s3: manifest %s in %s: %w", d, repo, storage.ErrInUse)
	}
	tagged := ""
	err = s.listKeys(ctx, tagsKey(rk), "", -1, func(key string, _ int64) (bool, error) {
		if b, err := s.get(ctx, key); err == nil && digest.Digest(strings.TrimSpace(string(b))) == d {
			tagged = strings.TrimPrefix(key, tagsKey(rk))
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	if tagged != "" {
		return fmt.Errorf("s3: manifest %s in %s is tagged %s: %w", d, repo, tagged, storage.ErrInUse)
	}
	rev, err := s.get(ctx, revKey)
	if err != nil {
		if isNotFound(err) {
			return nil
		}
		return fmt.Errorf("s3: %w", err)
	}
	if err := s.del(ctx, revKey); err != nil {
		return err
	}
	if _, subj := backend.ParseRevision(rev); subj != "" {
		if again, err := s.exists(ctx, revKey); err != nil || again {
			return err
		}
		if sg, err := parseDigest(subj); err == nil {
			return s.del(ctx, referrersKey(rk, sg)+backend.ReferrerName(g))
		}
	}
	return nil
}
