package tracing

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/opencontainers/go-digest"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/berth-registry/berth/internal/storage"
)

// Store returns s with a span around each of its operations
// ("storage.GetManifest"); the store's optional storage.WholeUploader is
// kept. Off (nil t): s itself.
func (t *Tracer) Store(s storage.Store) storage.Store {
	if t == nil || s == nil {
		return s
	}
	ts := &store{Store: s, t: t}
	if wu, ok := s.(storage.WholeUploader); ok {
		return &wholeStore{store: ts, wu: wu}
	}
	return ts
}

// store embeds the Store for what it does not trace (browsing, for the UI).
type store struct {
	storage.Store
	t *Tracer
}

func (s *store) span(ctx context.Context, op, repo string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if repo != "" {
		attrs = append(attrs, attribute.String("berth.repository", repo))
	}
	return s.t.start(ctx, "storage."+op, trace.WithAttributes(attrs...))
}

func dg(d digest.Digest) attribute.KeyValue { return attribute.String("berth.digest", string(d)) }

// done ends a storage span: "unknown" errors are answers (404s), not failures.
func done(span trace.Span, err error) {
	for _, e := range []error{storage.ErrBlobUnknown, storage.ErrManifestUnknown, storage.ErrTagUnknown,
		storage.ErrRepositoryUnknown, storage.ErrUploadUnknown} {
		if errors.Is(err, e) {
			span.SetAttributes(attribute.Bool("berth.storage.not_found", true))
			span.End()
			return
		}
	}
	end(span, err)
}

func (s *store) Ping(ctx context.Context) error {
	ctx, span := s.span(ctx, "Ping", "")
	err := s.Store.Ping(ctx)
	done(span, err)
	return err
}

func (s *store) StatBlob(ctx context.Context, repo string, d digest.Digest) (storage.BlobInfo, error) {
	ctx, span := s.span(ctx, "StatBlob", repo, dg(d))
	bi, err := s.Store.StatBlob(ctx, repo, d)
	done(span, err)
	return bi, err
}

func (s *store) OpenBlob(ctx context.Context, repo string, d digest.Digest, offset, length int64) (io.ReadCloser, error) {
	ctx, span := s.span(ctx, "OpenBlob", repo, dg(d), attribute.Int64("berth.offset", offset), attribute.Int64("berth.length", length))
	rc, err := s.Store.OpenBlob(ctx, repo, d, offset, length)
	done(span, err)
	return rc, err
}

func (s *store) MountBlob(ctx context.Context, repo, from string, d digest.Digest) (storage.BlobInfo, error) {
	ctx, span := s.span(ctx, "MountBlob", repo, dg(d), attribute.String("berth.mount_from", from))
	bi, err := s.Store.MountBlob(ctx, repo, from, d)
	done(span, err)
	return bi, err
}

func (s *store) DeleteBlob(ctx context.Context, repo string, d digest.Digest) error {
	ctx, span := s.span(ctx, "DeleteBlob", repo, dg(d))
	err := s.Store.DeleteBlob(ctx, repo, d)
	done(span, err)
	return err
}

func (s *store) BeginUpload(ctx context.Context, repo string) (storage.UploadInfo, error) {
	ctx, span := s.span(ctx, "BeginUpload", repo)
	u, err := s.Store.BeginUpload(ctx, repo)
	done(span, err)
	return u, err
}

func (s *store) StatUpload(ctx context.Context, repo, id string) (storage.UploadInfo, error) {
	ctx, span := s.span(ctx, "StatUpload", repo)
	u, err := s.Store.StatUpload(ctx, repo, id)
	done(span, err)
	return u, err
}

func (s *store) AppendUpload(ctx context.Context, repo, id string, offset int64, r io.Reader) (int64, error) {
	ctx, span := s.span(ctx, "AppendUpload", repo, attribute.Int64("berth.offset", offset))
	n, err := s.Store.AppendUpload(ctx, repo, id, offset, r)
	span.SetAttributes(attribute.Int64("berth.bytes", n))
	done(span, err)
	return n, err
}

func (s *store) CommitUpload(ctx context.Context, repo, id string, d digest.Digest) (storage.BlobInfo, error) {
	ctx, span := s.span(ctx, "CommitUpload", repo, dg(d))
	bi, err := s.Store.CommitUpload(ctx, repo, id, d)
	done(span, err)
	return bi, err
}

