package gc_test

import (
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/gc"
)

// The collector itself runs against both backends in
// internal/storage/storagetest (gc.go); this tests the manifest parsing.
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
		blobs, children := gc.References([]byte(tc.data))
		if !slices.Equal(blobs, tc.blobs) || !slices.Equal(children, tc.children) {
			t.Errorf("%s: References = %v, %v; want %v, %v", tc.name, blobs, children, tc.blobs, tc.children)
		}
	}
}

func TestReportString(t *testing.T) {
	r := gc.Report{DryRun: true, Blobs: 3, Bytes: 1234, Manifests: 1, Links: 2, TempFiles: 1, TempBytes: 77, Repositories: 5}
	want := "would free 3 blobs (1234 bytes), 1 untagged manifests, 2 repository links, 1 stale temp files (77 bytes); 5 repositories scanned, 0 kept (in use), 0s"
	if got := r.String(); got != want {
		t.Errorf("String() = %q\nwant %q", got, want)
	}
	r.DryRun = false
	if got := r.String(); got[:6] != "freed " {
		t.Errorf("String() = %q, want it to start with \"freed \"", got)
	}
}
