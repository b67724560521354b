package s3

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/berth-registry/berth/internal/oci"
	"github.com/berth-registry/berth/internal/storage/backend"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/storage"
)

// ---------------------------------------------------------------------------
// blobs

// linkedBlob reports how g is linked into the repository at rk: as a blob,
// as a manifest (with its revision content), or not at all.
func (s *Store) linkedBlob(ctx context.Context, rk string, g oci.Digest) (asBlob bool, revision []byte, err error) {
	asBlob, err = s.exists(ctx, linkKey(rk, g))
	if err != nil {
		return false, nil, err
	}
	revision, err = s.get(ctx, revisionKey(rk, g))
	if err != nil {
		if !isNotFound(err) {
			return false, nil, fmt.Errorf("s3: %w", err)
		}
		revision = nil
	}
	return asBlob, revision, nil
}

// statLinked returns the size of a blob linked into rk (as a blob or as a
// manifest), or ErrBlobUnknown.
func (s *Store) statLinked(ctx context.Context, rk, repo string, g oci.Digest) (int64, error) {
	linked, err := s.exists(ctx, linkKey(rk, g))
	if err == nil && !linked {
		linked, err = s.exists(ctx, revisionKey(rk, g))
	}
	if err != nil {
		return 0, err
	}
	if !linked {
		return 0, fmt.Errorf("s3: blob %s in %s: %w", g.D, repo, storage.ErrBlobUnknown)
	}
	size, ok, err := s.head(ctx, s.blobKey(g))
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, fmt.Errorf("s3: blob %s in %s: data missing: %w", g.D, repo, storage.ErrBlobUnknown)
	}
	return size, nil
}

// StatBlob returns the blob if it is linked into repo (as a blob or as a manifest).
func (s *Store) StatBlob(ctx context.Context, repo string, d digest.Digest) (storage.BlobInfo, error) {
	rk, err := s.repoKey(repo, storage.ErrBlobUnknown)
	if err != nil {
		return storage.BlobInfo{}, err
	}
	g, err := lookupDigest(d, storage.ErrBlobUnknown)
	if err != nil {
		return storage.BlobInfo{}, err
	}
	size, err := s.statLinked(ctx, rk, repo, g)
	if err != nil {
		return storage.BlobInfo{}, err
	}
	return storage.BlobInfo{Digest: d, Size: size}, nil
}

// OpenBlob streams length bytes of the blob from offset (length < 0: to the
// end) with a ranged GetObject. A range that runs past the end is cut at the
// end; an offset outside [0, size] is an error.
func (s *Store) OpenBlob(ctx context.Context, repo string, d digest.Digest, offset, length int64) (io.ReadCloser, error) {
	rk, err := s.repoKey(repo, storage.ErrBlobUnknown)
	if err != nil {
		return nil, err
	}
	g, err := lookupDigest(d, storage.ErrBlobUnknown)
	if err != nil {
		return nil, err
	}
	size, err := s.statLinked(ctx, rk, repo, g)
	if err != nil {
		return nil, err
	}
	if offset < 0 || offset > size {
		return nil, fmt.Errorf("s3: blob %s: offset %d outside [0, %d]", d, offset, size)
	}
	if length < 0 || length > size-offset {
		length = size - offset
	}
	if length == 0 {
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	key := s.blobKey(g)
	if s.raParts >= 2 && length > s.raPartSize {
		body, err := s.openReadAhead(ctx, key, offset, length)
		if err != nil {
			if isNotFound(err) {
				return nil, fmt.Errorf("s3: blob %s in %s: %w", d, repo, storage.ErrBlobUnknown)
			}
			return nil, fmt.Errorf("s3: open blob: %w", err)
		}
		return body, nil
	}
	in := &awss3.GetObjectInput{Bucket: &s.bucket, Key: &key}
	if offset > 0 || length < size {
		in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", offset, offset+length-1))
	}
	if body, ok := s.openSpliced(ctx, in, length); ok {
		return body, nil
	}
	out, err := s.c.GetObject(ctx, in)
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("s3: blob %s in %s: %w", d, repo, storage.ErrBlobUnknown)
		}
		return nil, fmt.Errorf("s3: open blob: %w", err)
	}
	return &blobBody{ReadCloser: out.Body, pool: &s.copyPool}, nil
}

// copyBufSize is the buffer a blob is streamed to the client with: io.Copy's
// 32 KiB means one read and one write system call per 32 KiB through the
// registry; 256 KiB cuts that by eight.
const copyBufSize = 256 << 10

// blobBody is a GetObject body that streams itself (io.WriterTo) through a
// pooled copyBufSize buffer.
type blobBody struct {
	io.ReadCloser
	pool *sync.Pool
}

