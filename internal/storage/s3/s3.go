// Package s3 implements storage.Store natively on S3-compatible object storage
// (AWS S3, MinIO, Ceph, versitygw, R2 ...) with aws-sdk-go-v2.
//
// # Layout
//
// Every key lives under Options.KeyPrefix:
//
//	blobs/<alg>/<hex>                                        blob bytes: layers, configs and manifests
//	repositories/<name>/_blobs/<alg>/<hex>                   link: the blob is in the repository (holds the digest)
//	repositories/<name>/_manifests/revisions/<alg>/<hex>     link: media type, and the subject digest on a second line
//	repositories/<name>/_manifests/tags/<tag>                tag: holds the manifest digest
//	repositories/<name>/_referrers/<salg>/<shex>/<alg>-<hex> referrer of subject <salg>:<shex>: descriptor JSON
//	_repos/<encoded name>                                    marker: the repository has been pushed to
//	_uploads/<id>/state                                      upload session state (JSON)
//	_uploads/<id>/tail                                       staged remainder (< 5 MiB) not yet in a part
//	_uploads/<id>/data                                       key of the session's multipart upload
//
// Repository markers make the catalog a single ListObjectsV2 page per
// request. Their names are encoded so that the markers of "a" and "a/b" never
// collide on a filesystem-backed gateway and their keys sort exactly like the
// names (see encodeRepo).
//
// # Integrity
//
// S3 makes a single object visible atomically, so ordering is all that is
// needed: blob bytes, then the revision link, then the referrer entry, then
// tags; DeleteManifest works in the reverse order. An upload becomes a blob
// only after its digest is verified: the multipart upload is completed into
// the session's temporary key, copied server-side to blobs/<alg>/<hex>, and
// only then linked into the repository.
//
// # Uploads
//
// A session is an S3 multipart upload plus a state object holding the parts
// (number, ETag, size), the size so far, the start time and the running
// sha256 state. Full parts of MultipartPartSize go to UploadPart; a remainder
// under the 5 MiB part minimum is staged as the tail object and prepended to
// the next append (or becomes the last part at commit). An append holds two
// parts in memory: it reads one from the client while the other is uploaded,
// and writes the state once, after its parts. Because everything is in the
// bucket, a session continues on any replica.
//
// A whole blob whose digest is known before its first byte (UploadWhole:
// POST ?digest= or PUT ?digest= with the body) skips all that: it streams
// into a multipart upload on blobs/<alg>/<hex> itself, completed only when
// the bytes hash to the digest, so no copy is needed; it holds two parts,
// reading one from the client while the other is uploaded.
//
// # Replicas
//
// Appends, commits and aborts of one session are serialised: within one
// process by a lock stripe, across processes by Options.Locker when it is set
// (a Redis lease, internal/shared). Without a Locker two replicas appending to
// one session at once (clients do not do that) are still caught: the state
// object is written with If-Match on the ETag it was read with, so the second
// writer gets ErrUploadOffset instead of overwriting the first one's state,
// and a part it overwrote no longer matches the ETag in the state, so the
// commit fails instead of storing mixed bytes. Stores that do not implement
// conditional writes (501) are detected and written unconditionally.
package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/berth-registry/berth/internal/oci"
	"github.com/berth-registry/berth/internal/storage/backend"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/storage"
)

// ErrInvalidName is wrapped by the errors returned for a repository name, tag
// or upload id that does not match its grammar. Lookups wrap the matching
// storage "unknown" sentinel as well.
var ErrInvalidName = backend.ErrInvalidName

const (
	// MinPartSize is the S3 minimum size of every multipart part but the last.
	MinPartSize = 5 << 20
	// DefaultPartSize is the default MultipartPartSize.
	DefaultPartSize = 8 << 20

	lockStripes = 64
)

// maxCopySize is the largest object CopyObject copies; larger ones are copied
// with UploadPartCopy in parts of copyPartSize (variables for the tests).
var (
	maxCopySize  int64 = 5 << 30
	copyPartSize int64 = 1 << 30
)

