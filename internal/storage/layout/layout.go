// Package layout holds what every storage backend validates and encodes the
// same way: digests, repository names, tags, upload ids and the content of a
// manifest revision link. Backends differ in where they keep things, not in
// what a valid name is.
package layout

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"regexp"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/storage"
)

var (
	// ErrInvalidName is wrapped by errors for a repository name, tag or upload
	// id that does not match its grammar.
	ErrInvalidName = errors.New("storage: invalid name")
	// ErrInvalidDigest is wrapped by errors for a malformed digest.
	ErrInvalidDigest = errors.New("storage: invalid digest")

	repoComponentRE = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)
	tagRE           = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
)

// Digest is a parsed sha256 or sha512 digest.
type Digest struct {
	D   digest.Digest
	Alg string
	Hex string
}

// ParseDigest accepts sha256 and sha512 digests in canonical lowercase hex. An
// unknown algorithm wraps storage.ErrUnsupportedDigest, anything else
// malformed wraps ErrInvalidDigest.
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
		return Digest{}, fmt.Errorf("digest %q: %w", s, storage.ErrUnsupportedDigest)
	}
	if len(enc) != n || !IsLowerHex(enc) {
		return Digest{}, fmt.Errorf("digest %q: %w", s, ErrInvalidDigest)
	}
	return Digest{D: d, Alg: alg, Hex: enc}, nil
}

// LookupDigest is ParseDigest for lookups: a malformed digest names nothing
// stored, so the error also wraps unknown.
func LookupDigest(d digest.Digest, unknown error) (Digest, error) {
	g, err := ParseDigest(d)
	if err != nil && errors.Is(err, ErrInvalidDigest) {
		return g, fmt.Errorf("%w: %w", err, unknown)
	}
	return g, err
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

// ValidRepo reports whether repo matches the distribution-spec name grammar
// (at most 255 characters).
func ValidRepo(repo string) bool {
	if repo == "" || len(repo) > 255 {
		return false
	}
	for c := range strings.SplitSeq(repo, "/") {
		if !ValidRepoComponent(c) {
			return false
		}
	}
	return true
}

// RandomHex returns n random bytes in lowercase hex (upload ids are
// RandomHex(16)).
func RandomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails
	return hex.EncodeToString(b)
}

// ValidUploadID reports whether id is an upload id: RandomHex(16).
func ValidUploadID(id string) bool { return len(id) == 32 && IsLowerHex(id) }

// NameErr is the error for an invalid name; unknown, if not nil, is wrapped
// too (a lookup of an invalid name finds nothing).
func NameErr(what, name string, unknown error) error {
	if unknown != nil {
		return fmt.Errorf("%s %q: %w: %w", what, name, ErrInvalidName, unknown)
	}
	return fmt.Errorf("%s %q: %w", what, name, ErrInvalidName)
}

// CheckTag refuses a tag outside the OCI tag grammar.
func CheckTag(tag string, unknown error) error {
	if !ValidTag(tag) {
		return NameErr("tag", tag, unknown)
	}
	return nil
}

// ValidTag reports whether tag matches the OCI tag grammar.
func ValidTag(tag string) bool { return tagRE.MatchString(tag) }

// ValidRepoComponent reports whether c is one path component of a valid
// repository name.
func ValidRepoComponent(c string) bool { return repoComponentRE.MatchString(c) }

// FormatRevision is the content of a revision link: the media type, and the
// subject digest on a second line when there is one.
func FormatRevision(mediaType string, subject digest.Digest) []byte {
	if subject == "" {
		return []byte(mediaType)
	}
	return []byte(mediaType + "\n" + string(subject))
}

// ParseRevision reads what FormatRevision wrote.
func ParseRevision(b []byte) (mediaType string, subject digest.Digest) {
	mt, subj, _ := strings.Cut(string(b), "\n")
	return mt, digest.Digest(strings.TrimSpace(subj))
}

// ReferrerName is the entry name of a referrer in a subject's referrer list.
func ReferrerName(g Digest) string { return g.Alg + "-" + g.Hex }

// CheckedManifest is a PutManifestRequest whose parts were validated.
type CheckedManifest struct {
	Digest  Digest
	Subject Digest // zero without a subject
	// Referrer is the referrers-index entry (JSON), nil without a subject.
	Referrer []byte
}

// CheckManifest validates what every backend's PutManifest must refuse before
// writing anything: a digest the bytes do not hash to (ErrDigestMismatch), a
// media type that cannot be stored on one line, an invalid tag or subject.
func CheckManifest(req storage.PutManifestRequest) (CheckedManifest, error) {
	m := req.Manifest
	g, err := ParseDigest(m.Digest)
	if err != nil {
		if errors.Is(err, ErrInvalidDigest) {
			return CheckedManifest{}, fmt.Errorf("%w: %w", err, storage.ErrDigestMismatch)
		}
		return CheckedManifest{}, err
	}
	h := NewHash(g.Alg)
	h.Write(m.Data)
	if got := HashDigest(g.Alg, h); got != m.Digest {
		return CheckedManifest{}, fmt.Errorf("manifest is %s, not %s: %w", got, m.Digest, storage.ErrDigestMismatch)
	}
	if strings.ContainsAny(m.MediaType, "\r\n\x00") {
		return CheckedManifest{}, fmt.Errorf("invalid media type %q", m.MediaType)
	}
	for _, tag := range req.Tags {
		if err := CheckTag(tag, nil); err != nil {
			return CheckedManifest{}, err
		}
	}
	c := CheckedManifest{Digest: g}
	if req.Subject != "" {
		if c.Subject, err = ParseDigest(req.Subject); err != nil {
			return CheckedManifest{}, fmt.Errorf("subject: %w", err)
		}
		// Without HTML escaping an annotation full of '<' is not stored six
		// times its size (the referrers API serves these bytes as they are).
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(req.Referrer); err != nil {
			return CheckedManifest{}, fmt.Errorf("referrer: %w", err)
		}
		c.Referrer = bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	}
	return c, nil
}
