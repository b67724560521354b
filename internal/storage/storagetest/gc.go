package storagetest

// The garbage-collection contract: every backend implements
// storage.Collector, and internal/gc run against it frees what is no longer
// referenced and nothing else, also while pushes continue.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/gc"
	"github.com/berth-registry/berth/internal/storage"
)

// gcTests are added to the contract suite by RunWithReopen.
var gcTests = []struct {
	name string
	fn   func(t *testing.T, st storage.Store)
}{
	{"GCDeleteManifestFreesSpace", testGCDeleteManifest},
	{"GCDeleteTagUntagged", testGCDeleteTag},
	{"GCReferrersAndIndexChildren", testGCReferrers},
	{"GCGracePeriod", testGCGracePeriod},
	{"GCConcurrentPushes", testGCConcurrentPushes},
	{"GCUseAfterMarkKeeps", testGCUseAfterMark},
}

func collector(t *testing.T, st storage.Store) gc.Store {
	t.Helper()
	c, ok := st.(gc.Store)
	if !ok {
		t.Fatalf("%T does not implement storage.Collector", st)
	}
	return c
}

// later runs the collector as if it were an hour from now with a grace
// period of 30 minutes: everything stored so far is past its grace period.
func later(o gc.Options) gc.Options {
	o.Now = func() time.Time { return time.Now().Add(time.Hour) }
	o.GracePeriod = 30 * time.Minute
	return o
}

func runGC(t *testing.T, st storage.Store, o gc.Options) gc.Report {
	t.Helper()
	rep, err := gc.Run(t.Context(), collector(t, st), o)
	noErr(t, err, "gc.Run")
	return rep
}

// image is a pushed image: config, layers and the manifest.
type image struct {
	repo     string
	manifest storage.Manifest
	blobs    map[digest.Digest][]byte
}

// imageManifest returns the bytes of an image manifest over config and layers.
func imageManifest(config digest.Digest, configSize int, layers map[digest.Digest][]byte, order []digest.Digest, subject *storage.Manifest) storage.Manifest {
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[`, manifestType, config, configSize)
	for i, d := range order {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}`, d, len(layers[d]))
	}
	b.WriteByte(']')
	if subject != nil {
		fmt.Fprintf(&b, `,"subject":{"mediaType":%q,"digest":%q,"size":%d}`, subject.MediaType, subject.Digest, len(subject.Data))
	}
	b.WriteByte('}')
	return storage.Manifest{Digest: sha256Digest(b.Bytes()), MediaType: manifestType, Data: b.Bytes()}
}

// pushImage uploads a config and the given layers (shared ones are uploaded
// again, as a client that does not check would) and pushes the manifest.
func pushImage(t *testing.T, st storage.Store, repo, name string, shared [][]byte, subject *storage.Manifest, tags ...string) image {
	t.Helper()
	img := image{repo: repo, blobs: map[digest.Digest][]byte{}}
	config := content("config-"+name, 300)
	cd := uploadBlob(t, st, repo, config)
	img.blobs[cd] = config
	layers := map[digest.Digest][]byte{}
	var order []digest.Digest
	for _, l := range append(shared, content("layer-"+name, 40_000)) {
		d := uploadBlob(t, st, repo, l)
		layers[d] = l
		img.blobs[d] = l
		order = append(order, d)
	}
	img.manifest = imageManifest(cd, len(config), layers, order, subject)
	req := storage.PutManifestRequest{Manifest: img.manifest, Tags: tags, Refs: append([]digest.Digest{cd}, order...)}
	if subject != nil {
		req.Subject = subject.Digest
		req.Referrer = storage.Descriptor{MediaType: manifestType, Digest: img.manifest.Digest, Size: int64(len(img.manifest.Data))}
	}
	noErr(t, st.PutManifest(t.Context(), repo, req), "PutManifest "+repo+" "+name)
	return img
}

// checkImage verifies the whole image can be pulled.
func checkImage(t *testing.T, st storage.Store, img image) {
	t.Helper()
	checkManifest(t, st, img.repo, img.manifest)
	for d, b := range img.blobs {
		checkBlob(t, st, img.repo, d, b)
	}
}

func (img image) size(unique ...digest.Digest) int64 {
	n := int64(len(img.manifest.Data))
	for _, d := range unique {
		n += int64(len(img.blobs[d]))
	}
	return n
}