func (b *blobBody) WriteTo(w io.Writer) (int64, error) {
	bp, _ := b.pool.Get().(*[]byte)
	if bp == nil {
		buf := make([]byte, copyBufSize)
		bp = &buf
	}
	defer b.pool.Put(bp)
	// The structs hide WriteTo (which would recurse) and the writer's
	// ReadFrom (net/http's copies through its own 32 KiB buffer).
	return io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{b.ReadCloser}, *bp)
}

// PresignBlob returns a URL that GETs the blob without credentials for ttl.
func (s *Store) PresignBlob(ctx context.Context, repo string, d digest.Digest, ttl time.Duration) (string, error) {
	rk, err := s.repoKey(repo, storage.ErrBlobUnknown)
	if err != nil {
		return "", err
	}
	g, err := lookupDigest(d, storage.ErrBlobUnknown)
	if err != nil {
		return "", err
	}
	if _, err := s.statLinked(ctx, rk, repo, g); err != nil {
		return "", err
	}
	key := s.blobKey(g)
	req, err := s.presign.PresignGetObject(ctx, &awss3.GetObjectInput{Bucket: &s.bucket, Key: &key}, awss3.WithPresignExpires(ttl))
	if err != nil {
		return "", fmt.Errorf("s3: presign: %w", err)
	}
	return req.URL, nil
}

// MountBlob links a blob or manifest linked into from into repo. A manifest
// is mounted as a manifest (same media type), so GetManifest finds it too.
func (s *Store) MountBlob(ctx context.Context, repo, from string, d digest.Digest) (storage.BlobInfo, error) {
	rk, err := s.repoKey(repo, nil)
	if err != nil {
		return storage.BlobInfo{}, err
	}
	g, err := lookupDigest(d, storage.ErrBlobUnknown)
	if err != nil {
		return storage.BlobInfo{}, err
	}
	var asBlob bool
	var rev []byte
	if from == "" {
		asBlob = true
	} else {
		fk, err := s.repoKey(from, storage.ErrBlobUnknown)
		if err != nil {
			return storage.BlobInfo{}, err
		}
		asBlob, rev, err = s.linkedBlob(ctx, fk, g)
		if err != nil {
			return storage.BlobInfo{}, err
		}
	}
	if !asBlob && rev == nil {
		return storage.BlobInfo{}, fmt.Errorf("s3: mount %s from %s: %w", d, from, storage.ErrBlobUnknown)
	}
	// Mark the content used (gc.go) before linking it.
	size, ok, err := s.touchBlob(ctx, g)
	if err != nil {
		return storage.BlobInfo{}, err
	}
	if !ok {
		return storage.BlobInfo{}, fmt.Errorf("s3: mount %s from %s: data missing: %w", d, from, storage.ErrBlobUnknown)
	}
	if err := s.markRepo(ctx, repo); err != nil {
		return storage.BlobInfo{}, err
	}
	if asBlob {
		if err := s.put(ctx, linkKey(rk, g), []byte(d)); err != nil {
			return storage.BlobInfo{}, err
		}
	}
	if rev != nil {
		mediaType, _ := backend.ParseRevision(rev)
		mu := s.repoLock(repo)
		mu.RLock()
		err := s.linkMountedManifest(ctx, rk, g, mediaType)
		mu.RUnlock()
		if err != nil {
			return storage.BlobInfo{}, err
		}
	}
	return storage.BlobInfo{Digest: d, Size: size}, nil
}

// linkMountedManifest links a mounted manifest into rk unless it is already
// there (keeping an existing revision, which may carry a subject).
func (s *Store) linkMountedManifest(ctx context.Context, rk string, g oci.Digest, mediaType string) error {
	key := revisionKey(rk, g)
	rev, err := s.get(ctx, key)
	switch {
	case err == nil:
		return s.put(ctx, key, rev) // rewritten: its time is the last push (gc.go)
	case !isNotFound(err):
		return fmt.Errorf("s3: %w", err)
	}
	return s.put(ctx, key, backend.FormatRevision(mediaType, ""))
}

// DeleteBlob removes the blob link from repo. Manifests are deleted with DeleteManifest.
func (s *Store) DeleteBlob(ctx context.Context, repo string, d digest.Digest) error {
	rk, err := s.repoKey(repo, storage.ErrBlobUnknown)
	if err != nil {
		return err
	}
	g, err := lookupDigest(d, storage.ErrBlobUnknown)
	if err != nil {
		return err
	}
	key := linkKey(rk, g)
	ok, err := s.exists(ctx, key)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("s3: delete blob %s in %s: %w", d, repo, storage.ErrBlobUnknown)
	}
	return s.del(ctx, key)
}
