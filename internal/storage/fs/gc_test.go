package fs

import (
	"path/filepath"
	"testing"

	"github.com/berth-registry/berth/internal/storage/layout"
	"github.com/berth-registry/berth/internal/storage/storagetest"
)

// BenchmarkGC: 1000 images of 8 layers (10,000 blobs) in 100 repositories,
// a fifth of them deleted.
func BenchmarkGC(b *testing.B) {
	st := newStore(b)
	images := storagetest.GCBenchImages(1000, 8)
	for _, img := range images {
		rdir, err := st.repoDir(img.Repo, nil)
		if err != nil {
			b.Fatal(err)
		}
		for d, data := range img.Blobs {
			g, _ := layout.ParseDigest(d)
			must(b, writeFileAtomic(st.blobPath(g), data))
			must(b, writeFileAtomic(blobLinkPath(rdir, g), []byte(d)))
		}
		g, _ := layout.ParseDigest(img.Manifest.Digest)
		must(b, writeFileAtomic(st.blobPath(g), img.Manifest.Data))
		if img.Live {
			must(b, writeFileAtomic(revisionPath(rdir, g), layout.FormatRevision(img.Manifest.MediaType, "")))
			must(b, writeFileAtomic(filepath.Join(tagsDir(rdir), img.Tag), []byte(img.Manifest.Digest)))
		}
	}
	storagetest.BenchmarkGC(b, st, images)
}
