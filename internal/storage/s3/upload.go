package s3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"time"

	"github.com/berth-registry/berth/internal/oci"
	"github.com/berth-registry/berth/internal/storage/backend"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/storage"
)

const (
	keyState = "state"
	keyTail  = "tail"
	keyData  = "data"
)

// part is one uploaded part of a session's multipart upload.
type part struct {
	Number int32  `json:"n"`
	ETag   string `json:"etag"`
	Size   int64  `json:"size"`
}

// session is the state object of an upload session.
type session struct {
	Repo      string    `json:"repo"`
	UploadID  string    `json:"uploadId"` // S3 multipart upload id
	Parts     []part    `json:"parts,omitempty"`
	Size      int64     `json:"size"` // bytes received: the parts plus the tail
	Tail      int64     `json:"tail"` // bytes staged in the tail object
	StartedAt time.Time `json:"startedAt"`
	// SHA256 is the marshalled sha256 state over all Size bytes.
	SHA256 []byte `json:"sha256"`

	// etag is the state object's ETag when it was read or last written: the
	// next write is conditional on it ("": the server sent none, write
	// unconditionally). fresh: not written yet, the write must create it.
	etag  string
	fresh bool
}

func (ss *session) info(id string) storage.UploadInfo {
	return storage.UploadInfo{ID: id, Repo: ss.Repo, Size: ss.Size, StartedAt: ss.StartedAt}
}

func (ss *session) partsSize() int64 {
	var n int64
	for _, p := range ss.Parts {
		n += p.Size
	}
	return n
}

func (ss *session) hash() (hash.Hash, error) {
	h := sha256.New()
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(ss.SHA256); err != nil {
		return nil, fmt.Errorf("s3: upload state: sha256: %w", err)
	}
	return h, nil
}

func uploadUnknown(repo, id string) error {
	return fmt.Errorf("s3: upload %s in %s: %w", id, repo, storage.ErrUploadUnknown)
}

// loadSession reads the state of session id and checks it belongs to repo.
func (s *Store) loadSession(ctx context.Context, repo, id string) (*session, error) {
	if !oci.ValidRepo(repo) {
		return nil, s3NameErr("repository name", repo, storage.ErrUploadUnknown)
	}
	if !backend.ValidUploadID(id) {
		return nil, s3NameErr("upload id", id, storage.ErrUploadUnknown)
	}
	key := s.uploadKey(id) + keyState
	out, err := s.c.GetObject(ctx, &awss3.GetObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		if isNotFound(err) {
			return nil, uploadUnknown(repo, id)
		}
		return nil, fmt.Errorf("s3: upload %s: %w", id, err)
	}
	b, err := io.ReadAll(out.Body)
	out.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("s3: upload %s: %w", id, err)
	}
	var ss session
	if err := json.Unmarshal(b, &ss); err != nil {
		return nil, fmt.Errorf("s3: upload %s: damaged state: %w", id, err)
	}
	if ss.Repo != repo {
		return nil, uploadUnknown(repo, id)
	}
	ss.etag = aws.ToString(out.ETag)
	return &ss, nil
}

// saveSession writes the state object: If-None-Match for a new session,
// If-Match on the ETag it was read with otherwise, so a concurrent writer in
// another process is detected (ErrUploadOffset), never overwritten.
func (s *Store) saveSession(ctx context.Context, id string, ss *session) error {
	b, err := json.Marshal(ss)
	if err != nil {
		return err
	}
	key := s.uploadKey(id) + keyState
	in := &awss3.PutObjectInput{
		Bucket: &s.bucket, Key: &key,
		Body: bytes.NewReader(b), ContentLength: aws.Int64(int64(len(b))),
	}
	conditional := !s.noConditional.Load()
	switch {
	case !conditional:
	case ss.fresh:
		in.IfNoneMatch = aws.String("*")
	case ss.etag != "":
		in.IfMatch = aws.String(ss.etag)
	}
	out, err := s.c.PutObject(ctx, in)
	if err != nil && conditional && isNotImplemented(err) {
		s.noConditional.Store(true)
		in.IfMatch, in.IfNoneMatch = nil, nil
		in.Body = bytes.NewReader(b)
		out, err = s.c.PutObject(ctx, in)
	}
	if err != nil {
		if isPreconditionFailed(err) {
			return fmt.Errorf("s3: upload %s: changed by another request meanwhile: %w", id, storage.ErrUploadOffset)
		}
		return fmt.Errorf("s3: put %s: %w", key, err)
	}
	ss.etag, ss.fresh = aws.ToString(out.ETag), false
	return nil
}

