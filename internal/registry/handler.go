// Package registry serves the OCI Distribution v1.1 API (Docker Registry HTTP
// API v2 compatible) under /v2/.
//
// Every request is first resolved to a Route (a typed Action plus repository,
// reference and upload id); then the optional Authorizer decides; then exactly
// one handler for the action runs against a storage.Store. Handlers return
// errors; writeError (errors.go) is the one place errors become OCI error
// responses.
package registry

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/manifestcache"
	"github.com/berth-registry/berth/internal/oci"
	"github.com/berth-registry/berth/internal/storage"
)

// Metrics receives per-request observations. *metrics.Metrics implements it.
type Metrics interface {
	ObserveRequest(action string, status int, dur time.Duration, bytesIn, bytesOut int64)
	UploadStarted()
	UploadFinished()
}

// Authorizer authenticates the request and decides whether the resolved
// route may proceed. It returns the context the handler runs with (carrying
// the identity), or an error (an *Error with UNAUTHORIZED, DENIED or
// UNAVAILABLE, possibly with a challenge header) to refuse.
type Authorizer interface {
	Authorize(ctx context.Context, r *http.Request, rt Route) (context.Context, error)
}

// Options configures the handler.
type Options struct {
	Store  storage.Store
	Logger *slog.Logger
	// Metrics is optional.
	Metrics Metrics
	// Authorizer is optional; nil allows every request (open mode).
	Authorizer Authorizer
	// MaxManifestSize bounds a manifest body (default 4 MiB).
	MaxManifestSize int64
	// MaxBlobSize bounds a blob (0: unlimited).
	MaxBlobSize int64
	// AllowSparse accepts manifests whose layers or child manifests are not in
	// the repository (the config must still exist). Off by default: a pull of
	// such a manifest fails unless the client skips the missing parts.
	AllowSparse bool
	// MountWithoutFrom lets POST ?mount=<digest> without from link content that
	// exists anywhere in the store. Enable it only when every caller may read
	// every repository (open mode): otherwise it lets a caller claim content of
	// repositories it cannot read by guessing digests.
	MountWithoutFrom bool
	// Now is the clock (default time.Now).
	Now func() time.Time
	// CanList, when set, filters the catalog to the repositories the
	// request's identity may pull from.
	CanList func(ctx context.Context, repo string) bool
	// Immutable, when set, reports whether a tag may not be moved to another
	// manifest once it exists.
	Immutable func(repo, tag string) bool
	// BlobRedirect, when set, makes a blob GET answer 307 Temporary Redirect
	// to a URL it returns (a presigned S3 URL), after authorization.
	BlobRedirect BlobRedirector
	// ReferrersPageEntries and ReferrersPageBytes bound one page of the
	// referrers API: at most that many descriptors, and at most that many
	// bytes of them unless a single one is larger (0: the defaults, 1000
	// and 4 MiB). Further pages are linked with Link: <...>; rel="next".
	ReferrersPageEntries int
	ReferrersPageBytes   int
	// Manifests caches manifest and tag reads (nil: off). Every manifest
	// and tag write of this handler invalidates it; writes elsewhere (the
	// UI, garbage collection) must too.
	Manifests *manifestcache.Cache
}

// BlobRedirector hands out a URL a client can GET a blob from without
// credentials for ttl. *s3.Store implements it.
type BlobRedirector interface {
	PresignBlob(ctx context.Context, repo string, d digest.Digest, ttl time.Duration) (string, error)
}

// BlobRedirectTTL is how long a blob redirect URL stays valid.
const BlobRedirectTTL = 15 * time.Minute

// DefaultMaxManifestSize is the manifest size limit when none is configured.
const DefaultMaxManifestSize = 4 << 20

// Handler serves /v2/.
type Handler struct {
	store    storage.Store
	log      *slog.Logger
	metrics  Metrics
	authz    Authorizer
	maxMan   int64
	maxBlob  int64
	sparse   bool
	mountAny bool
	canList  func(ctx context.Context, repo string) bool
	immut    func(repo, tag string) bool
	redirect BlobRedirector
	cache    *manifestcache.Cache
	now      func() time.Time
	byAction map[Action]handlerFunc

	apiVersion []string // the Docker-Distribution-API-Version value, shared
	idBase     uint64   // request ids: idBase + idSeq
	idSeq      atomic.Uint64

	refEntries, refBytes int // referrers page bounds
}

type handlerFunc func(w http.ResponseWriter, r *http.Request, rt Route) error

