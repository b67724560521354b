package policy

import (
	"fmt"
	"regexp"
	"strings"
)

// A pattern is a parsed repository key: a list of segments, each a literal
// path component, "*" (exactly one component) or "**" (zero or more
// components). A literal key "dev" is the pattern dev/** : it covers the
// namespace itself and everything below it.
type pattern struct {
	key  string
	segs []string
	// Specificity, compared in this order (see the package doc).
	literals int // literal segments: more wins
	doubles  int // "**" segments (including a literal key's implicit one): fewer wins
	singles  int // "*" segments: more wins
}

// component is one path component of a repository name (distribution-spec).
var component = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$`)

// maxKeyLength bounds a key like a repository name.
const maxKeyLength = 255

// parsePattern parses and validates a repository key.
func parsePattern(key string) (*pattern, error) {
	if key == "" {
		return nil, fmt.Errorf("repository key must not be empty")
	}
	if len(key) > maxKeyLength {
		return nil, fmt.Errorf("repository key is longer than %d characters", maxKeyLength)
	}
	p := &pattern{key: key}
	glob := false
	for i, s := range strings.Split(key, "/") {
		switch {
		case s == "*":
			p.singles++
			glob = true
		case s == "**":
			if i > 0 && p.segs[i-1] == "**" {
				return nil, fmt.Errorf("repository key %q: \"**/**\" is redundant: use \"**\"", key)
			}
			p.doubles++
			glob = true
		case component.MatchString(s):
			p.literals++
		case s == "":
			return nil, fmt.Errorf("repository key %q has an empty path component", key)
		case strings.Contains(s, "*"):
			return nil, fmt.Errorf("repository key %q: %q: a wildcard must be a whole path component (\"*\" or \"**\")", key, s)
		default:
			return nil, fmt.Errorf("repository key %q: %q is not a valid repository path component (lowercase letters, digits, and . _ __ - between them)", key, s)
		}
		p.segs = append(p.segs, s)
	}
	if !glob {
		// A namespace covers everything below it.
		p.segs = append(p.segs, "**")
		p.doubles++
	}
	return p, nil
}

// match reports whether the repository name matches the pattern.
func (p *pattern) match(name string) bool {
	if name == "" || name[0] == '/' || name[len(name)-1] == '/' || strings.Contains(name, "//") {
		return false
	}
	return matchSegs(p.segs, name)
}

// matchSegs matches segs against the "/"-separated name without allocating.
// An empty name is the empty sequence of components.
func matchSegs(segs []string, name string) bool {
	for len(segs) > 0 {
		s := segs[0]
		if s == "**" {
			rest := segs[1:]
			if len(rest) == 0 {
				return true
			}
			// Try zero, one, two ... components for "**".
			for {
				if matchSegs(rest, name) {
					return true
				}
				if name == "" {
					return false
				}
				_, after, found := strings.Cut(name, "/")
				if !found {
					name = ""
				} else {
					name = after
				}
			}
		}
		if name == "" {
			return false
		}
		head, after, found := strings.Cut(name, "/")
		if s != "*" && s != head {
			return false
		}
		if found {
			name = after
			if name == "" {
				return false // trailing slash
			}
		} else {
			name = ""
		}
		segs = segs[1:]
	}
	return name == ""
}

// moreSpecific reports whether p beats q when both cover a name.
func (p *pattern) moreSpecific(q *pattern) bool {
	if p.literals != q.literals {
		return p.literals > q.literals
	}
	if p.doubles != q.doubles {
		return p.doubles < q.doubles
	}
	return p.singles > q.singles
}

// sameSpecificity reports whether neither p nor q beats the other.
func (p *pattern) sameSpecificity(q *pattern) bool {
	return p.literals == q.literals && p.doubles == q.doubles && p.singles == q.singles
}

// overlap returns a repository name both patterns match, or "" if there is
// none.
func overlap(p, q []string) string {
	type state struct{ i, j int }
	seen := map[state]bool{}
	var walk func(i, j int) ([]string, bool)
	walk = func(i, j int) ([]string, bool) {
		st := state{i, j}
		if seen[st] {
			return nil, false
		}
		seen[st] = true
		switch {
		case i == len(p) && j == len(q):
			return nil, true
		case i < len(p) && p[i] == "**":
			if w, ok := walk(i+1, j); ok {
				return w, true
			}
			if j < len(q) {
				if w, ok := walk(i, j+1); ok {
					return append([]string{witness(q[j])}, w...), true
				}
			}
			return nil, false
		case j < len(q) && q[j] == "**":
			if w, ok := walk(i, j+1); ok {
				return w, true
			}
			if i < len(p) {
				if w, ok := walk(i+1, j); ok {
					return append([]string{witness(p[i])}, w...), true
				}
			}
			return nil, false
		case i < len(p) && j < len(q):
			a, b := p[i], q[j]
			if a != "*" && b != "*" && a != b {
				return nil, false
			}
			w, ok := walk(i+1, j+1)
			if !ok {
				return nil, false
			}
			seg := a
			if a == "*" {
				seg = witness(b)
			}
			return append([]string{seg}, w...), true
		}
		return nil, false
	}
	w, ok := walk(0, 0)
	if !ok {
		return ""
	}
	if len(w) == 0 {
		w = []string{"x"} // both match any name: pick one
	}
	return strings.Join(w, "/")
}

// witness is a component matched by the segment s.
func witness(s string) string {
	if s == "*" || s == "**" {
		return "x"
	}
	return s
}
