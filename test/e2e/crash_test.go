package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/berth-registry/berth/internal/s3test"
	"github.com/berth-registry/berth/internal/testutil"
)

// streamImage is an OCI image whose layers are detStreams of the given sizes
// (static layers: no compression work while pushing).
func streamImage(t testing.TB, seed uint64, sizes ...int64) v1.Image {
	t.Helper()
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	var layers []v1.Layer
	for i, n := range sizes {
		layers = append(layers, static.NewLayer(detStream{seed: seed*16 + uint64(i), size: n}.bytes(), types.OCIUncompressedLayer))
	}
	img, err := mutate.AppendLayers(img, layers...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// known is what the test ever tried to push: blobs and manifests by
// repository, each with its expected size.
type known struct {
	blobs     map[string]map[string]int64 // repo -> digest -> size
	manifests map[string]map[string]int64
}

func (k *known) add(kind map[string]map[string]int64, repo, d string, size int64) {
	if kind[repo] == nil {
		kind[repo] = map[string]int64{}
	}
	kind[repo][d] = size
}

func (k *known) addImage(t testing.TB, repo string, img v1.Image) {
	t.Helper()
	raw, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	k.add(k.manifests, repo, sha256Digest(raw), int64(len(raw)))
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	k.add(k.blobs, repo, m.Config.Digest.String(), m.Config.Size)
	for _, l := range m.Layers {
		k.add(k.blobs, repo, l.Digest.String(), l.Size)
	}
}

var manifestAccept = strings.Join([]string{
	string(types.OCIManifestSchema1), string(types.OCIImageIndex),
	string(types.DockerManifestSchema2), string(types.DockerManifestList),
}, ",")

// getHashed GETs u and returns status, the digest of the body and its length.
func getHashed(t testing.TB, u string, hdr map[string]string) (*http.Response, string, int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body after %d bytes: %v", u, n, err)
	}
	return resp, "sha256:" + hex.EncodeToString(h.Sum(nil)), n
}

// checkBlob GETs a blob that must exist and checks its bytes.
func checkBlob(t testing.TB, p *berthProc, repo string, d ociDescriptor, what string) {
	t.Helper()
	resp, got, n := getHashed(t, p.url("/v2/"+repo+"/blobs/"+d.Digest), nil)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("%s: GET /v2/%s/blobs/%s: status %d, want 200", what, repo, d.Digest, resp.StatusCode)
		return
	}
	if got != d.Digest || n != d.Size {
		t.Errorf("%s: GET /v2/%s/blobs/%s: %d bytes hashing to %s, want %d bytes", what, repo, d.Digest, n, got, d.Size)
	}
}

// checkManifest GETs a manifest that must exist (by tag or digest), checks
// that its bytes hash to the digest the registry gives, and checks every
// blob and child manifest it references.
func checkManifest(t testing.TB, p *berthProc, repo, ref, what string) {
	t.Helper()
	resp, body := doReq(t, http.MethodGet, p.url("/v2/"+repo+"/manifests/"+ref), nil, map[string]string{"Accept": manifestAccept})
	if resp.StatusCode != http.StatusOK {
		t.Errorf("%s: GET /v2/%s/manifests/%s: status %d, want 200: %s", what, repo, ref, resp.StatusCode, truncate(body, 200))
		return
	}
	d := sha256Digest(body)
	if h := resp.Header.Get("Docker-Content-Digest"); h != d {
		t.Errorf("%s: GET /v2/%s/manifests/%s: body hashes to %s, Docker-Content-Digest %q", what, repo, ref, d, h)
	}
	if strings.HasPrefix(ref, "sha256:") && ref != d {
		t.Errorf("%s: GET /v2/%s/manifests/%s returned bytes hashing to %s", what, repo, ref, d)
		return
	}
	var m ociManifest
	if err := json.Unmarshal(body, &m); err != nil {
		t.Errorf("%s: manifest %s in %s is not JSON: %v: %s", what, ref, repo, err, truncate(body, 200))
		return
	}
	for _, c := range m.Manifests {
		checkManifest(t, p, repo, c.Digest, what+" child "+c.Digest)
	}
	if m.Config.Digest != "" {
		checkBlob(t, p, repo, m.Config, what+" config")
	}
	for _, l := range m.Layers {
		checkBlob(t, p, repo, l, what+" layer")
	}
}

