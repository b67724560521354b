package registry

import (
	_ "crypto/sha256" // registers sha256 for go-digest
	_ "crypto/sha512" // registers sha512 for go-digest

	"github.com/opencontainers/go-digest"
)

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