func wantReport(t *testing.T, what string, got gc.Report, blobs int, bytes int64, manifests, links int) {
	t.Helper()
	if got.Blobs != blobs || got.Bytes != bytes || got.Manifests != manifests || got.Links != links {
		t.Fatalf("%s: %s; want %d blobs (%d bytes), %d untagged manifests, %d links", what, got, blobs, bytes, manifests, links)
	}
}

func testGCDeleteManifest(t *testing.T, st storage.Store) {
	ctx := t.Context()
	shared := content("shared-layer", 50_000)
	gone := pushImage(t, st, "app", "gone", [][]byte{shared}, nil, "v1")
	kept := pushImage(t, st, "other/app", "kept", [][]byte{shared}, nil, "v1")
	stray := uploadBlob(t, st, "app", content("never referenced", 1234))

	// Nothing is garbage yet: every manifest is linked.
	wantReport(t, "gc before delete", runGC(t, st, later(gc.Options{})), 1, 1234, 0, 1)

	noErr(t, st.DeleteManifest(ctx, "app", gone.manifest.Digest), "DeleteManifest")
	var goneConfig, goneLayer digest.Digest
	for d := range gone.blobs {
		if _, ok := kept.blobs[d]; ok {
			continue
		}
		if len(gone.blobs[d]) == 300 {
			goneConfig = d
		} else {
			goneLayer = d
		}
	}
	// The manifest bytes, its config and its own layer; their links in app
	// (config, layer and the shared layer's link stays: the content lives).
	wantBytes := gone.size(goneConfig, goneLayer)
	dry := runGC(t, st, later(gc.Options{DryRun: true}))
	wantReport(t, "dry run", dry, 3, wantBytes, 0, 2)
	if !dry.DryRun {
		t.Fatal("dry run report says it was not a dry run")
	}
	// A dry run deletes nothing.
	checkBlob(t, st, "app", goneLayer, gone.blobs[goneLayer])
	real := runGC(t, st, later(gc.Options{}))
	wantReport(t, "real run (must agree with the dry run)", real, dry.Blobs, dry.Bytes, dry.Manifests, dry.Links)
	blobUnknown(t, st, "app", goneLayer)
	blobUnknown(t, st, "app", goneConfig)
	blobUnknown(t, st, "app", stray)
	checkBlob(t, st, "app", sha256Digest(shared), shared)
	checkImage(t, st, kept)
	// Nothing left to free.
	wantReport(t, "second run", runGC(t, st, later(gc.Options{})), 0, 0, 0, 0)
	// Content swept can be pushed again.
	again := pushImage(t, st, "app", "gone", [][]byte{shared}, nil, "v1")
	checkImage(t, st, again)
}

func testGCDeleteTag(t *testing.T, st storage.Store) {
	ctx := t.Context()
	tagged := pushImage(t, st, "repo", "tagged", nil, nil, "keep")
	untag := pushImage(t, st, "repo", "untag", nil, nil, "drop")
	byDigest := pushImage(t, st, "repo", "bydigest", nil, nil)
	noErr(t, st.DeleteTag(ctx, "repo", "drop"), "DeleteTag")

	// By default untagged manifests are kept.
	wantReport(t, "gc keeping untagged", runGC(t, st, later(gc.Options{})), 0, 0, 0, 0)
	checkImage(t, st, untag)

	// With DeleteUntagged the untagged ones (older than the grace period) go.
	var unique []digest.Digest
	for d := range untag.blobs {
		unique = append(unique, d)
	}
	var unique2 []digest.Digest
	for d := range byDigest.blobs {
		unique2 = append(unique2, d)
	}
	want := untag.size(unique...) + byDigest.size(unique2...)
	dry := runGC(t, st, later(gc.Options{DeleteUntagged: true, DryRun: true}))
	wantReport(t, "dry run", dry, 6, want, 2, 4)
	// Within the grace period (real clock, one hour) nothing goes.
	rep := runGC(t, st, gc.Options{DeleteUntagged: true, GracePeriod: time.Hour})
	wantReport(t, "gc within grace", rep, 0, 0, 0, 0)
	rep = runGC(t, st, later(gc.Options{DeleteUntagged: true}))
	wantReport(t, "gc deleting untagged", rep, dry.Blobs, dry.Bytes, dry.Manifests, dry.Links)
	manifestUnknown(t, st, "repo", untag.manifest.Digest)
	manifestUnknown(t, st, "repo", byDigest.manifest.Digest)
	for d := range untag.blobs {
		blobUnknown(t, st, "repo", d)
	}
	checkImage(t, st, tagged)
}

