package storagetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/gc"
	"github.com/berth-registry/berth/internal/storage"
)

// BenchImage is one image of the GC benchmark's data set.
type BenchImage struct {
	Repo, Tag string
	Manifest  storage.Manifest
	Blobs     map[digest.Digest][]byte // config and layers
	Live      bool                     // false: the manifest is not linked (deleted)
}

// GCBenchImages returns n images of layersPer layers each, spread over
// repositories of ten images; every fifth image is deleted (not Live). The
// data set holds n*(layersPer+2) blobs. Backends write it straight into their
// layout (uploading it through the API would dominate the benchmark's setup).
func GCBenchImages(n, layersPer int) []BenchImage {
	out := make([]BenchImage, n)
	for i := range out {
		name := fmt.Sprintf("bench-%d", i)
		img := BenchImage{Repo: fmt.Sprintf("bench/r%03d", i/10), Tag: fmt.Sprintf("v%d", i%10), Blobs: map[digest.Digest][]byte{}, Live: i%5 != 0}
		config := content("config-"+name, 200)
		cd := sha256Digest(config)
		img.Blobs[cd] = config
		layers := map[digest.Digest][]byte{}
		var order []digest.Digest
		for l := range layersPer {
			b := content(fmt.Sprintf("layer-%s-%d", name, l), 1024)
			d := sha256Digest(b)
			layers[d], img.Blobs[d] = b, b
			order = append(order, d)
		}
		img.Manifest = imageManifest(cd, len(config), layers, order, nil)
		out[i] = img
	}
	return out
}

// BenchmarkGC measures a dry run (mark and walk: what every run does before
// it deletes) over st, which holds images, and then one real run, reported as
// sweep-s. It checks that the real run frees exactly the deleted images.
func BenchmarkGC(b *testing.B, st gc.Store, images []BenchImage) {
	var wantBlobs int
	var total int
	for _, img := range images {
		total += len(img.Blobs) + 1
		if !img.Live {
			wantBlobs += len(img.Blobs) + 1
		}
	}
	o := gc.Options{GracePeriod: 30 * time.Minute, Now: func() time.Time { return time.Now().Add(time.Hour) }}
	dry := o
	dry.DryRun = true
	var rep gc.Report
	var err error
	for b.Loop() {
		rep, err = gc.Run(b.Context(), st, dry)
		if err != nil {
			b.Fatal(err)
		}
	}
	if rep.Blobs != wantBlobs {
		b.Fatalf("dry run: %s; want %d blobs", rep, wantBlobs)
	}
	b.ReportMetric(float64(total), "blobs")
	start := time.Now()
	rep, err = gc.Run(b.Context(), st, o)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(time.Since(start).Seconds(), "sweep-s")
	if rep.Blobs != wantBlobs {
		b.Fatalf("real run: %s; want %d blobs", rep, wantBlobs)
	}
}
