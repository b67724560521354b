// Package oci is berth's one home for the OCI vocabulary: the grammars of
// repository names, tags and digests, the media types berth knows, the
// descriptor and manifest shapes, and the parsers of manifests (the strict
// one a push goes through, and the lenient one garbage collection uses).
// The types of the image-spec are used where they fit; Descriptor and
// Manifest here are the lenient union berth reads (unknown fields and
// foreign shapes are ignored, not refused).
package oci

import (
	"regexp"
	"strings"
)

// MaxNameLength bounds a repository name (distribution's limit), so a name
// always fits in a path on every backend.
const MaxNameLength = 255

var (
	// componentRE is one path component of a repository name
	// (distribution-spec).
	componentRE = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)
	// tagRE is the tag grammar (distribution-spec).
	tagRE = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
)

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

// ValidRepoComponent reports whether c is one path component of a valid
// repository name.
func ValidRepoComponent(c string) bool { return componentRE.MatchString(c) }

// ValidTag reports whether tag matches the distribution-spec tag grammar.
func ValidTag(tag string) bool { return tagRE.MatchString(tag) }
