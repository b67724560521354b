package oci

import (
	"encoding/json"
	"testing"
)

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

// FuzzReadDescriptor: ReadDescriptor reads what json.Unmarshal reads (its
// fast paths included), whenever json.Unmarshal accepts the descriptor.
func FuzzReadDescriptor(f *testing.F) {
	f.Add(`{"mediaType":"a","digest":"sha256:00","size":12,"artifactType":"x","annotations":{"k":"v","t":"w"},"platform":{"os":"linux","architecture":"arm64"}}`)
	f.Add(`{"MEDIATYPE":"a\u00e9","size":-1,"size":2,"digest":null,"platform":null}`)
	f.Add(`{"size":12345678901234567890}`)
	f.Add("{\"mediaType\":\"\xff\"}")
	f.Fuzz(func(t *testing.T, s string) {
		var want struct {
			MediaType    string            `json:"mediaType"`
			Digest       string            `json:"digest"`
			Size         int64             `json:"size"`
			ArtifactType string            `json:"artifactType"`
			Annotations  map[string]string `json:"annotations"`
			Platform     *Platform         `json:"platform"`
		}
		if json.Unmarshal([]byte(s), &want) != nil {
			return
		}
		got, err := ReadDescriptor([]byte(s), []string{"t"})
		if err != nil {
			t.Fatalf("ReadDescriptor(%s): %v; json.Unmarshal accepts it", s, err)
		}
		if got.MediaType != want.MediaType || string(got.Digest) != want.Digest || got.Size != want.Size ||
			got.ArtifactType != want.ArtifactType || got.Platform.String() != want.Platform.String() ||
			got.Annotations["t"] != want.Annotations["t"] || len(got.Annotations) > 1 {
			t.Fatalf("ReadDescriptor(%s) = %+v, json.Unmarshal: %+v", s, got, want)
		}
	})
}
