// Package tomlkey formats configuration key paths the way a user writes them
// in TOML, so every package names a key in its messages the same way.
package tomlkey

import (
	"strconv"
	"strings"
)

// Format joins parts with dots and quotes the parts that are not bare keys:
// Format("repository", "team/app", "access_policy") is
// repository."team/app".access_policy.
func Format(parts ...string) string {
	var b strings.Builder
	for i, p := range parts {
		if i > 0 {
			b.WriteByte('.')
		}
		if IsBare(p) {
			b.WriteString(p)
		} else {
			b.WriteString(strconv.Quote(p))
		}
	}
	return b.String()
}

// IsBare reports whether s is a bare TOML key (A-Z a-z 0-9 - _).
func IsBare(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
