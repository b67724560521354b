package registry

import (
	"errors"
	"strconv"
	"strings"
)

var errBadRange = errors.New("registry: malformed range")

// parseRange parses a single-range HTTP Range header ("bytes=a-b", "bytes=a-",
// "bytes=-n") against a blob of the given size. ok is false when the header
// should be ignored (absent, not bytes, or several ranges: the whole blob is
// served). errUnsatisfiable is returned for a range outside the blob.
func parseRange(header string, size int64) (start, length int64, ok bool, err error) {
	if header == "" {
		return 0, 0, false, nil
	}
	spec, found := strings.CutPrefix(header, "bytes=")
	if !found {
		return 0, 0, false, nil
	}
	spec = strings.TrimSpace(spec)
	if strings.Contains(spec, ",") {
		return 0, 0, false, nil
	}
	first, last, found := strings.Cut(spec, "-")
	if !found {
		return 0, 0, false, errBadRange
	}
	first, last = strings.TrimSpace(first), strings.TrimSpace(last)
	if first == "" {
		// Suffix range: the last n bytes.
		n, err := parseNonNeg(last)
		if err != nil {
			return 0, 0, false, errBadRange
		}
		if n == 0 || size == 0 {
			return 0, 0, false, errUnsatisfiable
		}
		if n > size {
			n = size
		}
		return size - n, n, true, nil
	}
	s, err := parseNonNeg(first)
	if err != nil {
		return 0, 0, false, errBadRange
	}
	if s >= size {
		return 0, 0, false, errUnsatisfiable
	}
	e := size - 1
	if last != "" {
		e, err = parseNonNeg(last)
		if err != nil || e < s {
			return 0, 0, false, errBadRange
		}
		if e >= size {
			e = size - 1
		}
	}
	return s, e - s + 1, true, nil
}

var errUnsatisfiable = errors.New("registry: range not satisfiable")

// parseContentRange parses the Content-Range of an upload chunk. The spec
// form is "<start>-<end>"; "bytes <start>-<end>/<total|*>" is accepted too.
func parseContentRange(header string) (start, end int64, err error) {
	s := strings.TrimSpace(header)
	s = strings.TrimPrefix(s, "bytes ")
	s = strings.TrimPrefix(s, "bytes=")
	if i := strings.IndexByte(s, '/'); i >= 0 {
		s = s[:i]
	}
	a, b, found := strings.Cut(s, "-")
	if !found {
		return 0, 0, errBadRange
	}
	start, err = parseNonNeg(strings.TrimSpace(a))
	if err != nil {
		return 0, 0, errBadRange
	}
	end, err = parseNonNeg(strings.TrimSpace(b))
	if err != nil || end < start {
		return 0, 0, errBadRange
	}
	return start, end, nil
}

func parseNonNeg(s string) (int64, error) {
	if s == "" || len(s) > 19 {
		return 0, errBadRange
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errBadRange
		}
	}
	return strconv.ParseInt(s, 10, 64)
}
