package auth

import (
	"log/slog"
	"math"
)

// LogClaims formats an identity's claims for a log line. Claims that went
// through JSON without json.Number (registry access tokens, refresh and
// session token records) hold their numbers as float64, which a log line
// would print as 1.7e+09; LogClaims prints whole numbers as integers
// (exp:1767225600), at any depth. The claims themselves are not changed:
// policies see them as they are.
type LogClaims map[string]any

// LogValue returns a copy of the claims with whole float64 numbers made
// int64.
func (c LogClaims) LogValue() slog.Value {
	if c == nil {
		return slog.AnyValue(nil)
	}
	return slog.AnyValue(integral(map[string]any(c)))
}

// integral returns v with every whole float64 within int64's range made
// int64, copying the maps and slices it changes beneath.
func integral(v any) any {
	switch v := v.(type) {
	case float64:
		if v == math.Trunc(v) && v >= math.MinInt64 && v < math.MaxInt64 {
			return int64(v)
		}
		return v
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = integral(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = integral(e)
		}
		return out
	}
	return v
}