// New returns the /v2 handler.
func New(o Options) *Handler {
	h := &Handler{
		store:    o.Store,
		log:      o.Logger,
		metrics:  o.Metrics,
		authz:    o.Authorizer,
		maxMan:   o.MaxManifestSize,
		maxBlob:  o.MaxBlobSize,
		sparse:   o.AllowSparse,
		mountAny: o.MountWithoutFrom,
		canList:  o.CanList,
		immut:    o.Immutable,
		redirect: o.BlobRedirect,
		cache:    o.Manifests,
		now:      o.Now,
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.metrics == nil {
		h.metrics = nopMetrics{}
	}
	if h.maxMan <= 0 {
		h.maxMan = DefaultMaxManifestSize
	}
	if h.now == nil {
		h.now = time.Now
	}
	h.apiVersion = []string{"registry/2.0"}[:1:1]
	var seed [8]byte
	_, _ = rand.Read(seed[:])
	h.idBase = binary.BigEndian.Uint64(seed[:])
	h.refEntries, h.refBytes = o.ReferrersPageEntries, o.ReferrersPageBytes
	if h.refEntries <= 0 {
		h.refEntries = DefaultReferrersPageEntries
	}
	if h.refBytes <= 0 {
		h.refBytes = DefaultReferrersPageBytes
	}
	h.byAction = map[Action]handlerFunc{
		ActionPing:           h.ping,
		ActionGetBlob:        h.getBlob,
		ActionDeleteBlob:     h.deleteBlob,
		ActionStartUpload:    h.startUpload,
		ActionMountBlob:      h.mountBlob,
		ActionGetUpload:      h.getUpload,
		ActionPatchUpload:    h.patchUpload,
		ActionFinishUpload:   h.finishUpload,
		ActionCancelUpload:   h.cancelUpload,
		ActionGetManifest:    h.getManifest,
		ActionPutManifest:    h.putManifest,
		ActionDeleteManifest: h.deleteManifest,
		ActionListTags:       h.listTags,
		ActionGetReferrers:   h.getReferrers,
		ActionListCatalog:    h.listCatalog,
	}
	return h
}

// reqState is what ServeHTTP keeps for one request, in one allocation: the
// counting writer and reader, the request id and the identity for the log.
type reqState struct {
	cw       countingWriter
	cr       countingReader
	id       string
	identity string
	idHeader [1]string // X-Request-Id's value slice
}

type reqStateKey struct{}

// WithIdentity records who the request acts as, for the request log: it
// sets the state ServeHTTP keeps in ctx and returns ctx itself (outside
// ServeHTTP there is no log line, and ctx is returned unchanged).
func WithIdentity(ctx context.Context, id string) context.Context {
	if st, ok := ctx.Value(reqStateKey{}).(*reqState); ok {
		st.identity = id
	}
	return ctx
}

func requestID(ctx context.Context) string {
	if st, ok := ctx.Value(reqStateKey{}).(*reqState); ok {
		return st.id
	}
	return ""
}

// newRequestID is the client's X-Request-Id when it is a plausible one, else
// the next of this handler's ids: a random 64-bit start plus a counter, in
// hex (unique per process, unlikely to collide across replicas; not a secret).
func (h *Handler) newRequestID(r *http.Request) string {
	if v := r.Header["X-Request-Id"]; len(v) > 0 {
		if id := v[0]; id != "" && len(id) <= 64 && oci.ValidTag(id) {
			return id
		}
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], h.idBase+h.idSeq.Add(1))
	var x [16]byte
	hex.Encode(x[:], b[:])
	return string(x[:])
}

// The header keys ServeHTTP sets, in canonical form (assigned directly: no
// canonicalisation per request).
const (
	hdrAPIVersion = "Docker-Distribution-Api-Version"
	hdrRequestID  = "X-Request-Id"
)

// ServeHTTP resolves, authorizes, dispatches, and writes one log line and the
// metrics for the request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := h.now()
	st := &reqState{cw: countingWriter{ResponseWriter: w}, cr: countingReader{r: r.Body}}
	st.id = h.newRequestID(r)
	ctx := context.WithValue(r.Context(), reqStateKey{}, st)
	r = r.WithContext(ctx)
	cw, cr := &st.cw, &st.cr
	r.Body = cr
	hdr := cw.Header()
	hdr[hdrAPIVersion] = h.apiVersion
	st.idHeader[0] = st.id
	hdr[hdrRequestID] = st.idHeader[:1:1]

	rt, err := resolve(r)
	if err == nil && h.authz != nil {
		var actx context.Context
		actx, err = h.authz.Authorize(ctx, r, rt)
		if actx != nil && actx != ctx {
			ctx = actx // carries the identity even when refused, for the log
			r = r.WithContext(ctx)
		}
	}
	if err == nil {
		err = h.byAction[rt.Action](cw, r, rt)
	}
	if err != nil {
		writeError(cw, r, h.log, err)
	}
	status := cw.status
	if status == 0 {
		status = http.StatusOK
	}
	dur := h.now().Sub(start)
	action := string(rt.Action)
	if action == "" {
		action = "unknown"
	}
	h.metrics.ObserveRequest(action, status, dur, cr.n, cw.n)
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	if !h.log.Enabled(ctx, level) {
		return
	}
	attrs := [...]slog.Attr{
		slog.String("request_id", st.id),
		slog.String("action", action),
		slog.String("method", r.Method),
		slog.String("repository", rt.Repo),
		slog.String("reference", rt.Reference),
		slog.Int("status", status),
		slog.Int64("bytes_in", cr.n),
		slog.Int64("bytes_out", cw.n),
		slog.Duration("duration", dur),
		slog.String("remote", r.RemoteAddr),
		slog.String("identity", st.identity),
		{},
	}
	n := len(attrs) - 1
	if err != nil && status < 500 {
		// Why a request was refused or failed, on its one line (a 5xx has
		// its own error line). Errors never hold a credential: they name
		// the provider, the claim or the rule, not the token.
		attrs[n] = slog.String("error", err.Error())
		n++
	}
	h.log.LogAttrs(ctx, level, "request", attrs[:n]...)
}

func (h *Handler) ping(w http.ResponseWriter, r *http.Request, _ Route) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", "2")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, "{}")
	return nil
}

type nopMetrics struct{}

func (nopMetrics) ObserveRequest(string, int, time.Duration, int64, int64) {}
func (nopMetrics) UploadStarted()                                          {}
func (nopMetrics) UploadFinished()                                         {}

// countingWriter records the status and the body bytes written.
type countingWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (c *countingWriter) WriteHeader(s int) {
	if c.status == 0 {
		c.status = s
	}
	c.ResponseWriter.WriteHeader(s)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

// ReadFrom keeps the sendfile/splice fast path of the underlying writer.
func (c *countingWriter) ReadFrom(src io.Reader) (int64, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	n, err := io.Copy(c.ResponseWriter, src)
	c.n += n
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// countingReader counts request body bytes.
type countingReader struct {
	r io.ReadCloser
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countingReader) Close() error { return c.r.Close() }
