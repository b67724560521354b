package s3

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/berth-registry/berth/internal/storage"
	"github.com/berth-registry/berth/internal/storage/backend"
	"github.com/berth-registry/berth/internal/storage/storagetest"
)

// TestPurgeOrphans: a session whose state object is gone (a removal
// interrupted halfway, or a replica that died while creating it) leaves a
// multipart upload and a staged tail; PurgeUploads removes both once they
// are older than the cutoff, besides the expired sessions themselves.
func TestPurgeOrphans(t *testing.T) {
	ctx := t.Context()
	st := openStore(t, testOptions(t, newPrefix()))
	orphan, err := st.BeginUpload(ctx, "repo")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.AppendUpload(ctx, "repo", orphan.ID, 0, bytes.NewReader([]byte("staged tail"))); err != nil {
		t.Fatal(err)
	}
	if err := st.del(ctx, st.uploadKey(orphan.ID)+keyState); err != nil {
		t.Fatal(err)
	}
	expired, err := st.BeginUpload(ctx, "repo")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.AppendUpload(ctx, "repo", expired.ID, 0, bytes.NewReader([]byte("more"))); err != nil {
		t.Fatal(err)
	}

	uploads := func() (objects, mpus int) {
		t.Helper()
		prefix := st.prefix + "_uploads/"
		out, err := st.c.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: &st.bucket, Prefix: aws.String(prefix)})
		if err != nil {
			t.Fatal(err)
		}
		mp, err := st.c.ListMultipartUploads(ctx, &awss3.ListMultipartUploadsInput{Bucket: &st.bucket, Prefix: aws.String(prefix)})
		if err != nil {
			t.Fatal(err)
		}
		return len(out.Contents), len(mp.Uploads)
	}
	if o, m := uploads(); o != 3 || m != 2 {
		t.Fatalf("before purge: %d objects, %d multipart uploads; want 3 (orphan tail, expired state and tail) and 2", o, m)
	}
	// Nothing is old yet.
	if n, err := st.PurgeUploads(ctx, time.Now().Add(-time.Hour)); err != nil || n != 0 {
		t.Fatalf("PurgeUploads (nothing old) = %d, %v", n, err)
	}
	if o, m := uploads(); o != 3 || m != 2 {
		t.Fatalf("a purge with an old cutoff removed something: %d objects, %d multipart uploads", o, m)
	}
	n, err := st.PurgeUploads(ctx, time.Now().Add(time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("PurgeUploads = %d, %v; want 1 session", n, err)
	}
	if o, m := uploads(); o != 0 || m != 0 {
		t.Fatalf("after purge: %d objects, %d multipart uploads left under _uploads/", o, m)
	}
}

// BenchmarkGC: 1000 images of 8 layers (10,000 blobs) in 100 repositories,
// a fifth of them deleted, on versitygw.
func BenchmarkGC(b *testing.B) {
	st, err := New(b.Context(), Options{Endpoint: server(b), Bucket: testBucket, KeyPrefix: newPrefix(),
		AccessKeyID: testAccess, SecretKey: testSecret, PathStyle: true})
	if err != nil {
		b.Fatal(err)
	}
	images := storagetest.GCBenchImages(1000, 8)
	type obj struct {
		key  string
		data []byte
	}
	var objs []obj
	for _, img := range images {
		rk, err := st.repoKey(img.Repo, nil)
		if err != nil {
			b.Fatal(err)
		}
		objs = append(objs, obj{st.reposKey() + encodeRepo(img.Repo), nil})
		for d, data := range img.Blobs {
			g, _ := backend.ParseDigest(d)
			objs = append(objs, obj{st.blobKey(g), data}, obj{linkKey(rk, g), []byte(d)})
		}
		g, _ := backend.ParseDigest(img.Manifest.Digest)
		objs = append(objs, obj{st.blobKey(g), img.Manifest.Data})
		if img.Live {
			objs = append(objs, obj{revisionKey(rk, g), backend.FormatRevision(img.Manifest.MediaType, "")},
				obj{tagsKey(rk) + img.Tag, []byte(img.Manifest.Digest)})
		}
	}
	work := make(chan obj)
	var wg sync.WaitGroup
	var failed atomic.Value
	for range 16 {
		wg.Go(func() {
			for o := range work {
				if err := st.put(b.Context(), o.key, o.data); err != nil {
					failed.Store(err)
				}
			}
		})
	}
	for _, o := range objs {
		work <- o
	}
	close(work)
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	storagetest.BenchmarkGC(b, st, images)
}

// recordingLocker is a Locker that records the names it locks.
type recordingLocker struct {
	mu    sync.Mutex
	names []string
}

func (l *recordingLocker) Lock(_ context.Context, name string) (func(), error) {
	l.mu.Lock()
	l.names = append(l.names, name)
	l.mu.Unlock()
	return func() {}, nil
}

func (l *recordingLocker) count(name string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, x := range l.names {
		if x == name {
			n++
		}
	}
	return n
}

// TestBlobLockAcrossProcesses: with a Locker (Redis across replicas),
// marking a blob used and deleting it take the same named lock, so a
// collector in another process cannot delete between a push's mark and its
// look at the content.
func TestBlobLockAcrossProcesses(t *testing.T) {
	ctx := t.Context()
	lk := &recordingLocker{}
	opts := testOptions(t, newPrefix())
	opts.Locker = lk
	st := openStore(t, opts)
	b := []byte("locked layer")
	d := sha256Of(b)
	u, err := st.BeginUpload(ctx, "repo")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.AppendUpload(ctx, "repo", u.ID, 0, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CommitUpload(ctx, "repo", u.ID, d); err != nil {
		t.Fatal(err)
	}
	name := "blob:" + testBucket + "/" + st.prefix + "sha256:" + d.Encoded()
	if n := lk.count(name); n != 0 {
		t.Fatalf("a first commit took the blob lock %d times (nothing to protect yet)", n)
	}
	if _, err := st.MountBlob(ctx, "other", "repo", d); err != nil {
		t.Fatal(err)
	}
	if n := lk.count(name); n != 1 {
		t.Fatalf("MountBlob took the blob lock %d times, want 1", n)
	}
	if _, err := st.DeleteBlobContent(ctx, d, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n := lk.count(name); n != 2 {
		t.Fatalf("DeleteBlobContent took the blob lock %d times in all, want 2", n)
	}

	// Pushing a manifest and unlinking it as untagged take the same lock.
	m := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}`)
	md := sha256Of(m)
	if err := st.PutManifest(ctx, "repo", storage.PutManifestRequest{Manifest: storage.Manifest{Digest: md, MediaType: "application/vnd.oci.image.manifest.v1+json", Data: m}}); err != nil {
		t.Fatal(err)
	}
	mname := "manifest:" + testBucket + "/" + st.prefix + "repo@sha256:" + md.Encoded()
	if n := lk.count(mname); n != 1 {
		t.Fatalf("PutManifest took the manifest lock %d times, want 1", n)
	}
	if err := st.DeleteUntaggedManifest(ctx, "repo", md, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n := lk.count(mname); n != 2 {
		t.Fatalf("DeleteUntaggedManifest took the manifest lock %d times in all, want 2", n)
	}
}