// BeginUpload creates the session's multipart upload and its state object.
func (s *Store) BeginUpload(ctx context.Context, repo string) (storage.UploadInfo, error) {
	if !oci.ValidRepo(repo) {
		return storage.UploadInfo{}, s3NameErr("repository name", repo, nil)
	}
	id := backend.RandomHex(16)
	dataKey := s.uploadKey(id) + keyData
	mpu, err := s.c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: &s.bucket, Key: &dataKey})
	if err != nil {
		return storage.UploadInfo{}, fmt.Errorf("s3: begin upload: %w", err)
	}
	st, _ := sha256.New().(encoding.BinaryMarshaler).MarshalBinary()
	ss := &session{
		Repo:      repo,
		UploadID:  aws.ToString(mpu.UploadId),
		StartedAt: s.now().UTC().Round(0),
		SHA256:    st,
		fresh:     true,
	}
	if err := s.saveSession(ctx, id, ss); err != nil {
		s.abortMPU(ctx, id, ss.UploadID)
		return storage.UploadInfo{}, err
	}
	return ss.info(id), nil
}

// StatUpload returns the session, or ErrUploadUnknown.
func (s *Store) StatUpload(ctx context.Context, repo, id string) (storage.UploadInfo, error) {
	ss, err := s.loadSession(ctx, repo, id)
	if err != nil {
		return storage.UploadInfo{}, err
	}
	return ss.info(id), nil
}

