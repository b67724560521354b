package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/berth-registry/berth/internal/redistest"
	"github.com/berth-registry/berth/internal/s3test"
	"github.com/berth-registry/berth/internal/testutil"
)

var gcOutputRE = regexp.MustCompile(`^(would free|freed) (\d+) blobs \((\d+) bytes\), (\d+) untagged manifests, (\d+) repository links`)

type gcResult struct {
	dryRun       bool
	blobs, links int
	bytes        int64
	stderr       string
}

// gcClockOffset is how far berth gc's clock runs ahead in these tests
// (BERTH_TEST_GC_CLOCK_OFFSET, honoured by the berthtest build): with a zero
// grace period, what was deleted before the run is past it on any timestamp
// granularity (S3's LastModified has whole seconds and the S3 collector adds
// a second of margin), without sleeping. What is still referenced stays.
const gcClockOffset = "1h"

// runGC runs berth gc with cfgPath next to the running server and parses its
// summary line.
func runGC(t *testing.T, dir, cfgPath string, args ...string) gcResult {
	t.Helper()
	cmd := exec.Command(berthBin, append([]string{"gc", "-c", cfgPath}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "BERTH_TEST_GC_CLOCK_OFFSET="+gcClockOffset)
	var stderr testutil.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("berth gc %v: %v\nstdout: %s\nstderr: %s", args, err, out, stderr.Tail(20))
	}
	m := gcOutputRE.FindStringSubmatch(strings.TrimSpace(string(out)))
	if m == nil {
		t.Fatalf("berth gc %v: unexpected output %q", args, out)
	}
	blobs, _ := strconv.Atoi(m[2])
	bytes, _ := strconv.ParseInt(m[3], 10, 64)
	links, _ := strconv.Atoi(m[5])
	return gcResult{dryRun: m[1] == "would free", blobs: blobs, bytes: bytes, links: links, stderr: stderr.Tail(1000)}
}

// imageBytes is the stored size of an image: manifest, config and layers.
func imageBytes(t *testing.T, img v1.Image) (blobs int, bytes int64) {
	t.Helper()
	raw, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	blobs, bytes = 2, int64(len(raw)+len(cfg))
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		n, err := l.Size()
		if err != nil {
			t.Fatal(err)
		}
		blobs++
		bytes += n
	}
	return blobs, bytes
}

// blobFiles counts the files of p's blob contents.
func blobFiles(t *testing.T, p *berthProc) int {
	return countFiles(t, p.blobDir())
}

// TestGC pushes two images with go-containerregistry into a running berth
// (filesystem storage, or S3 under BERTH_TEST_STORE=s3), deletes one, and runs berth gc --dry-run and then
// berth gc against the same data directory while the server keeps running:
// both report exactly the deleted image's blobs, the dry run frees nothing,
// the real run frees them, and the other image still pulls.
func TestGC(t *testing.T) {
	data := t.TempDir()
	p := startBerthWith(t, data, "\n[gc]\ngrace_period = \"0s\"\n")
	ctx := t.Context()
	opts := ggcrOpts(ctx)
	reg := p.host()

	gone, err := random.Image(200_000, 3)
	if err != nil {
		t.Fatal(err)
	}
	kept, err := random.Image(100_000, 2)
	if err != nil {
		t.Fatal(err)
	}
	goneRef := mustRef(t, reg+"/gc/gone:v1")
	keptRef := mustRef(t, reg+"/gc/kept:v1")
	for ref, img := range map[string]v1.Image{goneRef.String(): gone, keptRef.String(): kept} {
		if err := remote.Write(mustRef(t, ref), img, opts...); err != nil {
			t.Fatalf("push %s: %v", ref, err)
		}
	}
	wantBlobs, wantBytes := imageBytes(t, gone)

	// Nothing to free while both images are there.
	if r := runGC(t, data, p.cfgPath, "--dry-run"); r.blobs != 0 || r.bytes != 0 {
		t.Fatalf("gc --dry-run before delete: %+v, want nothing", r)
	}
	if err := remote.Delete(mustRef(t, reg+"/gc/gone@"+digestOf(t, gone).String()), opts...); err != nil {
		t.Fatalf("delete: %v", err)
	}
	files := blobFiles(t, p)
	dry := runGC(t, data, p.cfgPath, "--dry-run")
	if !dry.dryRun || dry.blobs != wantBlobs || dry.bytes != wantBytes {
		t.Fatalf("gc --dry-run: %+v, want %d blobs, %d bytes", dry, wantBlobs, wantBytes)
	}
	if n := blobFiles(t, p); n != files {
		t.Fatalf("the dry run changed the blob store: %d files, was %d", n, files)
	}
	real := runGC(t, data, p.cfgPath)
	if real.dryRun || real.blobs != dry.blobs || real.bytes != dry.bytes || real.links != dry.links {
		t.Fatalf("gc: %+v, want what the dry run said: %+v", real, dry)
	}
	// On S3 without Redis, berth gc says its locks do not reach the server's.
	if warned := strings.Contains(real.stderr, "S3 without [cache.redis]"); warned != s3test.OnS3() || strings.Contains(dry.stderr, "S3 without") {
		t.Fatalf("gc on S3 (%v) without Redis warned: %v (dry run: %q)", s3test.OnS3(), warned, dry.stderr)
	}
	if n := blobFiles(t, p); n != files-wantBlobs {
		t.Fatalf("after gc: %d blob files, want %d", n, files-wantBlobs)
	}

	// The kept image pulls completely from the running server.
	got, err := remote.Image(keptRef, opts...)
	if err != nil {
		t.Fatalf("pull kept image: %v", err)
	}
	compareImages(t, "kept image", kept, got)
	// The collected layers are gone from the repository too.
	layers, _ := gone.Layers()
	ld, _ := layers[0].Digest()
	resp, _ := doReq(t, http.MethodHead, p.url("/v2/gc/gone/blobs/"+ld.String()), nil, nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("HEAD collected layer: %d, want 404", resp.StatusCode)
	}
	// And the image can be pushed again.
	if err := remote.Write(goneRef, gone, opts...); err != nil {
		t.Fatalf("push again after gc: %v", err)
	}
	got, err = remote.Image(goneRef, opts...)
	if err != nil {
		t.Fatalf("pull pushed-again image: %v", err)
	}
	compareImages(t, "pushed-again image", gone, got)

	// gc refuses a bad command line.
	out, err := exec.Command(berthBin, "gc", "-c", p.cfgPath, "extra").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "unexpected argument") {
		t.Fatalf("berth gc extra: %v\n%s", err, out)
	}
}

