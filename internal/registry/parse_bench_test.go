package registry

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/opencontainers/go-digest"
)

// BenchmarkParseManifest: validating an image manifest of 500 layers and an
// index of 100 manifests (the CPU part of a manifest PUT).
func BenchmarkParseManifest(b *testing.B) {
	desc := func(mt string, i int) map[string]any {
		return map[string]any{"mediaType": mt, "digest": digest.FromString(fmt.Sprint(i)), "size": 1000 + i,
			"annotations": map[string]string{"org.opencontainers.image.title": fmt.Sprint("f", i)}}
	}
	layers, children := make([]any, 500), make([]any, 100)
	for i := range layers {
		layers[i] = desc("application/vnd.oci.image.layer.v1.tar+gzip", i)
	}
	for i := range children {
		children[i] = desc("application/vnd.oci.image.manifest.v1+json", i)
	}
	img, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": desc("application/vnd.oci.image.config.v1+json", -1), "layers": layers})
	idx, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": children})
	for _, c := range []struct {
		name, ct string
		data     []byte
	}{{"image", "application/vnd.oci.image.manifest.v1+json", img}, {"index", "application/vnd.oci.image.index.v1+json", idx}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := parseManifest(c.ct, c.data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
