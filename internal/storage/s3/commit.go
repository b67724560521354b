package s3

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/berth-registry/berth/internal/oci"
	"github.com/berth-registry/berth/internal/storage/backend"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/storage"
)

// Faults injects failures into a Store, for tests. Nil fields inject nothing.
type Faults struct {
	// Commit is called by CommitUpload before each of its steps, once the
	// content is verified: "tail" (the staged tail becomes the last part),
	// "complete" (the multipart upload), "copy" (into the blob store),
	// "mark" (the repository marker), "link", and the removal of the
	// session: "remove-state", "remove-mpu", "remove-tail", "remove-data".
	// An error it returns makes CommitUpload return it at once and touch
	// nothing more, leaving the bucket as a process killed there would.
	Commit func(step string) error
}

// commitFault returns the error injected before a step of CommitUpload, if any.
func (s *Store) commitFault(step string) error {
	if s.faults.Commit == nil {
		return nil
	}
	return s.faults.Commit(step)
}

// removeSession deletes the session's state object first, which ends the
// session at once, then aborts its multipart upload and deletes its tail and
// data objects. Until the state is gone everything a retried commit needs is
// still there; what a failure leaves after that, PurgeUploads removes as the
// leftovers of a session without a state.
func (s *Store) removeSession(ctx context.Context, id string, ss *session) error {
	return s.removeSessionFault(ctx, id, ss, func(string) error { return nil })
}

func (s *Store) removeSessionFault(ctx context.Context, id string, ss *session, fault func(string) error) error {
	if err := fault("remove-state"); err != nil {
		return err
	}
	if err := s.del(ctx, s.uploadKey(id)+keyState); err != nil {
		return err
	}
	if err := fault("remove-mpu"); err != nil {
		return err
	}
	if err := s.abortMPU(ctx, id, ss.UploadID); err != nil {
		return err
	}
	for _, k := range []string{keyTail, keyData} {
		if err := fault("remove-" + k); err != nil {
			return err
		}
		if err := s.del(ctx, s.uploadKey(id)+k); err != nil {
			return err
		}
	}
	return nil
}