func testGCReferrers(t *testing.T, st storage.Store) {
	ctx := t.Context()
	subject := pushImage(t, st, "repo", "subject", nil, nil, "v1")
	sig := pushImage(t, st, "repo", "signature", nil, &subject.manifest)
	sigOfSig := pushImage(t, st, "repo", "signature-of-signature", nil, &sig.manifest)
	orphanSubject := pushImage(t, st, "repo", "orphan-subject", nil, nil, "old")
	orphanSig := pushImage(t, st, "repo", "orphan-signature", nil, &orphanSubject.manifest)

	// A tagged index whose children are untagged.
	child1 := pushImage(t, st, "repo", "child1", nil, nil)
	child2 := pushImage(t, st, "repo", "child2", nil, nil)
	idx := storage.Manifest{MediaType: "application/vnd.oci.image.index.v1+json"}
	idx.Data = fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":%q,"digest":%q,"size":%d},{"mediaType":%q,"digest":%q,"size":%d}]}`,
		manifestType, child1.manifest.Digest, len(child1.manifest.Data), manifestType, child2.manifest.Digest, len(child2.manifest.Data))
	idx.Digest = sha256Digest(idx.Data)
	noErr(t, st.PutManifest(ctx, "repo", storage.PutManifestRequest{Manifest: idx, Tags: []string{"multi"},
		Refs: []digest.Digest{child1.manifest.Digest, child2.manifest.Digest}}), "PutManifest index")

	noErr(t, st.DeleteManifest(ctx, "repo", orphanSubject.manifest.Digest), "DeleteManifest orphan subject")

	runGC(t, st, later(gc.Options{DeleteUntagged: true}))
	for _, img := range []image{subject, sig, sigOfSig, child1, child2} {
		checkImage(t, st, img)
	}
	checkManifest(t, st, "repo", idx)
	refs, err := st.ListReferrers(ctx, "repo", subject.manifest.Digest)
	noErr(t, err, "ListReferrers")
	if len(refs) != 1 || refs[0].Digest != sig.manifest.Digest {
		t.Fatalf("referrers of the subject after gc = %v, want the signature", refs)
	}
	// The referrer of a deleted subject is untagged garbage.
	manifestUnknown(t, st, "repo", orphanSig.manifest.Digest)
	for d := range orphanSig.blobs {
		blobUnknown(t, st, "repo", d)
	}
	refs, err = st.ListReferrers(ctx, "repo", orphanSubject.manifest.Digest)
	noErr(t, err, "ListReferrers of the deleted subject")
	if len(refs) != 0 {
		t.Fatalf("referrers of the deleted subject after gc = %v, want none", refs)
	}
}

func testGCGracePeriod(t *testing.T, st storage.Store) {
	b := content("fresh upload", 5000)
	d := uploadBlob(t, st, "repo", b)
	// With the real clock the blob is well inside an hour's grace period.
	wantReport(t, "gc within grace", runGC(t, st, gc.Options{GracePeriod: time.Hour}), 0, 0, 0, 0)
	checkBlob(t, st, "repo", d, b)
	// Two hours later it is garbage.
	o := gc.Options{GracePeriod: time.Hour, Now: func() time.Time { return time.Now().Add(2 * time.Hour) }}
	wantReport(t, "gc after grace", runGC(t, st, o), 1, int64(len(b)), 0, 1)
	blobUnknown(t, st, "repo", d)
	// An upload session in progress is not blob content: it is untouched.
	u := begin(t, st, "repo")
	appendChunk(t, st, "repo", u.ID, 0, b)
	runGC(t, st, o)
	_, err := st.CommitUpload(t.Context(), "repo", u.ID, d)
	noErr(t, err, "CommitUpload after gc")
	checkBlob(t, st, "repo", d, b)
}