// Options configures a Store.
type Options struct {
	Endpoint  string // e.g. http://127.0.0.1:7070; empty: AWS
	Bucket    string
	Region    string // default us-east-1
	KeyPrefix string // optional; a trailing "/" is added
	// AccessKeyID and SecretKey: static credentials. When empty the default
	// AWS chain is used (environment, shared config, web identity, IMDS).
	AccessKeyID string
	SecretKey   string
	PathStyle   bool
	// MultipartPartSize is the size of the parts uploads are split into
	// (default 8 MiB, at least 5 MiB). It bounds the memory of one append.
	MultipartPartSize int64
	// HTTPClient replaces the store's own client, and with it the connect
	// and response head timeouts below.
	HTTPClient *http.Client
	// ConnectTimeout bounds a connect to the endpoint (default
	// DefaultConnectTimeout); ResponseHeaderTimeout the wait for a response
	// head once a request is written (default DefaultResponseHeaderTimeout;
	// copies and multipart completions are exempt). MaxAttempts is the number
	// of attempts of one operation (default DefaultMaxAttempts). See
	// unavailable.go.
	ConnectTimeout        time.Duration
	ResponseHeaderTimeout time.Duration
	MaxAttempts           int
	Now                   func() time.Time
	// Locker, when set, serialises work on one upload session across
	// processes (replicas). nil: in-process locks only.
	Locker Locker
	// ReadAheadParts, when 2 or more, makes a blob GET longer than one part
	// fetch up to that many parts of ReadAheadPartSize (default
	// MultipartPartSize) at once with ranged GETs, sent in order
	// (readahead.go). 0 or 1: one GetObject stream per blob GET.
	ReadAheadParts    int
	ReadAheadPartSize int64
	// Faults injects failures, for tests only (upload.go).
	Faults Faults
}

// Locker takes a named lock shared by every process on the bucket, waiting
// until it is free or ctx is done. internal/shared implements it with Redis.
type Locker interface {
	Lock(ctx context.Context, name string) (unlock func(), err error)
}

// Store is the S3 backend. It is safe for concurrent use.
type Store struct {
	c        *awss3.Client
	presign  *awss3.PresignClient
	bucket   string
	prefix   string
	partSize int64
	now      func() time.Time
	bufPool  sync.Pool

	uploadLocks [lockStripes]sync.Mutex
	blobLocks   [lockStripes]sync.Mutex // gc.go: marking a blob used vs. deleting it
	locker      Locker
	faults      Faults
	// noConditional is set once the server answered 501 to a conditional
	// write: state objects are then written unconditionally.
	noConditional atomic.Bool
	repoLocks     [lockStripes]sync.RWMutex
	marked        sync.Map  // repository name -> struct{}: marker known to exist
	copyPool      sync.Pool // *[]byte of copyBufSize, for blobBody
	// raParts and raPartSize: read-ahead of blob GETs (readahead.go), off
	// when raParts < 2.
	raParts    int
	raPartSize int64
	raPool     *partPool

	// slowClient, when the store built its HTTP client, is that client
	// without the response head timeout (slowOp).
	slowClient     *awshttp.BuildableClient
	connectTimeout time.Duration
}

var _ storage.Store = (*Store)(nil)