// checkConsistency is the post-crash invariant: every tag resolves to a
// complete manifest, and nothing the registry serves has wrong bytes.
func checkConsistency(t testing.TB, p *berthProc, k *known) {
	t.Helper()
	ctx := context.Background()
	opts := ggcrOpts(ctx)
	reg, err := name.NewRegistry(p.host(), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	repos, err := remote.Catalog(ctx, reg, opts...)
	if err != nil {
		t.Fatalf("catalog after restart: %v", err)
	}
	for r := range k.manifests {
		if !slices.Contains(repos, r) {
			repos = append(repos, r)
		}
	}
	tagCount := 0
	for _, r := range repos {
		tags, err := remote.List(mustRepo(t, p.host()+"/"+r), opts...)
		if err != nil {
			if is404(err) {
				continue // nothing of this repository survived
			}
			t.Fatalf("tags of %s after restart: %v", r, err)
		}
		for _, tag := range tags {
			tagCount++
			checkManifest(t, p, r, tag, r+":"+tag)
		}
	}
	// Whatever is served by digest has the right bytes.
	served := 0
	for r, ms := range k.manifests {
		for d, size := range ms {
			resp, got, n := getHashed(t, p.url("/v2/"+r+"/manifests/"+d), map[string]string{"Accept": manifestAccept})
			switch resp.StatusCode {
			case http.StatusOK:
				served++
				if got != d || n != size {
					t.Errorf("GET /v2/%s/manifests/%s: %d bytes hashing to %s", r, d, n, got)
				}
			case http.StatusNotFound:
			default:
				t.Errorf("GET /v2/%s/manifests/%s: status %d, want 200 or 404", r, d, resp.StatusCode)
			}
		}
	}
	for r, bs := range k.blobs {
		for d, size := range bs {
			resp, got, n := getHashed(t, p.url("/v2/"+r+"/blobs/"+d), nil)
			switch resp.StatusCode {
			case http.StatusOK:
				served++
				if got != d || n != size {
					t.Errorf("GET /v2/%s/blobs/%s: %d bytes hashing to %s, want %d bytes", r, d, n, got, size)
				}
			case http.StatusNotFound:
			default:
				t.Errorf("GET /v2/%s/blobs/%s: status %d, want 200 or 404", r, d, resp.StatusCode)
			}
		}
	}
	t.Logf("after restart: %d repositories, %d tags checked, %d known manifests/blobs served intact", len(repos), tagCount, served)
}

// chunkState is the manual chunked upload running during a crash.
type chunkState struct {
	mu        sync.Mutex
	up        *chunkedUpload
	confirmed int64 // bytes the server acknowledged with 202
	sent      int64 // bytes sent in total, acknowledged or not
	err       error
}

// TestCrashRecovery SIGKILLs berth at a random moment while pushes run, then
// restarts it on the same data directory and checks that nothing is corrupt,
// that the interrupted upload can be resumed and that pushing again works.
func TestCrashRecovery(t *testing.T) {
	iterations := 4
	if testing.Short() {
		iterations = 2
	}
	const (
		chunkedRepo = "e2e/crash/chunked"
		chunkSize   = 1 << 20
		chunkTotal  = 96 << 20 // large enough to be in flight at most kill moments
	)
	seed := uint64(time.Now().UnixNano())
	t.Logf("random seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	p := startBerth(t, t.TempDir())
	k := &known{blobs: map[string]map[string]int64{}, manifests: map[string]map[string]int64{}}

	for it := 0; it < iterations; it++ {
		delay := time.Duration(50+rng.IntN(351)) * time.Millisecond
		t.Logf("iteration %d: SIGKILL after %v", it, delay)

		type target struct {
			ref  name.Reference
			repo string
			img  v1.Image
		}
		var targets []target
		for j := 0; j < 3; j++ {
			img := streamImage(t, seed^uint64(it*10+j), 8<<20, 64<<10+int64(j))
			repo := fmt.Sprintf("e2e/crash/img%d", j)
			targets = append(targets, target{mustRef(t, fmt.Sprintf("%s/%s:it%d", p.host(), repo, it)), repo, img})
			k.addImage(t, repo, img)
		}
		stream := detStream{seed: seed ^ uint64(1000+it), size: chunkTotal}
		streamDigest := stream.digest()
		k.add(k.blobs, chunkedRepo, streamDigest, chunkTotal)

		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		pushErrs := make([]error, len(targets))
		for i, tg := range targets {
			wg.Add(1)
			go func() {
				defer wg.Done()
				pushErrs[i] = remote.Write(tg.ref, tg.img, ggcrOpts(ctx)...)
			}()
		}
		cs := &chunkState{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			up, err := beginUpload(ctx, p, chunkedRepo)
			cs.mu.Lock()
			cs.up, cs.err = up, err
			cs.mu.Unlock()
			if err != nil {
				return
			}
			buf := make([]byte, chunkSize)
			// Everything but the last chunk, then wait for the crash: the
			// session is always unfinished when berth dies.
			for up.offset < chunkTotal-chunkSize {
				stream.readAt(buf, up.offset)
				cs.mu.Lock()
				cs.sent = up.offset + chunkSize
				cs.mu.Unlock()
				err := up.patch(ctx, buf)
				cs.mu.Lock()
				cs.confirmed, cs.err = up.offset, err
				cs.mu.Unlock()
				if err != nil {
					return
				}
			}
			<-ctx.Done()
		}()

		select {
		case <-time.After(delay): // the random crash moment, not a synchronization
		case <-t.Context().Done():
		}
		p.kill()
		cancel()
		wg.Wait()
		for i, err := range pushErrs {
			if err == nil {
				t.Logf("  push %s finished before the kill", targets[i].ref)
			}
		}
		cs.mu.Lock()
		t.Logf("  chunked upload: %d bytes confirmed, %d sent, err %v", cs.confirmed, cs.sent, cs.err)
		cs.mu.Unlock()

		p.restart()
		checkConsistency(t, p, k)
		if t.Failed() {
			t.FailNow()
		}

		// Resume (or restart) the interrupted chunked upload.
		rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Minute)
		up := cs.up
		resumed := false
		if up != nil {
			code, n, err := up.status(rctx)
			switch {
			case err != nil:
				t.Fatalf("GET upload status after restart: %v", err)
			case code == http.StatusNoContent:
				if n < cs.confirmed || n > cs.sent {
					t.Fatalf("upload status after restart: %d bytes received; the server had confirmed %d and was sent %d", n, cs.confirmed, cs.sent)
				}
				t.Logf("  resuming the upload at offset %d", n)
				up.offset = n
				resumed = true
				if n == 1 {
					// "Range: 0-0" also stands for an empty session (the
					// distribution convention): try offset 0 first.
					up.offset = 0
					err := up.uploadStream(rctx, detStream{seed: stream.seed, size: min(chunkSize, chunkTotal)}, chunkSize, nil)
					var se *statusError
					if errors.As(err, &se) && se.code == http.StatusRequestedRangeNotSatisfiable {
						t.Logf("  Range 0-0 meant one byte: resuming at offset 1")
						up.offset = 1
					} else if err != nil {
						t.Fatalf("resuming at offset 0 after Range 0-0: %v", err)
					}
				}
			case code == http.StatusNotFound:
				t.Logf("  upload session gone after restart (404): starting over")
			default:
				t.Fatalf("GET upload status after restart: status %d, want 204 or 404", code)
			}
		}
		if !resumed {
			var err error
			if up, err = beginUpload(rctx, p, chunkedRepo); err != nil {
				t.Fatalf("new upload after restart: %v", err)
			}
		}
		if err := up.uploadStream(rctx, stream, chunkSize, nil); err != nil {
			t.Fatalf("finishing the chunked upload after restart (resumed=%v): %v", resumed, err)
		}
		if _, err := up.finish(rctx, streamDigest); err != nil {
			t.Fatalf("completing the chunked upload after restart (resumed=%v): %v", resumed, err)
		}
		resp, err := httpClient.Get(p.url("/v2/" + chunkedRepo + "/blobs/" + streamDigest))
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET completed chunked blob: status %d", resp.StatusCode)
		}
		if got := compareStream(t, "chunked blob after crash", resp.Body, stream, 0); got != streamDigest {
			t.Fatalf("completed chunked blob hashes to %s, want %s", got, streamDigest)
		}
		resp.Body.Close()

		// Pushing the same images again succeeds and pulls back intact.
		for _, tg := range targets {
			if err := remote.Write(tg.ref, tg.img, ggcrOpts(rctx)...); err != nil {
				t.Fatalf("re-push %s after restart: %v", tg.ref, err)
			}
			got, err := remote.Image(tg.ref, ggcrOpts(rctx)...)
			if err != nil {
				t.Fatalf("pull %s after re-push: %v", tg.ref, err)
			}
			compareImages(t, tg.ref.String(), tg.img, got)
		}
		rcancel()
	}
	// A last crash-free check of the whole store after a clean restart.
	p.restart()
	checkConsistency(t, p, k)
}

