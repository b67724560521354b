package oci

import "testing"

func FuzzParseManifest(f *testing.F) {
	f.Add(MediaTypeImageManifest, []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"a","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":2},"layers":[]}`))
	f.Add(MediaTypeImageIndex, []byte(`{"schemaVersion":2,"manifests":[{"mediaType":"a","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":2}],"subject":{"mediaType":"b","digest":"sha512:00","size":1}}`))
	f.Add("", []byte(`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[]}`))
	f.Add("text/plain; x", []byte(`null`))
	f.Fuzz(func(t *testing.T, ct string, data []byte) {
		p, err := ParseManifest(ct, data)
		if err != nil {
			if _, ok := err.(*InvalidManifestError); !ok {
				t.Fatalf("error is %T, want *InvalidManifestError", err)
			}
			return
		}
		for _, r := range append(append([]Ref{}, p.Blobs...), p.Children...) {
			if r.Digest.Validate() != nil || r.Size < 0 {
				t.Fatalf("invalid reference accepted: %+v", r)
			}
		}
	})
}