// New returns a store on opts.Bucket. It does not contact the server (Ping does).
func New(ctx context.Context, opts Options) (*Store, error) {
	if opts.Bucket == "" {
		return nil, errors.New("s3: empty bucket")
	}
	if opts.Region == "" {
		opts.Region = "us-east-1"
	}
	if opts.MultipartPartSize == 0 {
		opts.MultipartPartSize = DefaultPartSize
	}
	if opts.MultipartPartSize < MinPartSize {
		return nil, fmt.Errorf("s3: multipart part size %d below the S3 minimum of %d", opts.MultipartPartSize, MinPartSize)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = DefaultConnectTimeout
	}
	if opts.ResponseHeaderTimeout <= 0 {
		opts.ResponseHeaderTimeout = DefaultResponseHeaderTimeout
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = DefaultMaxAttempts
	}
	var httpClient awss3.HTTPClient = opts.HTTPClient
	var slowClient *awshttp.BuildableClient
	if opts.HTTPClient == nil {
		httpClient = newHTTPClient(opts.ConnectTimeout, opts.ResponseHeaderTimeout)
		slowClient = newHTTPClient(opts.ConnectTimeout, 0)
	}
	loadOpts := []func(*config.LoadOptions) error{config.WithRegion(opts.Region)}
	if opts.AccessKeyID != "" || opts.SecretKey != "" {
		loadOpts = append(loadOpts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(opts.AccessKeyID, opts.SecretKey, "")))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("s3: aws config: %w", err)
	}
	cfg.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
	cfg.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	c := awss3.NewFromConfig(cfg, func(o *awss3.Options) {
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
		}
		o.UsePathStyle = opts.PathStyle
		o.HTTPClient = httpClient
		o.Retryer = newRetryer(opts.MaxAttempts)
		o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
			return st.Initialize.Add(classifyMiddleware{}, middleware.Before)
		})
	})
	prefix := strings.Trim(opts.KeyPrefix, "/")
	if prefix != "" {
		prefix += "/"
	}
	s := &Store{
		c:        c,
		presign:  awss3.NewPresignClient(c),
		bucket:   opts.Bucket,
		prefix:   prefix,
		partSize: opts.MultipartPartSize,
		now:      opts.Now,
		locker:   opts.Locker,
		faults:   opts.Faults,

		slowClient:     slowClient,
		connectTimeout: opts.ConnectTimeout,
	}
	size := int(opts.MultipartPartSize)
	s.bufPool.New = func() any { b := make([]byte, size); return &b }
	if opts.ReadAheadParts >= 2 {
		s.raParts, s.raPartSize = opts.ReadAheadParts, opts.ReadAheadPartSize
		if s.raPartSize <= 0 {
			s.raPartSize = opts.MultipartPartSize
		}
		s.raPool = newPartPool(s.raPartSize, 2*s.raParts)
	}
	return s, nil
}

// Client returns the underlying S3 client.
func (s *Store) Client() *awss3.Client { return s.c }

// Bucket returns the bucket name.
func (s *Store) Bucket() string { return s.bucket }

// ---------------------------------------------------------------------------
// names, digests and keys

// repoKey returns the key prefix of repo (ending in "/").
func (s *Store) repoKey(repo string, unknown error) (string, error) {
	if !oci.ValidRepo(repo) {
		return "", s3NameErr("repository name", repo, unknown)
	}
	return s.prefix + "repositories/" + repo + "/", nil
}

func (s *Store) blobKey(g oci.Digest) string { return s.prefix + "blobs/" + g.Alg + "/" + g.Hex }

func linkKey(rk string, g oci.Digest) string { return rk + "_blobs/" + g.Alg + "/" + g.Hex }

func revisionKey(rk string, g oci.Digest) string {
	return rk + "_manifests/revisions/" + g.Alg + "/" + g.Hex
}

func tagsKey(rk string) string { return rk + "_manifests/tags/" }

func referrersKey(rk string, subject oci.Digest) string {
	return rk + "_referrers/" + subject.Alg + "/" + subject.Hex + "/"
}

func (s *Store) reposKey() string { return s.prefix + "_repos/" }

func (s *Store) uploadKey(id string) string { return s.prefix + "_uploads/" + id + "/" }