// startBerthTraced starts berth on p's data directory under strace, which
// SIGKILLs it when it is about to rename onto the path killAt (the rename
// is not executed: it fails with EIO as the kill arrives). It skips the
// test when strace is missing or may not trace (no ptrace in the sandbox).
func startBerthTraced(t *testing.T, p *berthProc, killAt string) {
	t.Helper()
	strace, err := exec.LookPath("strace")
	if err != nil {
		t.Skip("strace not installed")
	}
	if out, err := exec.Command(strace, "-f", "-qq", "-o", os.DevNull, "true").CombinedOutput(); err != nil {
		t.Skipf("strace cannot trace here: %v: %s", err, out)
	}
	port := testutil.FreePort(t)
	p.writeConfig(port)
	renames := "rename,renameat,renameat2"
	cmd := exec.Command(strace, "-f", "-qq", "-o", os.DevNull, "-P", killAt,
		"-e", "trace="+renames, "-e", "inject="+renames+":error=EIO:signal=KILL",
		berthBin, "serve", "-c", p.cfgPath)
	cmd.Dir = p.dataDir
	cmd.Stdout, cmd.Stderr = p.stderr, p.stderr
	fmt.Fprintf(p.stderr, "----- berth under strace, killed at a rename onto %s -----\n", killAt)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start strace: %v", err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(done) }()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.waitErrFn = func() error { <-done; return waitErr }
	p.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	p.mu.Unlock()
	p.waitReady()
}

