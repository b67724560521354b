package oci

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strings"

	"github.com/opencontainers/go-digest"
)

var (
	// ErrInvalidDigest is wrapped by errors for a malformed digest.
	ErrInvalidDigest = errors.New("oci: invalid digest")
	// ErrUnsupportedDigest is wrapped by errors for a digest of an
	// algorithm berth does not store (sha256 and sha512 only).
	ErrUnsupportedDigest = errors.New("oci: unsupported digest algorithm")
)

// Digest is a parsed sha256 or sha512 digest.
type Digest struct {
	D   digest.Digest
	Alg string
	Hex string
}

// ParseDigest accepts sha256 and sha512 digests in canonical lowercase hex.
// An unknown algorithm wraps ErrUnsupportedDigest, anything else malformed
// wraps ErrInvalidDigest.
func ParseDigest(d digest.Digest) (Digest, error) {
	s := string(d)
	alg, enc, ok := strings.Cut(s, ":")
	if !ok || alg == "" {
		return Digest{}, fmt.Errorf("digest %q: %w", s, ErrInvalidDigest)
	}
	var n int
	switch alg {
	case "sha256":
		n = 64
	case "sha512":
		n = 128
	default:
		return Digest{}, fmt.Errorf("digest %q: %w", s, ErrUnsupportedDigest)
	}
	if len(enc) != n || !IsLowerHex(enc) {
		return Digest{}, fmt.Errorf("digest %q: %w", s, ErrInvalidDigest)
	}
	return Digest{D: d, Alg: alg, Hex: enc}, nil
}

// IsLowerHex reports whether s is lowercase hexadecimal.
func IsLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// NewHash returns a hash for the algorithm (sha512, else sha256).
func NewHash(alg string) hash.Hash {
	if alg == "sha512" {
		return sha512.New()
	}
	return sha256.New()
}

// HashDigest is the digest of what h has hashed.
func HashDigest(alg string, h hash.Hash) digest.Digest {
	return digest.Digest(alg + ":" + hex.EncodeToString(h.Sum(nil)))
}