// encodeRepo maps a repository name to a single path segment whose byte order
// is the order of the names: '/' becomes '0' and a digit d becomes "1d"; the
// other characters of the grammar ([a-z._-]) stay. The code is prefix-free
// and order-preserving on single characters ('-' < '.' < '/' < digits < '_' <
// letters), so it preserves lexical order, and no marker key is a "directory"
// of another.
func encodeRepo(name string) string {
	var b strings.Builder
	b.Grow(len(name) + 8)
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '/':
			b.WriteByte('0')
		case c >= '0' && c <= '9':
			b.WriteByte('1')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func decodeRepo(enc string) (string, bool) {
	var b strings.Builder
	b.Grow(len(enc))
	for i := 0; i < len(enc); i++ {
		c := enc[i]
		switch {
		case c == '0':
			b.WriteByte('/')
		case c == '1':
			if i+1 >= len(enc) || enc[i+1] < '0' || enc[i+1] > '9' {
				return "", false
			}
			i++
			b.WriteByte(enc[i])
		case c >= '2' && c <= '9':
			return "", false
		default:
			b.WriteByte(c)
		}
	}
	name := b.String()
	return name, oci.ValidRepo(name)
}

func (s *Store) uploadLock(id string) *sync.Mutex {
	h := fnv.New32a()
	h.Write([]byte(id))
	return &s.uploadLocks[h.Sum32()%lockStripes]
}

// lockUpload serialises work on session id: the in-process stripe, then the
// cross-process Locker when there is one.
func (s *Store) lockUpload(ctx context.Context, id string) (unlock func(), err error) {
	mu := s.uploadLock(id)
	mu.Lock()
	if s.locker == nil {
		return mu.Unlock, nil
	}
	release, err := s.locker.Lock(ctx, "upload:"+s.bucket+"/"+s.prefix+id)
	if err != nil {
		mu.Unlock()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("s3: upload %s: lock: %w", id, err)
		}
		return nil, fmt.Errorf("s3: upload %s: lock: %w: %w", id, err, storage.ErrUnavailable)
	}
	return func() { release(); mu.Unlock() }, nil
}

func (s *Store) repoLock(repo string) *sync.RWMutex {
	h := fnv.New32a()
	h.Write([]byte(repo))
	return &s.repoLocks[h.Sum32()%lockStripes]
}

// ---------------------------------------------------------------------------
// object helpers

// isNotFound reports whether err says the key (or multipart upload) does not exist.
func isNotFound(err error) bool {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	var nsu *types.NoSuchUpload
	if errors.As(err, &nsk) || errors.As(err, &nf) || errors.As(err, &nsu) {
		return true
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchKey", "NotFound", "NoSuchUpload":
			return true
		case "NoSuchBucket":
			return false
		}
	}
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound
}

func isPreconditionFailed(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) && (ae.ErrorCode() == "PreconditionFailed" || ae.ErrorCode() == "ConditionalRequestConflict") {
		return true
	}
	var re *awshttp.ResponseError
	return errors.As(err, &re) && (re.HTTPStatusCode() == http.StatusPreconditionFailed || re.HTTPStatusCode() == http.StatusConflict)
}

func isNotImplemented(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "NotImplemented" {
		return true
	}
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotImplemented
}
func (s *Store) get(ctx context.Context, key string) ([]byte, error) {
	out, err := s.c.GetObject(ctx, &awss3.GetObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return nil, err
	}
	defer out.Body.Close()
	return io.ReadAll(out.Body)
}

// head returns the size of key; found is false when it does not exist.
func (s *Store) head(ctx context.Context, key string) (size int64, found bool, err error) {
	out, err := s.c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		if isNotFound(err) {
			return 0, false, nil
		}
		return 0, false, fmt.Errorf("s3: head %s: %w", key, err)
	}
	return aws.ToInt64(out.ContentLength), true, nil
}

func (s *Store) exists(ctx context.Context, key string) (bool, error) {
	_, ok, err := s.head(ctx, key)
	return ok, err
}

func (s *Store) put(ctx context.Context, key string, data []byte) error {
	_, err := s.c.PutObject(ctx, &awss3.PutObjectInput{
		Bucket:        &s.bucket,
		Key:           &key,
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
	})
	if err != nil {
		return fmt.Errorf("s3: put %s: %w", key, err)
	}
	return nil
}

// putIfChanged is put that skips the write when key already holds data.
func (s *Store) putIfChanged(ctx context.Context, key string, data []byte) error {
	if cur, err := s.get(ctx, key); err == nil && bytes.Equal(cur, data) {
		return nil
	}
	return s.put(ctx, key, data)
}

func (s *Store) del(ctx context.Context, key string) error {
	if _, err := s.c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: &s.bucket, Key: &key}); err != nil && !isNotFound(err) {
		return fmt.Errorf("s3: delete %s: %w", key, err)
	}
	return nil
}

// copySource is the x-amz-copy-source of key.
func (s *Store) copySource(key string) string {
	segs := strings.Split(s.bucket+"/"+key, "/")
	for i, seg := range segs {
		segs[i] = url.PathEscape(seg)
	}
	return strings.Join(segs, "/")
}

