package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/berth-registry/berth/internal/storage"
)

// Code is an error code of the OCI distribution spec.
type Code string

// The OCI distribution-spec error codes (plus the few Docker Registry v2 ones
// clients know).
const (
	CodeBlobUnknown         Code = "BLOB_UNKNOWN"
	CodeBlobUploadInvalid   Code = "BLOB_UPLOAD_INVALID"
	CodeBlobUploadUnknown   Code = "BLOB_UPLOAD_UNKNOWN"
	CodeDigestInvalid       Code = "DIGEST_INVALID"
	CodeManifestBlobUnknown Code = "MANIFEST_BLOB_UNKNOWN"
	CodeManifestInvalid     Code = "MANIFEST_INVALID"
	CodeManifestUnknown     Code = "MANIFEST_UNKNOWN"
	CodeNameInvalid         Code = "NAME_INVALID"
	CodeNameUnknown         Code = "NAME_UNKNOWN"
	CodeSizeInvalid         Code = "SIZE_INVALID"
	CodeTagInvalid          Code = "TAG_INVALID"
	CodeUnauthorized        Code = "UNAUTHORIZED"
	CodeDenied              Code = "DENIED"
	CodeUnsupported         Code = "UNSUPPORTED"
	CodeTooManyRequests     Code = "TOOMANYREQUESTS"
	CodeRangeInvalid        Code = "RANGE_INVALID"
	CodeUnavailable         Code = "UNAVAILABLE"
	CodeUnknown             Code = "UNKNOWN"
)

// codeInfo is the table of default statuses and messages, one row per code.
var codeInfo = map[Code]struct {
	status  int
	message string
}{
	CodeBlobUnknown:         {http.StatusNotFound, "blob unknown to registry"},
	CodeBlobUploadInvalid:   {http.StatusBadRequest, "blob upload invalid"},
	CodeBlobUploadUnknown:   {http.StatusNotFound, "blob upload unknown to registry"},
	CodeDigestInvalid:       {http.StatusBadRequest, "provided digest did not match uploaded content"},
	CodeManifestBlobUnknown: {http.StatusBadRequest, "manifest references a manifest or blob unknown to registry"},
	CodeManifestInvalid:     {http.StatusBadRequest, "manifest invalid"},
	CodeManifestUnknown:     {http.StatusNotFound, "manifest unknown to registry"},
	CodeNameInvalid:         {http.StatusBadRequest, "invalid repository name"},
	CodeNameUnknown:         {http.StatusNotFound, "repository name not known to registry"},
	CodeSizeInvalid:         {http.StatusBadRequest, "provided length did not match content length"},
	CodeTagInvalid:          {http.StatusBadRequest, "manifest tag did not match URI"},
	CodeUnauthorized:        {http.StatusUnauthorized, "authentication required"},
	CodeDenied:              {http.StatusForbidden, "requested access to the resource is denied"},
	CodeUnsupported:         {http.StatusMethodNotAllowed, "the operation is unsupported"},
	CodeTooManyRequests:     {http.StatusTooManyRequests, "too many requests"},
	CodeRangeInvalid:        {http.StatusRequestedRangeNotSatisfiable, "invalid content range"},
	CodeUnavailable:         {http.StatusServiceUnavailable, "service temporarily unavailable"},
	CodeUnknown:             {http.StatusInternalServerError, "unknown error"},
}

// Error is an error destined for the client: an OCI code, the HTTP status, a
// message and optional detail. Handlers return it (possibly wrapped); writeError
// is the one place it becomes a response.
type Error struct {
	Code    Code
	Status  int    // 0: the code's default
	Message string // "": the code's default
	Detail  any
	Err     error       // cause, logged, never sent
	Header  http.Header // extra response headers, such as WWW-Authenticate
}

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = codeInfo[e.Code].message
	}
	if e.Err != nil {
		return fmt.Sprintf("registry: %s: %s: %v", e.Code, msg, e.Err)
	}
	return fmt.Sprintf("registry: %s: %s", e.Code, msg)
}

func (e *Error) Unwrap() error { return e.Err }