// CommitUpload verifies the session against d, completes its multipart
// upload into the session's temporary key (or takes the tail object when
// there are no parts), copies it server-side to blobs/<alg>/<hex> and links
// it into repo. On a digest mismatch nothing is stored and the session is
// removed.
//
// Nothing is moved: the session keeps its data until the link is written,
// and the removal ends it by deleting its state first (removeSession). So a
// commit interrupted at any point (a killed process) leaves either a session
// that a retried CommitUpload with the same digest completes without the
// data being sent again, or a completed commit.
func (s *Store) CommitUpload(ctx context.Context, repo, id string, d digest.Digest) (storage.BlobInfo, error) {
	unlock, err := s.lockUpload(ctx, id)
	if err != nil {
		return storage.BlobInfo{}, err
	}
	defer unlock()
	ss, err := s.loadSession(ctx, repo, id)
	if err != nil {
		return storage.BlobInfo{}, err
	}
	g, err := parseDigest(d)
	if err != nil {
		if errors.Is(err, backend.ErrInvalidDigest) {
			return storage.BlobInfo{}, fmt.Errorf("%w: %w", err, storage.ErrDigestMismatch)
		}
		return storage.BlobInfo{}, err
	}
	rk, _ := s.repoKey(repo, nil)
	base := s.uploadKey(id)

	mismatch := func(got digest.Digest) (storage.BlobInfo, error) {
		if err := s.removeSession(ctx, id, ss); err != nil {
			return storage.BlobInfo{}, err
		}
		return storage.BlobInfo{}, fmt.Errorf("s3: upload %s is %s, not %s: %w", id, got, d, storage.ErrDigestMismatch)
	}
	if g.Alg == "sha256" {
		h, err := ss.hash()
		if err != nil {
			return storage.BlobInfo{}, err
		}
		if got := oci.HashDigest("sha256", h); got != d {
			return mismatch(got)
		}
	}

	// The content as one object: src.
	var src string
	switch {
	case ss.Size == 0:
		src = ""
	case len(ss.Parts) == 0:
		src = base + keyTail
	default:
		if ss.Tail > 0 {
			// The staged tail becomes the last part.
			if err := s.commitFault("tail"); err != nil {
				return storage.BlobInfo{}, err
			}
			bp := s.bufPool.Get().(*[]byte)
			buf := (*bp)[:ss.Tail]
			err := s.readTail(ctx, id, buf)
			if err == nil {
				err = s.uploadPart(ctx, id, ss, buf)
			}
			s.bufPool.Put(bp)
			if err != nil {
				return storage.BlobInfo{}, err
			}
			ss.Tail = 0
			if err := s.saveSession(ctx, id, ss); err != nil {
				return storage.BlobInfo{}, err
			}
		}
		parts := make([]types.CompletedPart, len(ss.Parts))
		for i, p := range ss.Parts {
			parts[i] = types.CompletedPart{PartNumber: aws.Int32(p.Number), ETag: aws.String(p.ETag)}
		}
		src = base + keyData
		if err := s.commitFault("complete"); err != nil {
			return storage.BlobInfo{}, err
		}
		_, err := s.c.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{
			Bucket: &s.bucket, Key: &src, UploadId: aws.String(ss.UploadID),
			MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
		}, s.slowOp)
		if err != nil {
			if isNotFound(err) {
				// Completed before (a retried commit): the object is there.
				// A session left by an older version, which deleted the data
				// before the state, may have lost it; its content is still
				// known when the sha256 state matched d and that blob is
				// stored with the session's size (below).
				ok, herr := s.exists(ctx, src)
				switch {
				case herr != nil:
					return storage.BlobInfo{}, fmt.Errorf("s3: commit upload %s: %w", id, herr)
				case !ok && g.Alg == "sha256":
					src = srcGone
				case !ok:
					return storage.BlobInfo{}, fmt.Errorf("s3: commit upload %s: %w", id, err)
				}
			} else {
				return storage.BlobInfo{}, fmt.Errorf("s3: commit upload %s: %w", id, err)
			}
		}
	}

	if g.Alg != "sha256" {
		h := oci.NewHash(g.Alg)
		if src != "" {
			out, err := s.c.GetObject(ctx, &awss3.GetObjectInput{Bucket: &s.bucket, Key: &src})
			if err != nil {
				return storage.BlobInfo{}, fmt.Errorf("s3: commit upload %s: re-hash: %w", id, err)
			}
			_, err = io.Copy(h, out.Body)
			out.Body.Close()
			if err != nil {
				return storage.BlobInfo{}, fmt.Errorf("s3: commit upload %s: re-hash: %w", id, err)
			}
		}
		if got := oci.HashDigest(g.Alg, h); got != d {
			return mismatch(got)
		}
	}

	blob := s.blobKey(g)
	size, have, err := s.head(ctx, blob)
	if err == nil && have {
		// Already stored: mark it used, so garbage collection keeps it
		// (gc.go), and look again.
		size, have, err = s.touchBlob(ctx, g)
	}
	if err != nil {
		return storage.BlobInfo{}, err
	}
	if !have {
		if err := s.commitFault("copy"); err != nil {
			return storage.BlobInfo{}, err
		}
		switch src {
		case srcGone:
			return storage.BlobInfo{}, fmt.Errorf("s3: commit upload %s: data gone and %s not stored: %w", id, d, storage.ErrUploadUnknown)
		case "":
			err = s.put(ctx, blob, nil)
		default:
			err = s.copyObject(ctx, src, blob, ss.Size)
		}
		if err != nil {
			return storage.BlobInfo{}, err
		}
		size = ss.Size
	}
	if size != ss.Size {
		return storage.BlobInfo{}, fmt.Errorf("s3: commit upload %s: stored blob %s is %d bytes, upload is %d", id, d, size, ss.Size)
	}
	if err := s.commitFault("mark"); err != nil {
		return storage.BlobInfo{}, err
	}
	if err := s.markRepo(ctx, repo); err != nil {
		return storage.BlobInfo{}, err
	}
	if err := s.commitFault("link"); err != nil {
		return storage.BlobInfo{}, err
	}
	// Always written: its time is the link's last use (gc.go).
	if err := s.put(ctx, linkKey(rk, g), []byte(d)); err != nil {
		return storage.BlobInfo{}, err
	}
	if err := s.removeSessionFault(ctx, id, ss, s.commitFault); err != nil {
		return storage.BlobInfo{}, err
	}
	return storage.BlobInfo{Digest: d, Size: ss.Size}, nil
}

// srcGone stands for the content of a session whose data object is gone
// (see CommitUpload).
const srcGone = "\x00gone"