// TestCommitKilledAtEachStep SIGKILLs a real berth inside the commit of an
// upload (PUT ?digest=), just before each of its renames: the data into the
// blob store ("move"), the link into the repository ("link"), the session
// out of the way ("remove"). After a restart, the client's retried PUT with
// an empty body commits the blob without sending it again (201), and the
// blob reads back whole. Before the fix the retry answered 404
// BLOB_UPLOAD_UNKNOWN after a kill at "link" or "remove": the data had left
// the session, and the client had to upload the whole blob again.
func TestCommitKilledAtEachStep(t *testing.T) {
	if s3test.OnS3() {
		t.Skip("kills at the filesystem backend's renames")
	}
	stream := detStream{seed: 0xc0ffee, size: 8 << 20}
	data := stream.bytes()
	d := sha256Digest(data)
	hexd := strings.TrimPrefix(d, "sha256:")
	for _, step := range []string{"move", "link", "remove"} {
		t.Run(step, func(t *testing.T) {
			dir := t.TempDir()
			repo := "e2e/killed/" + step
			p := startBerth(t, dir)
			// The repository already holds a blob, as during a push: the
			// link is then renamed into its final place itself.
			pushBlob(t, p, repo, []byte("config of "+step))
			resp, body := doReq(t, http.MethodPost, p.url("/v2/"+repo+"/blobs/uploads/"), nil, nil)
			wantStatus(t, "POST upload", resp, body, http.StatusAccepted)
			loc := p.resolve(t, resp.Header.Get("Location")).Path
			id := resp.Header.Get("Docker-Upload-UUID")
			resp, body = doReq(t, http.MethodPatch, p.url(loc), bytes.NewReader(data),
				map[string]string{"Content-Type": "application/octet-stream"})
			wantStatus(t, "PATCH", resp, body, http.StatusAccepted)
			p.stop()

			rdir := filepath.Join(dir, "repositories", filepath.FromSlash(repo))
			killAt := map[string]string{
				"move":   filepath.Join(dir, "blobs", "sha256", hexd[:2], hexd),
				"link":   filepath.Join(rdir, "_blobs", "sha256", hexd),
				"remove": filepath.Join(rdir, "_uploads", id),
			}[step]
			startBerthTraced(t, p, killAt)
			req, err := http.NewRequest(http.MethodPut, p.url(loc+"?digest="+d), nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp, err := httpClient.Do(req); err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				t.Fatalf("PUT ?digest= answered %d (%s): berth was not killed before the rename onto %s", resp.StatusCode, b, killAt)
			}
			<-p.done
			fmt.Fprintln(p.stderr, "----- killed -----")

			p.start(0)
			resp, body = doReq(t, http.MethodPut, p.url(loc+"?digest="+d), nil, nil)
			wantStatus(t, "retried PUT ?digest= after the kill", resp, body, http.StatusCreated)
			if got := resp.Header.Get("Docker-Content-Digest"); got != d {
				t.Errorf("retried PUT: Docker-Content-Digest %q, want %s", got, d)
			}
			checkBlob(t, p, repo, ociDescriptor{Digest: d, Size: stream.size}, "blob committed by the retry")
		})
	}
}
