// Package oci is berth's one home for the OCI vocabulary: the grammars of
// repository names, tags and digests, the media types berth knows, the
// descriptor and manifest shapes, and the parsers of manifests (the strict
// one a push goes through, and the lenient one garbage collection uses).
// The types of the image-spec are used where they fit; Descriptor and
// Manifest here are the lenient union berth reads (unknown fields and
// foreign shapes are ignored, not refused).
package oci

import "strings"

// MaxNameLength bounds a repository name (distribution's limit), so a name
// always fits in a path on every backend.
const MaxNameLength = 255

// ValidRepo reports whether repo is a repository name per the
// distribution-spec grammar (components joined by "/", at most
// MaxNameLength characters).
func ValidRepo(repo string) bool {
	if repo == "" || len(repo) > MaxNameLength {
		return false
	}
	for c := range strings.SplitSeq(repo, "/") {
		if !ValidRepoComponent(c) {
			return false
		}
	}
	return true
}

// The grammars are matched by hand, not with regexp: every request checks a
// name (and a manifest GET a tag), and the regexps were a tenth of a cached
// manifest GET's CPU. names_test.go checks them against the
// distribution-spec's regular expressions.

// ValidRepoComponent reports whether c is one path component of a valid
// repository name: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*.
func ValidRepoComponent(c string) bool {
	i, n := 0, len(c)
	for {
		j := i
		for j < n && (c[j] >= 'a' && c[j] <= 'z' || c[j] >= '0' && c[j] <= '9') {
			j++
		}
		switch {
		case j == i:
			return false // empty run: leading, doubled or trailing separator
		case j == n:
			return true
		}
		switch c[j] {
		case '.':
			j++
		case '_':
			j++
			if j < n && c[j] == '_' {
				j++
			}
		case '-':
			for j < n && c[j] == '-' {
				j++
			}
		default:
			return false
		}
		i = j
	}
}

// ValidTag reports whether tag matches the distribution-spec tag grammar:
// [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}.
func ValidTag(tag string) bool {
	if tag == "" || len(tag) > 128 || tag[0] == '.' || tag[0] == '-' {
		return false
	}
	for i := 0; i < len(tag); i++ {
		c := tag[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}
