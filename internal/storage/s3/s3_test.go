package s3

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/s3test"
	"github.com/berth-registry/berth/internal/storage"
	"github.com/berth-registry/berth/internal/storage/storagetest"
)

// The tests run against a real S3 server: versitygw with a posix backend in a
// temporary directory on 127.0.0.1, one per test binary (internal/s3test;
// scripts/install-test-s3.sh installs it). Without the binary they skip,
// unless BERTH_REQUIRE_S3=1.

const (
	testAccess = s3test.AccessKey
	testSecret = s3test.SecretKey
	testBucket = s3test.Bucket
)

var prefixSeq atomic.Int64

func TestMain(m *testing.M) {
	code := m.Run()
	s3test.Stop()
	os.Exit(code)
}

// server returns the endpoint of the test server, starting it on first use.
func server(t testing.TB) string {
	t.Helper()
	return s3test.Shared(t).Endpoint
}

func testOptions(t *testing.T, prefix string) Options {
	return Options{
		Endpoint:    server(t),
		Bucket:      testBucket,
		Region:      "us-east-1",
		KeyPrefix:   prefix,
		AccessKeyID: testAccess,
		SecretKey:   testSecret,
		PathStyle:   true,
	}
}

func newPrefix() string { return fmt.Sprintf("t%d-%d", os.Getpid(), prefixSeq.Add(1)) }

func openStore(t *testing.T, opts Options) *Store {
	t.Helper()
	st, err := New(t.Context(), opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return st
}

func TestContract(t *testing.T) {
	server(t)
	storagetest.RunWithReopen(t,
		func(t *testing.T) storage.Store { return openStore(t, testOptions(t, newPrefix())) },
		func(t *testing.T, s storage.Store) storage.Store {
			return openStore(t, testOptions(t, s.(*Store).prefix))
		})
}

// ---------------------------------------------------------------------------
// S3-specific tests

func sha256Of(b []byte) digest.Digest {
	sum := sha256.Sum256(b)
	return digest.Digest("sha256:" + hex.EncodeToString(sum[:]))
}

func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}).Read(b)
	return b
}

func loadState(t *testing.T, st *Store, repo, id string) *session {
	t.Helper()
	ss, err := st.loadSession(t.Context(), repo, id)
	if err != nil {
		t.Fatalf("load session: %v", err)
	}
	return ss
}

// checkParts checks the session's parts, in the state and on the server: all
// at least 5 MiB, and the tail object holds the rest.
func checkParts(t *testing.T, st *Store, repo, id string) *session {
	t.Helper()
	ctx := t.Context()
	ss := loadState(t, st, repo, id)
	for _, p := range ss.Parts {
		if p.Size < MinPartSize {
			t.Fatalf("part %d is %d bytes, below the 5 MiB minimum", p.Number, p.Size)
		}
	}
	if got := ss.partsSize() + ss.Tail; got != ss.Size {
		t.Fatalf("parts %d + tail %d != size %d", ss.partsSize(), ss.Tail, ss.Size)
	}
	if ss.Tail >= MinPartSize {
		t.Fatalf("tail of %d bytes should have been a part", ss.Tail)
	}
	if ss.Tail > 0 {
		size, ok, err := st.head(ctx, st.uploadKey(id)+keyTail)
		if err != nil || !ok || size != ss.Tail {
			t.Fatalf("tail object: size %d found %v err %v, want %d", size, ok, err, ss.Tail)
		}
	}
	key := st.uploadKey(id) + keyData
	out, err := st.c.ListParts(ctx, &awss3.ListPartsInput{Bucket: &st.bucket, Key: &key, UploadId: aws.String(ss.UploadID)})
	if err != nil {
		t.Fatalf("ListParts: %v", err)
	}
	if len(out.Parts) != len(ss.Parts) {
		t.Fatalf("server has %d parts, state %d", len(out.Parts), len(ss.Parts))
	}
	for _, p := range out.Parts {
		if aws.ToInt64(p.Size) < MinPartSize {
			t.Fatalf("server part %d is %d bytes", aws.ToInt32(p.PartNumber), aws.ToInt64(p.Size))
		}
	}
	return ss
}