// copyObject copies src (of size bytes) to dst server-side, with
// UploadPartCopy when it is too large for CopyObject.
func (s *Store) copyObject(ctx context.Context, src, dst string, size int64) error {
	if size <= maxCopySize {
		_, err := s.c.CopyObject(ctx, &awss3.CopyObjectInput{Bucket: &s.bucket, Key: &dst, CopySource: aws.String(s.copySource(src))}, s.slowOp)
		if err != nil {
			return fmt.Errorf("s3: copy %s to %s: %w", src, dst, err)
		}
		return nil
	}
	mpu, err := s.c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: &s.bucket, Key: &dst})
	if err != nil {
		return fmt.Errorf("s3: copy %s: %w", dst, err)
	}
	partSize := max(copyPartSize, (size+9999)/10000)
	var parts []types.CompletedPart
	for n, off := int32(1), int64(0); off < size; n, off = n+1, off+partSize {
		end := min(off+partSize, size) - 1
		out, err := s.c.UploadPartCopy(ctx, &awss3.UploadPartCopyInput{
			Bucket: &s.bucket, Key: &dst, UploadId: mpu.UploadId, PartNumber: aws.Int32(n),
			CopySource:      aws.String(s.copySource(src)),
			CopySourceRange: aws.String(fmt.Sprintf("bytes=%d-%d", off, end)),
		}, s.slowOp)
		if err != nil {
			s.c.AbortMultipartUpload(context.WithoutCancel(ctx), &awss3.AbortMultipartUploadInput{Bucket: &s.bucket, Key: &dst, UploadId: mpu.UploadId})
			return fmt.Errorf("s3: copy %s part %d: %w", dst, n, err)
		}
		parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(n), ETag: out.CopyPartResult.ETag})
	}
	_, err = s.c.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{
		Bucket: &s.bucket, Key: &dst, UploadId: mpu.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	}, s.slowOp)
	if err != nil {
		s.c.AbortMultipartUpload(context.WithoutCancel(ctx), &awss3.AbortMultipartUploadInput{Bucket: &s.bucket, Key: &dst, UploadId: mpu.UploadId})
		return fmt.Errorf("s3: copy %s: complete: %w", dst, err)
	}
	return nil
}

// markRepo records that repo has been pushed to (once per process).
func (s *Store) markRepo(ctx context.Context, repo string) error {
	if _, ok := s.marked.Load(repo); ok {
		return nil
	}
	if err := s.put(ctx, s.reposKey()+encodeRepo(repo), nil); err != nil {
		return err
	}
	s.marked.Store(repo, struct{}{})
	return nil
}

// ---------------------------------------------------------------------------
// Ping

// Ping checks that the bucket answers (HeadBucket).
func (s *Store) Ping(ctx context.Context) error {
	if _, err := s.c.HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: &s.bucket}); err != nil {
		return fmt.Errorf("s3: ping bucket %s: %w", s.bucket, err)
	}
	return nil
}

// s3NameErr is backend.NameErr with this package's error prefix.
func s3NameErr(what, name string, unknown error) error {
	return fmt.Errorf("s3: %w", backend.NameErr(what, name, unknown))
}

// s3CheckTag is backend.CheckTag with this package's error prefix.
func s3CheckTag(tag string, unknown error) error {
	if err := backend.CheckTag(tag, unknown); err != nil {
		return fmt.Errorf("s3: %w", err)
	}
	return nil
}

// parseDigest is backend.ParseDigest with this package's error prefix.
func parseDigest(d digest.Digest) (oci.Digest, error) {
	g, err := backend.ParseDigest(d)
	if err != nil {
		err = fmt.Errorf("s3: %w", err)
	}
	return g, err
}

// lookupDigest is backend.LookupDigest with this package's error prefix.
func lookupDigest(d digest.Digest, unknown error) (oci.Digest, error) {
	g, err := backend.LookupDigest(d, unknown)
	if err != nil {
		err = fmt.Errorf("s3: %w", err)
	}
	return g, err
}
