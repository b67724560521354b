// Package backend holds what every storage backend checks and encodes the
// same way: the checks of a request (digests, tags and manifests, with the
// storage errors), upload ids, the content of a manifest revision link and
// the name of a referrer entry. Backends differ in where they keep things,
// not in what a valid name is: the grammars themselves are package oci's.
package backend

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/oci"
	"github.com/berth-registry/berth/internal/storage"
)

var (
	// ErrInvalidName is wrapped by errors for a repository name, tag or upload
	// id that does not match its grammar.
	ErrInvalidName = errors.New("storage: invalid name")
	// ErrInvalidDigest is wrapped by errors for a malformed digest.
	ErrInvalidDigest = errors.New("storage: invalid digest")
)

// ParseDigest is oci.ParseDigest with the storage errors: an unknown
// algorithm wraps storage.ErrUnsupportedDigest, anything else malformed
// wraps ErrInvalidDigest.
func ParseDigest(d digest.Digest) (oci.Digest, error) {
	g, err := oci.ParseDigest(d)
	switch {
	case err == nil:
		return g, nil
	case errors.Is(err, oci.ErrUnsupportedDigest):
		return g, fmt.Errorf("digest %q: %w", string(d), storage.ErrUnsupportedDigest)
	default:
		return g, fmt.Errorf("digest %q: %w", string(d), ErrInvalidDigest)
	}
}

// LookupDigest is ParseDigest for lookups: a malformed digest names nothing
// stored, so the error also wraps unknown.
func LookupDigest(d digest.Digest, unknown error) (oci.Digest, error) {
	g, err := ParseDigest(d)
	if err != nil && errors.Is(err, ErrInvalidDigest) {
		return g, fmt.Errorf("%w: %w", err, unknown)
	}
	return g, err
}

// RandomHex returns n random bytes in lowercase hex (upload ids are
// RandomHex(16)).
func RandomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails
	return hex.EncodeToString(b)
}

// ValidUploadID reports whether id is an upload id: RandomHex(16).
func ValidUploadID(id string) bool { return len(id) == 32 && oci.IsLowerHex(id) }

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
	if !oci.ValidTag(tag) {
		return NameErr("tag", tag, unknown)
	}
	return nil
}

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
func ReferrerName(g oci.Digest) string { return g.Alg + "-" + g.Hex }

// CheckedManifest is a PutManifestRequest whose parts were validated.
type CheckedManifest struct {
	Digest  oci.Digest
	Subject oci.Digest // zero without a subject
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
	h := oci.NewHash(g.Alg)
	h.Write(m.Data)
	if got := oci.HashDigest(g.Alg, h); got != m.Digest {
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
