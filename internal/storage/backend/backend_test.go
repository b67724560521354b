package backend

import (
	"errors"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/oci"
	"github.com/berth-registry/berth/internal/storage"
)

func TestParseDigest(t *testing.T) {
	ok := digest.FromString("x")
	if g, err := ParseDigest(ok); err != nil || g.Alg != "sha256" || g.Hex != ok.Encoded() || g.D != ok {
		t.Fatalf("ParseDigest(%s) = %+v, %v", ok, g, err)
	}
	for d, want := range map[digest.Digest]error{
		"md5:00":                                storage.ErrUnsupportedDigest,
		"sha256:ABC":                            ErrInvalidDigest,
		"sha256:" + "0":                         ErrInvalidDigest,
		"nocolon":                               ErrInvalidDigest,
		digest.Digest("sha512:" + ok.Encoded()): ErrInvalidDigest, // wrong length
	} {
		if _, err := ParseDigest(d); !errors.Is(err, want) {
			t.Errorf("ParseDigest(%q) = %v, want %v", d, err, want)
		}
	}
	if _, err := LookupDigest("sha256:zz", storage.ErrBlobUnknown); !errors.Is(err, storage.ErrBlobUnknown) {
		t.Errorf("LookupDigest does not wrap unknown: %v", err)
	}
}

func TestNames(t *testing.T) {
	for repo, want := range map[string]bool{"a": true, "a/b-c/d__e.f": true, "": false, "A": false, "a//b": false, "../a": false, "a/": false} {
		if oci.ValidRepo(repo) != want {
			t.Errorf("ValidRepo(%q) != %v", repo, want)
		}
	}
	if CheckTag("v1.0", nil) != nil || !errors.Is(CheckTag("-x", storage.ErrTagUnknown), storage.ErrTagUnknown) {
		t.Error("CheckTag")
	}
	if id := RandomHex(16); !ValidUploadID(id) || ValidUploadID(id[:31]) {
		t.Errorf("upload id %q", id)
	}
	mt, subj := ParseRevision(FormatRevision("application/x", "sha256:00"))
	if mt != "application/x" || subj != "sha256:00" {
		t.Errorf("revision round trip: %q %q", mt, subj)
	}
}