// AppendUpload streams r into the session: the staged tail plus the new bytes
// are cut into parts of MultipartPartSize for UploadPart; a remainder of at
// least 5 MiB becomes a part too, a smaller one is staged as the tail object.
// Reading the next part from the client overlaps with uploading the previous
// one (two buffers, as UploadWhole). The state is saved once, at the end of
// the append; on a read or part error it is saved with the parts uploaded
// so far (each part carries the sha256 state at its end), so the bytes
// received stay and the reported size is the saved one. A process killed
// mid-append leaves the state of the previous append: the parts it uploaded
// after it are not referenced, and the next append overwrites them (same
// part numbers).
func (s *Store) AppendUpload(ctx context.Context, repo, id string, offset int64, r io.Reader) (int64, error) {
	unlock, err := s.lockUpload(ctx, id)
	if err != nil {
		return 0, err
	}
	defer unlock()
	ss, err := s.loadSession(ctx, repo, id)
	if err != nil {
		return 0, err
	}
	if offset != ss.Size {
		return ss.Size, fmt.Errorf("s3: upload %s: chunk at %d, upload is %d bytes: %w", id, offset, ss.Size, storage.ErrUploadOffset)
	}
	h, err := ss.hash()
	if err != nil {
		return ss.Size, err
	}

	free := make(chan *[]byte, 2)
	for range 2 {
		free <- s.bufPool.Get().(*[]byte)
	}
	bp := <-free
	fill := 0
	if ss.Tail > 0 {
		if err := s.readTail(ctx, id, (*bp)[:ss.Tail]); err != nil {
			free <- bp
			for range 2 {
				s.bufPool.Put(<-free)
			}
			return ss.Size, err
		}
		fill = int(ss.Tail)
	}

	// The uploader: full parts, in order, one at a time.
	type job struct {
		bp       *[]byte
		newBytes int    // bytes of r in the part (the rest was the tail)
		state    []byte // sha256 state at the part's end
	}
	uctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan job)
	var upErr error
	var sentBytes int64 // bytes of r in the uploaded parts
	var sentState []byte
	done := make(chan struct{})
	go func() {
		defer close(done)
		for j := range jobs {
			if upErr == nil {
				if err := s.uploadPart(uctx, id, ss, *j.bp); err != nil {
					upErr = err
					cancel() // stop reading the client
				} else {
					sentBytes += int64(j.newBytes)
					sentState = j.state
				}
			}
			free <- j.bp
		}
	}()

	newBytes := 0 // bytes of r in (*bp)[:fill], already hashed
	var readErr error
	for {
		n, err := r.Read((*bp)[fill:])
		if n > 0 {
			h.Write((*bp)[fill : fill+n])
			fill += n
			newBytes += n
		}
		if fill == len(*bp) {
			st, _ := h.(encoding.BinaryMarshaler).MarshalBinary()
			jobs <- job{bp: bp, newBytes: newBytes, state: st}
			bp, fill, newBytes = nil, 0, 0
			select {
			case bp = <-free:
			case <-uctx.Done():
			}
			if bp == nil {
				readErr = uctx.Err()
				break
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				readErr = err
			}
			break
		}
		if cerr := uctx.Err(); cerr != nil {
			readErr = cerr
			break
		}
	}
	close(jobs)
	<-done
	defer func() {
		if bp != nil {
			free <- bp
		}
		for range 2 {
			s.bufPool.Put(<-free)
		}
	}()

	wctx := ctx
	if readErr != nil || upErr != nil {
		// Keep what was received even when the client went away.
		var wcancel context.CancelFunc
		wctx, wcancel = context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer wcancel()
	}
	if sentBytes > 0 {
		ss.Size += sentBytes
		ss.Tail = 0
		ss.SHA256 = sentState
	}
	if upErr != nil {
		// The parts uploaded before the failure stay; the rest is lost.
		if sentBytes > 0 {
			if err := s.saveSession(wctx, id, ss); err != nil {
				return ss.Size - sentBytes, errors.Join(upErr, err)
			}
		}
		return ss.Size, upErr
	}

	// The remainder: a part when it is large enough, else the tail object.
	saved := ss.Size - sentBytes
	if newBytes > 0 {
		if fill >= MinPartSize {
			if err := s.uploadPart(wctx, id, ss, (*bp)[:fill]); err != nil {
				return s.saveAfterFailure(wctx, id, ss, sentBytes, errors.Join(readErr, err))
			}
			ss.Tail = 0
		} else {
			tailKey := s.uploadKey(id) + keyTail
			if err := s.put(wctx, tailKey, (*bp)[:fill]); err != nil {
				return s.saveAfterFailure(wctx, id, ss, sentBytes, errors.Join(readErr, err))
			}
			ss.Tail = int64(fill)
		}
		ss.Size += int64(newBytes)
		ss.SHA256, _ = h.(encoding.BinaryMarshaler).MarshalBinary()
	}
	if ss.Size != saved {
		if err := s.saveSession(wctx, id, ss); err != nil {
			return saved, errors.Join(readErr, err)
		}
	}
	if readErr != nil {
		return ss.Size, fmt.Errorf("s3: upload %s: read: %w", id, readErr)
	}
	return ss.Size, nil
}

// saveAfterFailure saves the state with the sent parts when the remainder
// of an append could not be stored, and returns the size and err.
func (s *Store) saveAfterFailure(ctx context.Context, id string, ss *session, sentBytes int64, err error) (int64, error) {
	if sentBytes == 0 {
		return ss.Size, err
	}
	if serr := s.saveSession(ctx, id, ss); serr != nil {
		return ss.Size - sentBytes, errors.Join(err, serr)
	}
	return ss.Size, err
}