// TestS3BlobRedirectAndGC runs berth on versitygw with enable_blob_redirect:
// a blob GET answers 307 to a presigned URL of the bucket, and
// go-containerregistry pulls an image through those redirects. Then berth gc
// frees a deleted image on S3.
func TestS3BlobRedirectAndGC(t *testing.T) {
	endpoint, _ := startVersitygw(t)
	prefix := fmt.Sprintf("e2e-redirect-%d", time.Now().UnixNano())
	work := t.TempDir()
	cfg := func(port int) string {
		c := strings.Replace(s3Config(port, endpoint, prefix), "path_style = true\n", "path_style = true\nenable_blob_redirect = true\n", 1)
		return c + "\n[gc]\ngrace_period = \"0s\"\n"
	}
	p := startBerthS3(t, work, cfg)
	ctx := t.Context()
	opts := ggcrOpts(ctx)
	reg := p.host()

	img, err := random.Image(300_000, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref := mustRef(t, reg+"/redirect/app:v1")
	if err := remote.Write(ref, img, opts...); err != nil {
		t.Fatalf("push: %v", err)
	}
	got, err := remote.Image(ref, opts...)
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	compareImages(t, "image pulled through redirects", img, got)

	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(p.url("/v2/redirect/app/blobs/" + ld.String()))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect {
		t.Fatalf("blob GET: %d, want 307", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || "http://"+loc.Host != endpoint || !strings.Contains(loc.RawQuery, "X-Amz-Signature") {
		t.Fatalf("Location %q is not a presigned URL on %s", resp.Header.Get("Location"), endpoint)
	}
	// HEAD still answers from berth, and an unknown blob is still a 404.
	resp, _ = doReq(t, http.MethodHead, p.url("/v2/redirect/app/blobs/"+ld.String()), nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("blob HEAD: %d, want 200", resp.StatusCode)
	}
	resp, _ = doReq(t, http.MethodGet, p.url("/v2/redirect/app/blobs/sha256:"+strings.Repeat("0", 64)), nil, nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown blob GET: %d, want 404", resp.StatusCode)
	}

	// GC on S3: delete the image, the dry run and the real run agree.
	if err := remote.Delete(mustRef(t, reg+"/redirect/app@"+digestOf(t, img).String()), opts...); err != nil {
		t.Fatalf("delete: %v", err)
	}
	wantBlobs, wantBytes := imageBytes(t, img)
	dry := runGC(t, work, p.cfgPath, "--dry-run")
	if dry.blobs != wantBlobs || dry.bytes != wantBytes {
		t.Fatalf("gc --dry-run on S3: %+v, want %d blobs, %d bytes", dry, wantBlobs, wantBytes)
	}
	real := runGC(t, work, p.cfgPath)
	if real.blobs != dry.blobs || real.bytes != dry.bytes || real.links != dry.links {
		t.Fatalf("gc on S3: %+v, want what the dry run said: %+v", real, dry)
	}
	resp, _ = doReq(t, http.MethodHead, p.url("/v2/redirect/app/blobs/"+ld.String()), nil, nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("HEAD collected layer on S3: %d, want 404", resp.StatusCode)
	}
}

// waitCollections waits until p has logged n more completed garbage
// collections than it had when called (the in-server schedule).
func waitCollections(t *testing.T, p *berthProc, n int) {
	t.Helper()
	runs := func() int { return strings.Count(p.stderr.String(), `msg="garbage collection" `) }
	want := runs() + n
	for runs() < want {
		select {
		case <-t.Context().Done():
			t.Fatalf("waiting for %d garbage collections: %v; log:\n%s", n, t.Context().Err(), p.stderr.Tail(40))
		case <-time.After(50 * time.Millisecond):
		}
		if !p.running() {
			t.Fatalf("berth exited while waiting for garbage collections; log:\n%s", p.stderr.Tail(40))
		}
	}
}

// TestTwoReplicasGC: two berth processes on one bucket and one Redis. Replica
// A collects garbage every second (grace period 3s, the in-server schedule)
// while images are pushed through replica B into a repository whose old
// layer is garbage — its only manifest was deleted — so the pushes reuse it
// (HEAD finds it, the manifest refers to it) exactly when the collector
// wants it gone. Nothing pushed may be lost: every image pulls completely
// through A afterwards, and A did free the garbage.
func TestTwoReplicasGC(t *testing.T) {
	endpoint, _ := startVersitygw(t)
	rs := redistest.Start(t)
	prefix := fmt.Sprintf("ha-gc-%d", time.Now().UnixNano())
	base := func(port int) string {
		return s3Config(port, endpoint, prefix) + fmt.Sprintf("\n[cache.redis]\nurl = %q\nkey_prefix = %q\n", rs.URL(), prefix+":")
	}
	a := startBerthS3(t, t.TempDir(), func(port int) string {
		return base(port) + "\n[gc]\ngrace_period = \"3s\"\ninterval = \"1s\"\n"
	})
	b := startBerthS3(t, t.TempDir(), base)
	ctx := t.Context()
	opts := ggcrOpts(ctx)

	old, err := random.Image(50_000, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(mustRef(t, b.host()+"/gc/app:old"), old, opts...); err != nil {
		t.Fatalf("push old image: %v", err)
	}
	if err := remote.Delete(mustRef(t, b.host()+"/gc/app@"+digestOf(t, old).String()), opts...); err != nil {
		t.Fatalf("delete old image: %v", err)
	}
	oldLayers, _ := old.Layers()
	// Past the grace period plus S3's one-second margin: the old layers are
	// garbage to A from now on.
	time.Sleep(4500 * time.Millisecond)

	var pushed []v1.Image
	for i := range 12 {
		fresh, err := random.Layer(30_000, types.OCILayer)
		if err != nil {
			t.Fatal(err)
		}
		img, err := mutate.AppendLayers(empty.Image, oldLayers[i%2], fresh)
		if err != nil {
			t.Fatal(err)
		}
		ref := mustRef(t, fmt.Sprintf("%s/gc/app:v%d", b.host(), i))
		err = remote.Write(ref, img, opts...)
		if err != nil && strings.Contains(err.Error(), "MANIFEST_BLOB_UNKNOWN") {
			// The collector removed the old layer between the client's HEAD and
			// its manifest push: the push is refused (never accepted broken)
			// and a retry uploads the layer again.
			t.Logf("push %d refused (%v); retrying", i, err)
			err = remote.Write(ref, img, opts...)
		}
		if err != nil {
			t.Fatalf("push %d through B: %v", i, err)
		}
		pushed = append(pushed, img)
		time.Sleep(300 * time.Millisecond) // let the schedule run between pushes
	}
	// Two more completed collections on A after the last push, seen in its
	// log: the one running now (if any) and one that started after the
	// push. A fixed sleep showed neither: on a busy machine the pulls below
	// could run before any collection followed the last push, and the check
	// that A freed the garbage raced its schedule.
	waitCollections(t, a, 2)
	for i, img := range pushed {
		got, err := remote.Image(mustRef(t, fmt.Sprintf("%s/gc/app:v%d", a.host(), i)), opts...)
		if err != nil {
			t.Fatalf("pull %d through A after gc: %v", i, err)
		}
		compareImages(t, fmt.Sprintf("image %d", i), img, got)
	}
	freed := regexp.MustCompile(`msg="garbage collection" dry_run=false blobs=([1-9][0-9]*)`)
	if !freed.MatchString(a.stderr.Tail(1 << 20)) {
		t.Fatalf("replica A never freed anything; its log:\n%s", a.stderr.Tail(40))
	}
}
