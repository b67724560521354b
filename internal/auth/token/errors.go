package token

import (
	"errors"
	"net/http"
	"strconv"
)

// reqError is a refused token request: an RFC 6749 error code and a
// description safe to show the client; reason goes to the debug log only.
type reqError struct {
	status int
	code   string
	desc   string
	reason error
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
	return &reqError{status: http.StatusServiceUnavailable, code: "temporarily_unavailable", desc: "credentials cannot be checked now; retry later", reason: err}
}

// ociCode is the code of the OCI-style `errors` entry that accompanies the
// OAuth2 error, for clients (docker) that only read that shape.
func ociCode(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "UNAUTHORIZED"
	case http.StatusServiceUnavailable:
		return "UNAVAILABLE"
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
	if e.status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	writeJSON(w, e.status, errorBody{Error: e.code, Description: e.desc,
		Errors: []ociError{{Code: ociCode(e.status), Message: e.desc}}})
}
