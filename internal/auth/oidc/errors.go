package oidc

import (
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/berth-registry/berth/internal/auth"
)

// Error says why a token was refused (errors.Is auth.ErrInvalidCredentials)
// or could not be checked (errors.Is auth.ErrUnavailable). Reason is meant
// for a debug log; it never contains the token.
type Error struct {
	// Provider is the provider the token was routed to, "" if none.
	Provider string
	// Reason is a precise lowercase explanation, e.g. "expired 42s ago".
	Reason string
	// Err is auth.ErrInvalidCredentials or auth.ErrUnavailable.
	Err error
	// Cause is an underlying error, such as the request context's, or nil.
	Cause error
}

func (e *Error) Error() string {
	if e.Provider == "" {
		return "oidc: " + e.Reason
	}
	return "oidc: " + e.Provider + ": " + e.Reason
}

// Unwrap returns the sentinel and the cause.
func (e *Error) Unwrap() []error {
	if e.Cause != nil {
		return []error{e.Err, e.Cause}
	}
	return []error{e.Err}
}

func invalid(provider, format string, args ...any) error {
	return &Error{Provider: provider, Reason: fmt.Sprintf(format, args...), Err: auth.ErrInvalidCredentials}
}

func unavailable(provider string, cause error, format string, args ...any) error {
	return &Error{Provider: provider, Reason: fmt.Sprintf(format, args...), Err: auth.ErrUnavailable, Cause: cause}
}

// q quotes an untrusted string from a token for an error message, cut to a
// length that keeps logs readable.
func q(s string) string {
	const max = 80
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return strconv.Quote(s[:cut]) + "..."
	}
	return strconv.Quote(s)
}