func (s *store) AbortUpload(ctx context.Context, repo, id string) error {
	ctx, span := s.span(ctx, "AbortUpload", repo)
	err := s.Store.AbortUpload(ctx, repo, id)
	done(span, err)
	return err
}

func (s *store) PurgeUploads(ctx context.Context, olderThan time.Time) (int, error) {
	ctx, span := s.span(ctx, "PurgeUploads", "")
	n, err := s.Store.PurgeUploads(ctx, olderThan)
	done(span, err)
	return n, err
}

func (s *store) GetManifest(ctx context.Context, repo string, d digest.Digest) (storage.Manifest, error) {
	ctx, span := s.span(ctx, "GetManifest", repo, dg(d))
	m, err := s.Store.GetManifest(ctx, repo, d)
	done(span, err)
	return m, err
}

func (s *store) StatManifest(ctx context.Context, repo string, d digest.Digest) (storage.Manifest, error) {
	ctx, span := s.span(ctx, "StatManifest", repo, dg(d))
	m, err := s.Store.StatManifest(ctx, repo, d)
	done(span, err)
	return m, err
}

func (s *store) PutManifest(ctx context.Context, repo string, req storage.PutManifestRequest) error {
	ctx, span := s.span(ctx, "PutManifest", repo, dg(req.Manifest.Digest), attribute.StringSlice("berth.tags", req.Tags))
	err := s.Store.PutManifest(ctx, repo, req)
	done(span, err)
	return err
}

func (s *store) DeleteManifest(ctx context.Context, repo string, d digest.Digest) error {
	ctx, span := s.span(ctx, "DeleteManifest", repo, dg(d))
	err := s.Store.DeleteManifest(ctx, repo, d)
	done(span, err)
	return err
}

func (s *store) ResolveTag(ctx context.Context, repo, tag string) (digest.Digest, error) {
	ctx, span := s.span(ctx, "ResolveTag", repo, attribute.String("berth.tag", tag))
	d, err := s.Store.ResolveTag(ctx, repo, tag)
	done(span, err)
	return d, err
}

func (s *store) DeleteTag(ctx context.Context, repo, tag string) error {
	ctx, span := s.span(ctx, "DeleteTag", repo, attribute.String("berth.tag", tag))
	err := s.Store.DeleteTag(ctx, repo, tag)
	done(span, err)
	return err
}

func (s *store) ListTags(ctx context.Context, repo, after string, n int) ([]string, error) {
	ctx, span := s.span(ctx, "ListTags", repo)
	l, err := s.Store.ListTags(ctx, repo, after, n)
	done(span, err)
	return l, err
}

func (s *store) ListRepositories(ctx context.Context, after string, n int) ([]string, error) {
	ctx, span := s.span(ctx, "ListRepositories", "")
	l, err := s.Store.ListRepositories(ctx, after, n)
	done(span, err)
	return l, err
}

func (s *store) ListReferrers(ctx context.Context, repo string, d digest.Digest) ([]storage.Descriptor, error) {
	ctx, span := s.span(ctx, "ListReferrers", repo, dg(d))
	l, err := s.Store.ListReferrers(ctx, repo, d)
	done(span, err)
	return l, err
}

func (s *store) WalkReferrers(ctx context.Context, repo string, d, after digest.Digest, fn func(ref digest.Digest, desc []byte) (bool, error)) error {
	ctx, span := s.span(ctx, "WalkReferrers", repo, dg(d))
	err := s.Store.WalkReferrers(ctx, repo, d, after, fn)
	done(span, err)
	return err
}

// wholeStore is a store whose backend takes a whole blob in one call.
type wholeStore struct {
	*store
	wu storage.WholeUploader
}

func (s *wholeStore) UploadWhole(ctx context.Context, repo, id string, d digest.Digest, r io.Reader) (storage.BlobInfo, error) {
	ctx, span := s.span(ctx, "UploadWhole", repo, dg(d))
	bi, err := s.wu.UploadWhole(ctx, repo, id, d, r)
	span.SetAttributes(attribute.Int64("berth.bytes", bi.Size))
	done(span, err)
	return bi, err
}

var (
	_ storage.Store         = (*store)(nil)
	_ storage.WholeUploader = (*wholeStore)(nil)
)
