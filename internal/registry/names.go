package registry

import (
	_ "crypto/sha256" // registers sha256 for go-digest
	_ "crypto/sha512" // registers sha512 for go-digest
	"regexp"

	"github.com/opencontainers/go-digest"
)

// maxNameLength bounds a repository name (distribution's limit), so a name
// always fits in a path on every backend.
const maxNameLength = 255

var (
	nameRe = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$`)
	tagRe  = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
)

// validName reports whether s is a repository name per the distribution-spec grammar.
func validName(s string) bool {
	return len(s) <= maxNameLength && nameRe.MatchString(s)
}

// validTag reports whether s is a tag per the distribution-spec grammar.
func validTag(s string) bool { return tagRe.MatchString(s) }

// parseDigest parses a digest and accepts only the algorithms berth stores.
func parseDigest(s string) (digest.Digest, error) {
	d, err := digest.Parse(s)
	if err != nil {
		return "", errf(CodeDigestInvalid, "invalid digest %q", truncate(s, 150))
	}
	switch d.Algorithm() {
	case digest.SHA256, digest.SHA512:
		return d, nil
	}
	return "", errf(CodeDigestInvalid, "unsupported digest algorithm %q (sha256 and sha512 are supported)", truncate(string(d.Algorithm()), 30))
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
