package token

import (
	"errors"
	"net/http"
	"strconv"
	"time"
)

// reqError is a refused token request: an RFC 6749 error code and a
// description safe to show the client; reason goes to the debug log only.
type reqError struct {
	status int
	code   string
	desc   string
	reason error
	// retryAfter, in seconds, is sent as Retry-After with 429 and 503.
	retryAfter int
}

func badRequest(desc string) *reqError {
	return &reqError{status: http.StatusBadRequest, code: "invalid_request", desc: desc}
}

// internalError maps a failure to issue: too large is the client's problem
// (400); state that cannot be read or written is 503, never 500.
func internalError(err error) *reqError {
	if errors.Is(err, errTooLarge) {
		return &reqError{status: http.StatusBadRequest, code: "invalid_request", desc: errTooLarge.Error()[len("token: "):], reason: err}
	}
	return unavailable(err)
}

func unavailable(err error) *reqError {
	return &reqError{status: http.StatusServiceUnavailable, code: "temporarily_unavailable", desc: "credentials cannot be checked now; retry later", reason: err, retryAfter: 5}
}

// rateLimited answers a client address over its failed-authentication limit.
func rateLimited(err error, after time.Duration) *reqError {
	return &reqError{status: http.StatusTooManyRequests, code: "slow_down", reason: err,
		desc:       "too many failed authentication attempts from this address; retry later",
		retryAfter: int((after + time.Second - 1) / time.Second)}
}

// ociCode is the code of the OCI-style `errors` entry that accompanies the
// OAuth2 error, for clients (docker) that only read that shape.
func ociCode(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "UNAUTHORIZED"
	case http.StatusServiceUnavailable:
		return "UNAVAILABLE"
	case http.StatusTooManyRequests:
		return "TOOMANYREQUESTS"
	case http.StatusMethodNotAllowed:
		return "UNSUPPORTED"
	default:
		return "DENIED"
	}
}

type errorBody struct {
	Error       string     `json:"error"`
	Description string     `json:"error_description,omitempty"`
	Errors      []ociError `json:"errors"`
}

type ociError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// fail answers a refused request and logs why (at debug; never a credential).
func (s *Service) fail(w http.ResponseWriter, r *http.Request, grant string, e *reqError) {
	if len(grant) > 80 { // client-supplied when unknown
		grant = grant[:80]
	}
	attrs := []any{"grant", grant, "status", e.status, "error", e.code, "description", e.desc, "client_ip", s.o.ClientIP(r)}
	if e.reason != nil {
		attrs = append(attrs, "reason", e.reason.Error())
	}
	if e.status >= 500 {
		s.log.WarnContext(r.Context(), "token: request failed", attrs...)
	} else {
		s.log.DebugContext(r.Context(), "token: request refused", attrs...)
	}
	if e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", "Basic realm="+strconv.Quote(s.o.Service))
	}
	if e.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.retryAfter))
	}
	writeJSON(w, e.status, errorBody{Error: e.code, Description: e.desc,
		Errors: []ociError{{Code: ociCode(e.status), Message: e.desc}}})
}