func (s *Store) readTail(ctx context.Context, id string, p []byte) error {
	key := s.uploadKey(id) + keyTail
	out, err := s.c.GetObject(ctx, &awss3.GetObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return fmt.Errorf("s3: upload %s: read tail: %w", id, err)
	}
	defer out.Body.Close()
	if _, err := io.ReadFull(out.Body, p); err != nil {
		return fmt.Errorf("s3: upload %s: read tail: %w", id, err)
	}
	return nil
}

// uploadPart uploads data as the next part of the session's multipart upload.
func (s *Store) uploadPart(ctx context.Context, id string, ss *session, data []byte) error {
	key := s.uploadKey(id) + keyData
	n := int32(len(ss.Parts) + 1)
	out, err := s.c.UploadPart(ctx, &awss3.UploadPartInput{
		Bucket:        &s.bucket,
		Key:           &key,
		UploadId:      aws.String(ss.UploadID),
		PartNumber:    aws.Int32(n),
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
	})
	if err != nil {
		if isNotFound(err) {
			return fmt.Errorf("s3: upload %s part %d: %w: %w", id, n, err, storage.ErrUploadUnknown)
		}
		return fmt.Errorf("s3: upload %s part %d: %w", id, n, err)
	}
	ss.Parts = append(ss.Parts, part{Number: n, ETag: aws.ToString(out.ETag), Size: int64(len(data))})
	return nil
}

func (s *Store) abortMPU(ctx context.Context, id, uploadID string) error {
	key := s.uploadKey(id) + keyData
	_, err := s.c.AbortMultipartUpload(ctx, &awss3.AbortMultipartUploadInput{Bucket: &s.bucket, Key: &key, UploadId: &uploadID})
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("s3: abort upload %s: %w", id, err)
	}
	return nil
}

// AbortUpload aborts the multipart upload and removes the session.
func (s *Store) AbortUpload(ctx context.Context, repo, id string) error {
	unlock, err := s.lockUpload(ctx, id)
	if err != nil {
		return err
	}
	defer unlock()
	ss, err := s.loadSession(ctx, repo, id)
	if err != nil {
		return err
	}
	return s.removeSession(ctx, id, ss)
}