func readAll(t *testing.T, st storage.Store, repo string, d digest.Digest) []byte {
	t.Helper()
	rc, err := st.OpenBlob(t.Context(), repo, d, 0, -1)
	if err != nil {
		t.Fatalf("OpenBlob: %v", err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read blob: %v", err)
	}
	return b
}

func TestSmallChunksStagedAsTail(t *testing.T) {
	opts := testOptions(t, newPrefix())
	opts.MultipartPartSize = MinPartSize
	st := openStore(t, opts)
	ctx := t.Context()
	const mib = 1 << 20
	b := randomBytes(1, 17*mib+123)
	u, err := st.BeginUpload(ctx, "repo")
	if err != nil {
		t.Fatal(err)
	}
	var off int64
	for _, n := range []int{3 * mib, 1 * mib, 2*mib + 5, 4 * mib, 0, 100, 6 * mib, 1*mib - 105 + 123} {
		off, err = st.AppendUpload(ctx, "repo", u.ID, off, bytes.NewReader(b[off:off+int64(n)]))
		if err != nil {
			t.Fatalf("append %d: %v", n, err)
		}
		checkParts(t, st, "repo", u.ID)
	}
	if off != int64(len(b)) {
		t.Fatalf("appended %d of %d", off, len(b))
	}
	ss := checkParts(t, st, "repo", u.ID)
	if len(ss.Parts) != 3 || ss.Tail == 0 {
		t.Fatalf("%d parts and a tail of %d, want 3 parts and a tail", len(ss.Parts), ss.Tail)
	}
	d := sha256Of(b)
	if _, err := st.CommitUpload(ctx, "repo", u.ID, d); err != nil {
		t.Fatalf("commit: %v", err)
	}
	if got := readAll(t, st, "repo", d); !bytes.Equal(got, b) {
		t.Fatal("committed content differs")
	}
	// Nothing of the session is left.
	var left []string
	st.listKeys(ctx, st.uploadKey(u.ID), "", -1, func(key string, _ int64) (bool, error) {
		left = append(left, key)
		return true, nil
	})
	if len(left) != 0 {
		t.Fatalf("session objects left after commit: %q", left)
	}
}

func TestSessionContinuesOnAnotherStore(t *testing.T) {
	opts := testOptions(t, newPrefix())
	opts.MultipartPartSize = MinPartSize
	a := openStore(t, opts)
	b := openStore(t, opts)
	ctx := t.Context()
	data := randomBytes(2, 13<<20+7)
	u, err := a.BeginUpload(ctx, "team/app")
	if err != nil {
		t.Fatal(err)
	}
	stores := []*Store{a, b}
	var off int64
	for i := 0; off < int64(len(data)); i++ {
		end := min(off+2<<20+1, int64(len(data)))
		off, err = stores[i%2].AppendUpload(ctx, "team/app", u.ID, off, bytes.NewReader(data[off:end]))
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		// The other instance sees the new size.
		info, err := stores[(i+1)%2].StatUpload(ctx, "team/app", u.ID)
		if err != nil || info.Size != off || !info.StartedAt.Equal(u.StartedAt) {
			t.Fatalf("StatUpload on the other store = %+v, %v; want size %d", info, err, off)
		}
	}
	checkParts(t, b, "team/app", u.ID)
	d := sha256Of(data)
	if _, err := b.CommitUpload(ctx, "team/app", u.ID, d); err != nil {
		t.Fatalf("commit on the second store: %v", err)
	}
	if got := readAll(t, a, "team/app", d); !bytes.Equal(got, data) {
		t.Fatal("content differs")
	}
}

// streamReader yields n pseudo-random bytes without holding them.
type streamReader struct {
	src *rand.ChaCha8
	n   int64
}

func (r *streamReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.n {
		p = p[:r.n]
	}
	r.src.Read(p)
	r.n -= int64(len(p))
	return len(p), nil
}

func TestUploadMemoryBounded(t *testing.T) {
	opts := testOptions(t, newPrefix())
	st := openStore(t, opts)
	ctx := t.Context()
	const size = 64 << 20
	u, err := st.BeginUpload(ctx, "big")
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	body := io.TeeReader(&streamReader{src: rand.NewChaCha8([32]byte{64}), n: size}, h)

	var base runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var ms runtime.MemStats
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > peak.Load() {
				peak.Store(ms.HeapAlloc)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	n, err := st.AppendUpload(ctx, "big", u.ID, 0, body)
	close(stop)
	<-done
	if err != nil || n != size {
		t.Fatalf("AppendUpload = %d, %v", n, err)
	}
	grown := int64(peak.Load()) - int64(base.HeapAlloc)
	t.Logf("64 MiB upload: peak heap growth %d bytes (part size %d)", grown, DefaultPartSize)
	if grown > 3*DefaultPartSize {
		t.Fatalf("peak heap grew by %d bytes during a 64 MiB upload, want < %d (3 parts)", grown, 3*DefaultPartSize)
	}
	d := digest.Digest("sha256:" + hex.EncodeToString(h.Sum(nil)))
	info, err := st.CommitUpload(ctx, "big", u.ID, d)
	if err != nil || info.Size != size {
		t.Fatalf("CommitUpload = %+v, %v", info, err)
	}
	rc, err := st.OpenBlob(ctx, "big", d, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	h2 := sha256.New()
	if _, err := io.Copy(h2, rc); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if got := digest.Digest("sha256:" + hex.EncodeToString(h2.Sum(nil))); got != d {
		t.Fatalf("read back %s, want %s", got, d)
	}
}

// countingTransport records the requests a store makes.
type countingTransport struct {
	mu   sync.Mutex
	reqs []string
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.reqs = append(c.reqs, r.Method+" "+r.URL.RawQuery)
	c.mu.Unlock()
	return http.DefaultTransport.RoundTrip(r)
}

func (c *countingTransport) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.reqs
	c.reqs = nil
	return r
}

func TestListingPagination(t *testing.T) {
	ct := &countingTransport{}
	opts := testOptions(t, newPrefix())
	opts.HTTPClient = &http.Client{Transport: ct}
	st := openStore(t, opts)
	ctx := t.Context()

	var tags []string
	for i := range 25 {
		tags = append(tags, fmt.Sprintf("v%02d", i))
	}
	data := []byte(`{"schemaVersion":2}`)
	m := storage.Manifest{Digest: sha256Of(data), MediaType: "application/vnd.oci.image.manifest.v1+json", Data: data}
	if err := st.PutManifest(ctx, "repo", storage.PutManifestRequest{Manifest: m, Tags: tags}); err != nil {
		t.Fatal(err)
	}
	names := []string{"a", "a-b", "a.b", "a/b", "a/b/c", "a0", "a1/x", "a9", "a_b", "ab", "b", "lib/ubuntu2", "z/y"}
	for _, name := range slices.Backward(names) {
		if err := st.PutManifest(ctx, name, storage.PutManifestRequest{Manifest: m}); err != nil {
			t.Fatal(err)
		}
	}
	ct.take()

	// A page of tags is one request, starting after the given tag.
	got, err := st.ListTags(ctx, "repo", "v10", 4)
	if err != nil {
		t.Fatal(err)
	}
	if want := tags[11:15]; !slices.Equal(got, want) {
		t.Fatalf("ListTags(v10, 4) = %q, want %q", got, want)
	}
	if reqs := ct.take(); len(reqs) != 1 || !strings.Contains(reqs[0], "start-after=") || !strings.Contains(reqs[0], "max-keys=4") {
		t.Fatalf("ListTags page made requests %q, want one ListObjectsV2 with start-after and max-keys", reqs)
	}
	// Paging through everything.
	var paged []string
	for after := ""; ; {
		page, err := st.ListTags(ctx, "repo", after, 7)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		paged = append(paged, page...)
		after = page[len(page)-1]
	}
	if !slices.Equal(paged, tags) {
		t.Fatalf("paged tags = %q", paged)
	}

	// Repositories: sorted by name, one request per page.
	want := append(slices.Clone(names), "repo")
	slices.Sort(want)
	all, err := st.ListRepositories(ctx, "", -1)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(all, want) {
		t.Fatalf("ListRepositories = %q, want %q", all, want)
	}
	ct.take()
	page, err := st.ListRepositories(ctx, "a/b", 3)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.Index(want, "a/b")
	if !slices.Equal(page, want[i+1:i+4]) {
		t.Fatalf("ListRepositories(a/b, 3) = %q, want %q", page, want[i+1:i+4])
	}
	if reqs := ct.take(); len(reqs) != 1 || !strings.Contains(reqs[0], "start-after=") {
		t.Fatalf("ListRepositories page made requests %q, want one ListObjectsV2 with start-after", reqs)
	}
}

func TestEncodeRepoOrder(t *testing.T) {
	names := []string{"a", "a-b", "a--b", "a.b", "a/b", "a/b/c", "a/c", "a0", "a09", "a1", "a10/x", "a9", "a_b", "a__b", "ab", "b", "z/y/x/w", "0", "9z", "lib/ubuntu"}
	for _, x := range names {
		ex := encodeRepo(x)
		if strings.Contains(ex, "/") {
			t.Fatalf("encodeRepo(%q) = %q contains a slash", x, ex)
		}
		if back, ok := decodeRepo(ex); !ok || back != x {
			t.Fatalf("decodeRepo(encodeRepo(%q)) = %q, %v", x, back, ok)
		}
		for _, y := range names {
			if (x < y) != (ex < encodeRepo(y)) {
				t.Fatalf("order of %q and %q not preserved: %q, %q", x, y, ex, encodeRepo(y))
			}
		}
	}
}

func TestStateIsJSON(t *testing.T) {
	// The session state is plain JSON so operators can inspect it.
	ss := session{Repo: "r", UploadID: "u", Size: 3, StartedAt: time.Unix(1, 5).UTC()}
	b, err := json.Marshal(ss)
	if err != nil || !bytes.Contains(b, []byte(`"startedAt":"1970-01-01T00:00:01.000000005Z"`)) {
		t.Fatalf("state = %s, %v", b, err)
	}
}

// TestMismatchLeavesNothing: a commit with the wrong digest, of a session with
// parts and a tail, stores no blob and leaves no object or multipart upload.
func TestMismatchLeavesNothing(t *testing.T) {
	opts := testOptions(t, newPrefix())
	opts.MultipartPartSize = MinPartSize
	st := openStore(t, opts)
	ctx := t.Context()
	data := randomBytes(3, 6<<20+99)
	for _, wrong := range []digest.Digest{sha256Of([]byte("other")), digest.Digest("sha512:" + strings.Repeat("ab", 64))} {
		u, err := st.BeginUpload(ctx, "repo")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.AppendUpload(ctx, "repo", u.ID, 0, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		checkParts(t, st, "repo", u.ID)
		_, err = st.CommitUpload(ctx, "repo", u.ID, wrong)
		if !errors.Is(err, storage.ErrDigestMismatch) {
			t.Fatalf("CommitUpload(%s) = %v, want ErrDigestMismatch", wrong, err)
		}
		var keys []string
		st.listKeys(ctx, st.prefix, "", -1, func(key string, _ int64) (bool, error) {
			keys = append(keys, key)
			return true, nil
		})
		if len(keys) != 0 {
			t.Fatalf("objects left after a digest mismatch: %q", keys)
		}
		out, err := st.c.ListMultipartUploads(ctx, &awss3.ListMultipartUploadsInput{Bucket: &st.bucket, Prefix: aws.String(st.prefix)})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Uploads) != 0 {
			t.Fatalf("%d multipart uploads left after a digest mismatch", len(out.Uploads))
		}
	}
}

// TestLargeCopyUsesUploadPartCopy lowers the CopyObject limit to exercise the
// UploadPartCopy path that objects over 5 GiB take.
func TestLargeCopyUsesUploadPartCopy(t *testing.T) {
	opts := testOptions(t, newPrefix())
	ct := &countingTransport{}
	opts.HTTPClient = &http.Client{Transport: ct}
	st := openStore(t, opts)
	defer func(a, b int64) { maxCopySize, copyPartSize = a, b }(maxCopySize, copyPartSize)
	maxCopySize, copyPartSize = 1<<20, MinPartSize
	ctx := t.Context()
	data := randomBytes(4, 12<<20+5)
	u, err := st.BeginUpload(ctx, "repo")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.AppendUpload(ctx, "repo", u.ID, 0, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	ct.take()
	d := sha256Of(data)
	if _, err := st.CommitUpload(ctx, "repo", u.ID, d); err != nil {
		t.Fatalf("commit: %v", err)
	}
	copies := 0
	for _, r := range ct.take() {
		if strings.HasPrefix(r, "PUT ") && strings.Contains(r, "partNumber=") && strings.Contains(r, "uploadId=") {
			copies++
		}
	}
	if copies < 4 { // the tail part, then 3 copied parts
		t.Fatalf("%d part requests during commit, want the tail part and 3 UploadPartCopy", copies)
	}
	if got := readAll(t, st, "repo", d); !bytes.Equal(got, data) {
		t.Fatal("content differs after a multipart copy")
	}
}