// errf builds an *Error with a formatted message.
func errf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// withDetail attaches detail sent to the client.
func (e *Error) withDetail(d any) *Error { e.Detail = d; return e }

// toError maps any error to a client error: *Error as is, storage sentinels to
// their OCI codes, everything else to 500 UNKNOWN.
func toError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	switch {
	case errors.Is(err, storage.ErrBlobUnknown):
		return &Error{Code: CodeBlobUnknown, Err: err}
	case errors.Is(err, storage.ErrManifestUnknown), errors.Is(err, storage.ErrTagUnknown):
		return &Error{Code: CodeManifestUnknown, Err: err}
	case errors.Is(err, storage.ErrRepositoryUnknown):
		return &Error{Code: CodeNameUnknown, Err: err}
	case errors.Is(err, storage.ErrUploadUnknown):
		return &Error{Code: CodeBlobUploadUnknown, Err: err}
	case errors.Is(err, storage.ErrDigestMismatch):
		return &Error{Code: CodeDigestInvalid, Err: err}
	case errors.Is(err, storage.ErrSizeMismatch):
		return &Error{Code: CodeSizeInvalid, Err: err}
	case errors.Is(err, storage.ErrUploadOffset):
		return &Error{Code: CodeRangeInvalid, Err: err}
	case errors.Is(err, storage.ErrTooLarge):
		return &Error{Code: CodeSizeInvalid, Status: http.StatusRequestEntityTooLarge, Message: "content exceeds the configured size limit", Err: err}
	case errors.Is(err, storage.ErrUnavailable):
		return &Error{Code: CodeUnavailable, Err: err}
	case errors.Is(err, storage.ErrInsufficientStorage):
		// 507 with the OCI code UNKNOWN (the spec has none for this, and every
		// client knows UNKNOWN); the message is fixed, so no path leaks.
		return &Error{Code: CodeUnknown, Status: http.StatusInsufficientStorage, Message: insufficientStorageMessage, Err: err}
	case errors.Is(err, storage.ErrUnsupportedDigest):
		return &Error{Code: CodeDigestInvalid, Message: "unsupported digest algorithm (sha256 and sha512 are supported)", Err: err}
	}
	return &Error{Code: CodeUnknown, Err: err}
}

// insufficientStorageMessage is the message of a 507: the storage is full.
const insufficientStorageMessage = "no space left on device: the registry's storage is full (or over its quota)"

// retryAfterUnavailable is the Retry-After (seconds) of a 503 UNAVAILABLE
// without one of its own: a dependency (object store, Redis, an issuer) does
// not answer, and a client that waits this long usually finds it back.
const retryAfterUnavailable = "5"

type errorBody struct {
	Errors []errorEntry `json:"errors"`
}

type errorEntry struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

// writeError is the one place an error becomes an HTTP response: the OCI error
// envelope with the code's status. A 500 carries the request id; its cause goes
// to the log only.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	e := toError(err)
	status := e.Status
	info := codeInfo[e.Code]
	if status == 0 {
		status = info.status
	}
	msg := e.Message
	if msg == "" {
		msg = info.message
	}
	detail := e.Detail
	if status == http.StatusInternalServerError {
		id := requestID(r.Context())
		log.ErrorContext(r.Context(), "internal error", "request_id", id, "err", err)
		msg = "internal server error"
		detail = map[string]string{"request_id": id}
	} else if status == http.StatusInsufficientStorage {
		// The operator must act: log it like an internal error.
		log.ErrorContext(r.Context(), "insufficient storage", "request_id", requestID(r.Context()), "err", err)
	} else if e.Err != nil {
		log.DebugContext(r.Context(), "request failed", "code", e.Code, "err", err)
	}
	body, _ := json.Marshal(errorBody{Errors: []errorEntry{{Code: e.Code, Message: msg, Detail: detail}}})
	h := w.Header()
	for k, v := range e.Header {
		h[k] = v
	}
	if e.Code == CodeUnavailable && h.Get("Retry-After") == "" {
		h.Set("Retry-After", retryAfterUnavailable)
	}
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", fmt.Sprint(len(body)))
	h.Del("Docker-Content-Digest")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
