package oci

import (
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"
)

// TestReferences: what garbage collection marks of a manifest (the
// collector itself runs against both backends in internal/storage/storagetest).
func TestReferences(t *testing.T) {
	d := func(s string) digest.Digest { return digest.FromString(s) }
	tests := []struct {
		name            string
		data            string
		blobs, children []digest.Digest
	}{
		{"oci image", `{"schemaVersion":2,"config":{"digest":"` + d("c").String() + `"},"layers":[{"digest":"` + d("l1").String() + `"},{"digest":"` + d("l2").String() + `"}],"subject":{"digest":"` + d("s").String() + `"}}`,
			[]digest.Digest{d("c"), d("l1"), d("l2")}, nil},
		{"index", `{"schemaVersion":2,"manifests":[{"digest":"` + d("m1").String() + `"},{"digest":"` + d("m2").String() + `"}]}`,
			nil, []digest.Digest{d("m1"), d("m2")}},
		{"artifact manifest", `{"mediaType":"application/vnd.oci.artifact.manifest.v1+json","blobs":[{"digest":"` + d("b").String() + `"}]}`,
			[]digest.Digest{d("b")}, nil},
		{"not json", `{"config":`, nil, nil},
		{"wrong shapes", `{"config":"x","layers":{}}`, nil, nil},
	}
	for _, tc := range tests {
		blobs, children := References([]byte(tc.data))
		if !slices.Equal(blobs, tc.blobs) || !slices.Equal(children, tc.children) {
			t.Errorf("%s: References = %v, %v; want %v, %v", tc.name, blobs, children, tc.blobs, tc.children)
		}
	}
}
