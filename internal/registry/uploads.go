package registry

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/berth-registry/berth/internal/oci"
	"github.com/berth-registry/berth/internal/storage"
	"github.com/opencontainers/go-digest"
)

// startUpload serves POST /v2/<name>/blobs/uploads/: a new session, or a
// monolithic upload when ?digest= is given.
func (h *Handler) startUpload(w http.ResponseWriter, r *http.Request, rt Route) error {
	q := r.URL.Query()
	if q.Has("digest") {
		d, err := parseDigest(q.Get("digest"))
		if err != nil {
			return err
		}
		return h.monolithic(w, r, rt, d)
	}
	return h.newSession(w, r, rt)
}

func (h *Handler) newSession(w http.ResponseWriter, r *http.Request, rt Route) error {
	up, err := h.store.BeginUpload(r.Context(), rt.Repo)
	if err != nil {
		return fmt.Errorf("begin upload: %w", err)
	}
	setUploadHeaders(w, rt.Repo, up.ID, 0)
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// monolithic stores the request body as the blob d in one request.
func (h *Handler) monolithic(w http.ResponseWriter, r *http.Request, rt Route, d digest.Digest) error {
	if err := h.checkLength(r, 0); err != nil {
		return err
	}
	ctx := r.Context()
	up, err := h.store.BeginUpload(ctx, rt.Repo)
	if err != nil {
		return fmt.Errorf("begin upload: %w", err)
	}
	if wu, ok := h.store.(storage.WholeUploader); ok {
		info, err := h.uploadWhole(r, wu, rt.Repo, up.ID, d)
		if err != nil {
			_ = h.store.AbortUpload(ctx, rt.Repo, up.ID)
			return err
		}
		return blobCreated(w, rt.Repo, info.Digest)
	}
	if _, err := h.appendBody(r, rt.Repo, up.ID, 0); err != nil {
		_ = h.store.AbortUpload(ctx, rt.Repo, up.ID)
		return err
	}
	info, err := h.store.CommitUpload(ctx, rt.Repo, up.ID, d)
	if err != nil {
		_ = h.store.AbortUpload(ctx, rt.Repo, up.ID)
		return fmt.Errorf("commit upload: %w", err)
	}
	return blobCreated(w, rt.Repo, info.Digest)
}

// mountBlob serves POST /v2/<name>/blobs/uploads/?mount=<digest>&from=<repo>.
// When the blob cannot be mounted (unknown in from, or no from given) the
// request falls back to a new upload session (202), as the spec requires.
// Without from, the store is searched only when MountWithoutFrom is set:
// otherwise anyone could probe and claim content of repositories they cannot
// read.
func (h *Handler) mountBlob(w http.ResponseWriter, r *http.Request, rt Route) error {
	q := r.URL.Query()
	d, err := parseDigest(q.Get("mount"))
	if err != nil {
		return err
	}
	from := q.Get("from")
	if from != "" && !oci.ValidRepo(from) {
		return errf(CodeNameInvalid, "invalid repository name %q in from", truncate(from, 300))
	}
	if from != "" || h.mountAny {
		info, err := h.store.MountBlob(r.Context(), rt.Repo, from, d)
		switch {
		case err == nil:
			return blobCreated(w, rt.Repo, info.Digest)
		case errors.Is(err, storage.ErrBlobUnknown), errors.Is(err, storage.ErrRepositoryUnknown):
			// fall through to a new session
		default:
			return fmt.Errorf("mount blob: %w", err)
		}
	}
	if q.Has("digest") {
		return h.monolithic(w, r, rt, d)
	}
	return h.newSession(w, r, rt)
}

// getUpload serves GET /v2/<name>/blobs/uploads/<id>: the session's progress.
func (h *Handler) getUpload(w http.ResponseWriter, r *http.Request, rt Route) error {
	up, err := h.store.StatUpload(r.Context(), rt.Repo, rt.UploadID)
	if err != nil {
		return fmt.Errorf("stat upload: %w", err)
	}
	setUploadHeaders(w, rt.Repo, up.ID, up.Size)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// patchUpload serves PATCH /v2/<name>/blobs/uploads/<id>: one chunk, ordered by
// Content-Range when given, else streamed at the end of the session.
func (h *Handler) patchUpload(w http.ResponseWriter, r *http.Request, rt Route) error {
	ctx := r.Context()
	up, err := h.store.StatUpload(ctx, rt.Repo, rt.UploadID)
	if err != nil {
		return fmt.Errorf("stat upload: %w", err)
	}
	offset, err := h.chunkOffset(w, r, rt, up)
	if err != nil {
		return err
	}
	size, err := h.appendBody(r, rt.Repo, up.ID, offset)
	if err != nil {
		if errors.Is(err, storage.ErrUploadOffset) {
			return h.rangeError(w, r, rt, up.ID, err)
		}
		return err
	}
	setUploadHeaders(w, rt.Repo, up.ID, size)
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// finishUpload serves PUT /v2/<name>/blobs/uploads/<id>?digest=: an optional
// last chunk, then verification and commit.
func (h *Handler) finishUpload(w http.ResponseWriter, r *http.Request, rt Route) error {
	ctx := r.Context()
	dq := r.URL.Query().Get("digest")
	if dq == "" {
		return errf(CodeDigestInvalid, "digest query parameter is required to finish an upload")
	}
	d, err := parseDigest(dq)
	if err != nil {
		return err
	}
	up, err := h.store.StatUpload(ctx, rt.Repo, rt.UploadID)
	if err != nil {
		return fmt.Errorf("stat upload: %w", err)
	}
	if hasBody(r) {
		offset, err := h.chunkOffset(w, r, rt, up)
		if err != nil {
			return err
		}
		if wu, ok := h.store.(storage.WholeUploader); ok && offset == 0 {
			// The whole blob in this request: straight to its address.
			info, err := h.uploadWhole(r, wu, rt.Repo, up.ID, d)
			if err != nil {
				if errors.Is(err, storage.ErrUploadOffset) {
					return h.rangeError(w, r, rt, up.ID, err)
				}
				return err
			}
			return blobCreated(w, rt.Repo, info.Digest)
		}
		if _, err := h.appendBody(r, rt.Repo, up.ID, offset); err != nil {
			if errors.Is(err, storage.ErrUploadOffset) {
				return h.rangeError(w, r, rt, up.ID, err)
			}
			return err
		}
	}
	info, err := h.store.CommitUpload(ctx, rt.Repo, up.ID, d)
	if err != nil {
		return fmt.Errorf("commit upload: %w", err)
	}
	return blobCreated(w, rt.Repo, info.Digest)
}

// cancelUpload serves DELETE /v2/<name>/blobs/uploads/<id>.
func (h *Handler) cancelUpload(w http.ResponseWriter, r *http.Request, rt Route) error {
	if err := h.store.AbortUpload(r.Context(), rt.Repo, rt.UploadID); err != nil {
		return fmt.Errorf("abort upload: %w", err)
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// chunkOffset returns where the request's chunk starts: its Content-Range
// start, which must continue the session (416 otherwise), or the session's
// current size.
func (h *Handler) chunkOffset(w http.ResponseWriter, r *http.Request, rt Route, up storage.UploadInfo) (int64, error) {
	cr := r.Header.Get("Content-Range")
	if cr == "" {
		return up.Size, h.checkLength(r, up.Size)
	}
	start, end, err := parseContentRange(cr)
	if err != nil {
		return 0, h.rangeError(w, r, rt, up.ID, err)
	}
	if start != up.Size {
		return 0, h.rangeError(w, r, rt, up.ID, fmt.Errorf("chunk starts at %d, upload is at %d: %w", start, up.Size, storage.ErrUploadOffset))
	}
	if r.ContentLength >= 0 && r.ContentLength != end-start+1 {
		return 0, h.rangeError(w, r, rt, up.ID, fmt.Errorf("Content-Range %d-%d does not match Content-Length %d", start, end, r.ContentLength))
	}
	return start, h.checkLength(r, start)
}

// rangeError answers 416 with the session's real Range and Location, so the
// client can resume.
func (h *Handler) rangeError(w http.ResponseWriter, r *http.Request, rt Route, id string, cause error) error {
	if up, err := h.store.StatUpload(r.Context(), rt.Repo, id); err == nil {
		setUploadHeaders(w, rt.Repo, id, up.Size)
	}
	return &Error{Code: CodeBlobUploadInvalid, Status: http.StatusRequestedRangeNotSatisfiable,
		Message: "chunk is out of order or its range is invalid", Err: cause}
}

// checkLength refuses a body that would make the blob exceed the size limit,
// when the request declares its length.
func (h *Handler) checkLength(r *http.Request, offset int64) error {
	if h.maxBlob > 0 && r.ContentLength > 0 && offset+r.ContentLength > h.maxBlob {
		return tooLarge(h.maxBlob)
	}
	return nil
}

func tooLarge(limit int64) *Error {
	return &Error{Code: CodeSizeInvalid, Status: http.StatusRequestEntityTooLarge,
		Message: fmt.Sprintf("blob exceeds the size limit of %d bytes", limit)}
}

// appendBody streams the request body into the session at offset, enforcing
// the blob size limit as bytes pass.
func (h *Handler) appendBody(r *http.Request, repo, id string, offset int64) (int64, error) {
	h.metrics.UploadStarted()
	defer h.metrics.UploadFinished()
	var body io.Reader = r.Body
	var lim *limitReader
	if h.maxBlob > 0 {
		lim = &limitReader{r: r.Body, left: h.maxBlob - offset}
		body = lim
	}
	size, err := h.store.AppendUpload(r.Context(), repo, id, offset, body)
	if lim != nil && lim.exceeded {
		return size, tooLarge(h.maxBlob)
	}
	if err != nil {
		return size, fmt.Errorf("append upload: %w", err)
	}
	return size, nil
}

// uploadWhole streams the request body as the whole blob d through a store
// that can take it in one go, enforcing the blob size limit as bytes pass.
func (h *Handler) uploadWhole(r *http.Request, wu storage.WholeUploader, repo, id string, d digest.Digest) (storage.BlobInfo, error) {
	h.metrics.UploadStarted()
	defer h.metrics.UploadFinished()
	var body io.Reader = r.Body
	var lim *limitReader
	if h.maxBlob > 0 {
		lim = &limitReader{r: r.Body, left: h.maxBlob}
		body = lim
	}
	info, err := wu.UploadWhole(r.Context(), repo, id, d, body)
	if lim != nil && lim.exceeded {
		return info, tooLarge(h.maxBlob)
	}
	if err != nil {
		return info, fmt.Errorf("upload blob: %w", err)
	}
	return info, nil
}

// limitReader fails once more than left bytes are read.
type limitReader struct {
	r        io.Reader
	left     int64
	exceeded bool
}

var errLimit = errors.New("registry: size limit exceeded")

func (l *limitReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		// Probe for one more byte: exactly at the limit is fine.
		var one [1]byte
		n, err := l.r.Read(one[:])
		if n > 0 {
			l.exceeded = true
			return 0, errLimit
		}
		return 0, err
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}

func hasBody(r *http.Request) bool {
	return r.ContentLength > 0 || (r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody)
}

func uploadLocation(repo, id string) string { return "/v2/" + repo + "/blobs/uploads/" + id }

func setUploadHeaders(w http.ResponseWriter, repo, id string, size int64) {
	hdr := w.Header()
	hdr.Set("Location", uploadLocation(repo, id))
	hdr.Set("Docker-Upload-UUID", id)
	end := size - 1
	if end < 0 {
		end = 0
	}
	hdr.Set("Range", "0-"+strconv.FormatInt(end, 10))
	hdr.Set("Content-Length", "0")
}

func blobCreated(w http.ResponseWriter, repo string, d digest.Digest) error {
	hdr := w.Header()
	hdr.Set("Location", "/v2/"+repo+"/blobs/"+d.String())
	hdr.Set("Docker-Content-Digest", d.String())
	hdr.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}