// testGCConcurrentPushes runs the collector in a loop while images are
// pushed that reuse a layer which is garbage (its only manifest was deleted
// long enough ago). Every push that succeeds must be fully pullable after;
// a push may only fail because its content was collected before the
// manifest (storage.ErrBlobUnknown, what a client sees as
// MANIFEST_BLOB_UNKNOWN and retries).
func testGCConcurrentPushes(t *testing.T, st storage.Store) {
	ctx := t.Context()
	const grace = time.Second
	base := content("base layer", 30_000)
	baseImg := pushImage(t, st, "base", "base", [][]byte{base}, nil, "v1")
	noErr(t, st.DeleteManifest(ctx, "base", baseImg.manifest.Digest), "DeleteManifest base")
	garbage := uploadBlob(t, st, "junk", content("junk", 10_000))
	// Let the garbage age past the grace period (and S3's one-second
	// Last-Modified precision).
	time.Sleep(2*grace + 500*time.Millisecond)

	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		runs     atomic.Int64
		freed    atomic.Int64
		gcErr    error
		pushed   []image
		failures atomic.Int64
		mu       sync.Mutex
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() || runs.Load() == 0 {
			rep, err := gc.Run(ctx, collector(t, st), gc.Options{GracePeriod: grace})
			if err != nil {
				gcErr = err
				return
			}
			runs.Add(1)
			freed.Add(int64(rep.Blobs))
		}
	}()
	const workers, perWorker = 3, 4
	var pw sync.WaitGroup
	errs := make(chan error, workers*perWorker)
	for w := range workers {
		pw.Add(1)
		go func() {
			defer pw.Done()
			for i := range perWorker {
				img, err := tryPush(ctx, st, fmt.Sprintf("w%d/img%d", w, i), fmt.Sprintf("%d-%d", w, i), base, "base")
				switch {
				case err == nil:
					mu.Lock()
					pushed = append(pushed, img)
					mu.Unlock()
				case errors.Is(err, storage.ErrBlobUnknown):
					failures.Add(1)
				default:
					errs <- err
				}
			}
		}()
	}
	pw.Wait()
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("push: %v", err)
	}
	noErr(t, gcErr, "gc.Run during pushes")
	// One more run after the pushes: still nothing they need may go.
	rep := runGC(t, st, gc.Options{GracePeriod: grace})
	freed.Add(int64(rep.Blobs))
	if len(pushed) == 0 {
		t.Fatalf("no push succeeded (%d failed with unknown content)", failures.Load())
	}
	for _, img := range pushed {
		checkImage(t, st, img)
	}
	blobUnknown(t, st, "junk", garbage)
	if freed.Load() == 0 {
		t.Fatal("the collector freed nothing: the test did not exercise it")
	}
	t.Logf("%d gc runs, %d blobs freed, %d pushes, %d refused with unknown content", runs.Load(), freed.Load(), len(pushed), failures.Load())
}

// tryPush pushes an image into repo that reuses base (mounted from
// baseRepo, or uploaded again when it is gone), like a client would, and
// returns the first error.
func tryPush(ctx context.Context, st storage.Store, repo, name string, base []byte, baseRepo string) (image, error) {
	img := image{repo: repo, blobs: map[digest.Digest][]byte{}}
	up := func(b []byte) (digest.Digest, error) {
		d := sha256Digest(b)
		u, err := st.BeginUpload(ctx, repo)
		if err != nil {
			return "", err
		}
		if _, err := st.AppendUpload(ctx, repo, u.ID, 0, bytes.NewReader(b)); err != nil {
			return "", err
		}
		if _, err := st.CommitUpload(ctx, repo, u.ID, d); err != nil {
			return "", err
		}
		img.blobs[d] = b
		return d, nil
	}
	bd := sha256Digest(base)
	if _, err := st.MountBlob(ctx, repo, baseRepo, bd); err != nil {
		if !errors.Is(err, storage.ErrBlobUnknown) {
			return img, err
		}
		if _, err := up(base); err != nil {
			return img, err
		}
	}
	img.blobs[bd] = base
	config := content("config-"+name, 200)
	cd, err := up(config)
	if err != nil {
		return img, err
	}
	layer := content("layer-"+name, 20_000)
	ld, err := up(layer)
	if err != nil {
		return img, err
	}
	layers := map[digest.Digest][]byte{bd: base, ld: layer}
	img.manifest = imageManifest(cd, len(config), layers, []digest.Digest{bd, ld}, nil)
	// What the registry does: check the references exist, then push.
	for _, d := range []digest.Digest{cd, bd, ld} {
		if _, err := st.StatBlob(ctx, repo, d); err != nil {
			return img, err
		}
	}
	err = st.PutManifest(ctx, repo, storage.PutManifestRequest{Manifest: img.manifest, Tags: []string{"latest"},
		Refs: []digest.Digest{cd, bd, ld}})
	return img, err
}