// PurgeUploads removes the sessions started before olderThan (aborting their
// multipart uploads) and returns how many. It also removes what a session
// interrupted halfway leaves without its state object: multipart uploads
// under _uploads/ initiated before olderThan (ListMultipartUploads +
// AbortMultipartUpload) and staged tail or completed data objects last
// written before olderThan.
func (s *Store) PurgeUploads(ctx context.Context, olderThan time.Time) (int, error) {
	prefix := s.prefix + "_uploads/"
	var ids []string
	objects := map[string][]types.Object{} // id -> its objects other than the state
	err := s.listObjects(ctx, prefix, func(o types.Object) error {
		id, rest, ok := strings.Cut(strings.TrimPrefix(aws.ToString(o.Key), prefix), "/")
		switch {
		case !ok || !backend.ValidUploadID(id):
		case rest == keyState:
			ids = append(ids, id)
		default:
			objects[id] = append(objects[id], o)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, id := range ids {
		delete(objects, id)
	}
	for id, objs := range objects {
		for _, o := range objs {
			if !aws.ToTime(o.LastModified).Add(timeMargin).Before(olderThan) {
				continue
			}
			// A session being created writes its state right after; look again.
			if ok, err := s.exists(ctx, s.uploadKey(id)+keyState); err != nil || ok {
				break
			}
			if err := s.del(ctx, aws.ToString(o.Key)); err != nil {
				return 0, err
			}
		}
	}
	n := 0
	for _, id := range ids {
		b, err := s.get(ctx, s.uploadKey(id)+keyState)
		if err != nil {
			if isNotFound(err) {
				continue
			}
			return n, fmt.Errorf("s3: purge: %w", err)
		}
		var ss session
		if err := json.Unmarshal(b, &ss); err != nil {
			continue
		}
		if !ss.StartedAt.Before(olderThan) {
			continue
		}
		unlock, err := s.lockUpload(ctx, id)
		if err != nil {
			return n, err
		}
		err = s.removeSession(ctx, id, &ss)
		unlock()
		if err != nil {
			return n, err
		}
		n++
	}

	// Orphaned multipart uploads (a session removed halfway).
	in := &awss3.ListMultipartUploadsInput{Bucket: &s.bucket, Prefix: aws.String(prefix)}
	for {
		out, err := s.c.ListMultipartUploads(ctx, in)
		if err != nil {
			return n, nil // best effort: not every S3-compatible store lists uploads
		}
		for _, u := range out.Uploads {
			if u.Initiated == nil || !u.Initiated.Before(olderThan) {
				continue
			}
			key := aws.ToString(u.Key)
			id, _, _ := strings.Cut(strings.TrimPrefix(key, prefix), "/")
			if !backend.ValidUploadID(id) {
				continue
			}
			if ok, err := s.exists(ctx, s.uploadKey(id)+keyState); err != nil || ok {
				continue
			}
			s.c.AbortMultipartUpload(ctx, &awss3.AbortMultipartUploadInput{Bucket: &s.bucket, Key: u.Key, UploadId: u.UploadId})
		}
		if !aws.ToBool(out.IsTruncated) {
			return n, nil
		}
		in.KeyMarker, in.UploadIdMarker = out.NextKeyMarker, out.NextUploadIdMarker
	}
}

var _ storage.WholeUploader = (*Store)(nil)

// UploadWhole streams r into a multipart upload on the content address of d
// itself (blobs/<alg>/<hex>), hashing as the bytes pass, and completes it
// only when they hash to d: no staging under the session and no server-side
// copy at the end, unlike AppendUpload + CommitUpload. Until the completion
// nothing is visible at the address; a mismatch or a read error aborts the
// multipart upload. When the blob exists already it is written again with the
// same bytes (S3 replaces objects atomically), which also marks it used for
// garbage collection. Two parts are held in memory: one read from the
// client while the other is uploaded.
func (s *Store) UploadWhole(ctx context.Context, repo, id string, d digest.Digest, r io.Reader) (storage.BlobInfo, error) {
	unlock, err := s.lockUpload(ctx, id)
	if err != nil {
		return storage.BlobInfo{}, err
	}
	defer unlock()
	ss, err := s.loadSession(ctx, repo, id)
	if err != nil {
		return storage.BlobInfo{}, err
	}
	if ss.Size != 0 {
		return storage.BlobInfo{}, fmt.Errorf("s3: upload %s already holds %d bytes: %w", id, ss.Size, storage.ErrUploadOffset)
	}
	g, err := parseDigest(d)
	if err != nil {
		if errors.Is(err, backend.ErrInvalidDigest) {
			return storage.BlobInfo{}, fmt.Errorf("%w: %w", err, storage.ErrDigestMismatch)
		}
		return storage.BlobInfo{}, err
	}
	rk, _ := s.repoKey(repo, nil)
	blob := s.blobKey(g)

	mpu, err := s.c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: &s.bucket, Key: &blob})
	if err != nil {
		return storage.BlobInfo{}, fmt.Errorf("s3: upload %s: %w", id, err)
	}
	abort := func() {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		s.c.AbortMultipartUpload(actx, &awss3.AbortMultipartUploadInput{Bucket: &s.bucket, Key: &blob, UploadId: mpu.UploadId})
	}
	h := oci.NewHash(g.Alg)
	parts, size, err := s.streamParts(ctx, blob, aws.ToString(mpu.UploadId), h, r)
	if err != nil {
		abort()
		return storage.BlobInfo{}, fmt.Errorf("s3: upload %s: %w", id, err)
	}
	if got := oci.HashDigest(g.Alg, h); got != d {
		abort()
		if err := s.removeSession(ctx, id, ss); err != nil {
			return storage.BlobInfo{}, err
		}
		return storage.BlobInfo{}, fmt.Errorf("s3: upload %s is %s, not %s: %w", id, got, d, storage.ErrDigestMismatch)
	}
	// The content appears (or is rewritten, fresh) under the blob's lock, so
	// a garbage collection deciding on its times never deletes what this
	// upload is about to link (gc.go).
	unlockBlob, err := s.lockBlob(ctx, g)
	if err != nil {
		abort()
		return storage.BlobInfo{}, err
	}
	if len(parts) == 0 {
		abort()
		err = s.put(ctx, blob, nil)
	} else {
		_, err = s.c.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{
			Bucket: &s.bucket, Key: &blob, UploadId: mpu.UploadId,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
		}, s.slowOp)
		if err != nil {
			abort()
			err = fmt.Errorf("s3: upload %s: complete: %w", id, err)
		}
	}
	unlockBlob()
	if err != nil {
		return storage.BlobInfo{}, err
	}
	if err := s.markRepo(ctx, repo); err != nil {
		return storage.BlobInfo{}, err
	}
	// Always written: its time is the link's last use (gc.go).
	if err := s.put(ctx, linkKey(rk, g), []byte(d)); err != nil {
		return storage.BlobInfo{}, err
	}
	if err := s.removeSession(ctx, id, ss); err != nil {
		return storage.BlobInfo{}, err
	}
	return storage.BlobInfo{Digest: d, Size: size}, nil
}

// streamParts reads r in parts of the part size, hashing it into h, and
// uploads them as parts 1, 2, ... of the multipart upload uploadID on key.
// Reading the next part from the client overlaps with uploading the previous
// one (two buffers), so the client and the bucket are both kept busy; the
// parts are uploaded in order by one goroutine. It returns the completed
// parts and the number of bytes read. On an error the caller aborts.
func (s *Store) streamParts(ctx context.Context, key, uploadID string, h hash.Hash, r io.Reader) ([]types.CompletedPart, int64, error) {
	uctx, cancel := context.WithCancel(ctx)
	defer cancel()
	free := make(chan *[]byte, 2)
	for range 2 {
		free <- s.bufPool.Get().(*[]byte)
	}
	type job struct {
		bp *[]byte
		n  int
	}
	jobs := make(chan job)
	var parts []types.CompletedPart
	var upErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		for j := range jobs {
			if upErr == nil {
				num := int32(len(parts) + 1)
				out, err := s.c.UploadPart(uctx, &awss3.UploadPartInput{
					Bucket: &s.bucket, Key: &key, UploadId: &uploadID, PartNumber: aws.Int32(num),
					Body: bytes.NewReader((*j.bp)[:j.n]), ContentLength: aws.Int64(int64(j.n)),
				})
				if err != nil {
					upErr = fmt.Errorf("part %d: %w", num, err)
					cancel() // stop reading the client
				} else {
					parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(num), ETag: out.ETag})
				}
			}
			free <- j.bp
		}
	}()

	var size int64
	var readErr error
	for uctx.Err() == nil {
		var bp *[]byte
		select {
		case bp = <-free:
		case <-uctx.Done():
		}
		if bp == nil {
			break
		}
		n, err := io.ReadFull(r, *bp)
		if n > 0 {
			h.Write((*bp)[:n])
			size += int64(n)
			jobs <- job{bp, n}
		} else {
			free <- bp
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			readErr = fmt.Errorf("read: %w", err)
			break
		}
	}
	close(jobs)
	<-done
	for range 2 {
		s.bufPool.Put(<-free)
	}
	switch {
	case readErr != nil:
		return nil, size, readErr
	case upErr != nil:
		return nil, size, upErr
	case ctx.Err() != nil:
		return nil, size, ctx.Err()
	}
	return parts, size, nil
}