// testGCUseAfterMark is the race between mark and sweep made deterministic:
// the collector has found old, unreferenced content (its cutoff is later than
// the content's last use), then requests use that content, then the
// collector deletes. Each delete must refuse with storage.ErrInUse.
func testGCUseAfterMark(t *testing.T, st storage.Store) {
	ctx := t.Context()
	c := collector(t, st)
	forManifest := uploadBlob(t, st, "old", content("old layer for a manifest", 3000))
	forMount := uploadBlob(t, st, "old", content("old layer to mount", 3000))
	forCommit := content("old layer uploaded again", 3000)
	forCommitD := uploadBlob(t, st, "old", forCommit)
	untagged := pushImage(t, st, "old", "untagged", nil, nil)
	unused := uploadBlob(t, st, "old", content("really unused", 3000))
	// An upload whose bytes all arrived before the cutoff, committed after it.
	slow := content("slow upload", 3000)
	slowUp := begin(t, st, "new")
	appendChunk(t, st, "new", slowUp.ID, 0, slow)
	// Age everything past the cutoff (S3 Last-Modified has whole seconds).
	time.Sleep(1500 * time.Millisecond)
	cutoff := time.Now()
	time.Sleep(10 * time.Millisecond)
	_, err := st.CommitUpload(ctx, "new", slowUp.ID, sha256Digest(slow))
	noErr(t, err, "CommitUpload of the slow upload")
	_, err = c.DeleteBlobContent(ctx, sha256Digest(slow), cutoff)
	wantErr(t, err, storage.ErrInUse, "DeleteBlobContent of content committed after the cutoff")

	// The requests, after the mark.
	m := imageManifest(forManifest, 3000, nil, nil, nil)
	noErr(t, st.PutManifest(ctx, "new", storage.PutManifestRequest{Manifest: m, Refs: []digest.Digest{forManifest}}), "PutManifest")
	_, err = st.MountBlob(ctx, "new", "old", forMount)
	noErr(t, err, "MountBlob")
	upload(t, st, "new", forCommit, forCommitD)
	putManifest(t, st, "old", untagged.manifest) // pushed again, by digest

	// The sweep.
	for _, d := range []digest.Digest{forManifest, forMount, forCommitD, untagged.manifest.Digest} {
		_, err := c.DeleteBlobContent(ctx, d, cutoff)
		wantErr(t, err, storage.ErrInUse, "DeleteBlobContent of content used after the cutoff")
	}
	wantErr(t, c.DeleteBlobLink(ctx, "new", forCommitD, cutoff), storage.ErrInUse, "DeleteBlobLink of a link written after the cutoff")
	noErr(t, c.DeleteBlobLink(ctx, "old", forCommitD, cutoff), "DeleteBlobLink of an old link")
	wantErr(t, c.DeleteUntaggedManifest(ctx, "old", untagged.manifest.Digest, cutoff), storage.ErrInUse, "DeleteUntaggedManifest of a manifest pushed after the cutoff")
	checkManifest(t, st, "new", m)
	checkBlob(t, st, "new", forMount, content("old layer to mount", 3000))
	checkBlob(t, st, "new", forCommitD, forCommit)
	checkImage(t, st, untagged)

	// A tag keeps an untagged-looking manifest too.
	tagged := pushImage(t, st, "old", "tagged", nil, nil, "v1")
	wantErr(t, c.DeleteUntaggedManifest(ctx, "old", tagged.manifest.Digest, time.Now().Add(time.Hour)), storage.ErrInUse, "DeleteUntaggedManifest of a tagged manifest")

	// What nobody used goes, and is reported with its size.
	n, err := c.DeleteBlobContent(ctx, unused, cutoff)
	noErr(t, err, "DeleteBlobContent of unused content")
	if n != 3000 {
		t.Fatalf("DeleteBlobContent freed %d bytes, want 3000", n)
	}
	blobUnknown(t, st, "old", unused)
	n, err = c.DeleteBlobContent(ctx, unused, cutoff)
	noErr(t, err, "DeleteBlobContent of gone content")
	if n != 0 {
		t.Fatalf("DeleteBlobContent of gone content freed %d bytes", n)
	}
}
