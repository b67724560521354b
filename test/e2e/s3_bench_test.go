package e2e

// Benchmarks of the S3 backend against versitygw on loopback, in one run:
//
//	go test ./test/e2e -run '^$' -bench 'S3' -benchtime 1x -timeout 60m
//
// BenchmarkS3Blob pushes and pulls blobs through berth (monolithic: POST +
// PUT with the body; and streamed: POST + PATCH with the body + PUT) and moves
// the same bytes directly with the same SDK (aws-sdk-go-v2): a multipart put
// (same part size, parts sent one after the other as berth does), a
// server-side copy, and two gets — one GetObject stream, and the mirror of the
// multipart put: ranged GETs of one part size, one after the other. It
// samples berth's VmRSS. BERTH_BENCH_S3_SIZES overrides the sizes (default
// "64MiB,256MiB,1GiB"); every size is measured BERTH_BENCH_S3_ROUNDS times
// (default 3), interleaved, and the medians reported.
//
// BenchmarkS3Listing fills three key prefixes with 100, 1,000 and 10,000
// repositories (and as many tags in one repository) and times catalog and
// tag-list pages of 100 through berth at the start, middle and end of each.
// BERTH_BENCH_S3_TOTALS overrides the totals.
//
// They print markdown tables (docs/benchmarks.md, "S3 backend").

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/storage"
	"github.com/berth-registry/berth/internal/storage/s3"
)

const benchPartSize = 8 << 20 // berth's default multipart_part_size

func benchS3Config(port int, endpoint, prefix string) string {
	c := strings.Replace(s3Config(port, endpoint, prefix), `multipart_part_size = "5MiB"`, `multipart_part_size = "8MiB"`, 1)
	return strings.Replace(c, `level = "debug"`, `level = "warn"`, 1)
}

// benchStream yields size bytes: a 1 MiB random block repeated, each copy
// stamped with its index, so no two MiB are equal. Cheap to generate.
type benchStream struct {
	block []byte
	size  int64
	off   int64
}

func newBenchStream(seed uint64, size int64) *benchStream {
	b := make([]byte, 1<<20)
	r := rand.New(rand.NewPCG(seed, 1))
	for i := 0; i < len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], r.Uint64())
	}
	return &benchStream{block: b, size: size}
}

func (s *benchStream) Read(p []byte) (int, error) {
	if s.off >= s.size {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && s.off < s.size {
		in := int(s.off % int64(len(s.block)))
		want := min(len(p)-n, len(s.block)-in, int(s.size-s.off))
		copy(p[n:n+want], s.block[in:in+want])
		if in < 8 {
			var idx [8]byte
			binary.LittleEndian.PutUint64(idx[:], uint64(s.off>>20))
			copy(p[n:n+want], idx[in:])
		}
		n += want
		s.off += int64(want)
	}
	return n, nil
}

func (s *benchStream) reset() *benchStream {
	return &benchStream{block: s.block, size: s.size}
}

// rssPeak samples /proc/<pid>/status VmRSS every 50 ms until stop.
type rssPeak struct {
	pid  int
	peak atomic.Int64
	stop chan struct{}
	done chan struct{}
}

func startRSSPeak(pid int) *rssPeak {
	r := &rssPeak{pid: pid, stop: make(chan struct{}), done: make(chan struct{})}
	r.sample()
	go func() {
		defer close(r.done)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-r.stop:
				r.sample()
				return
			case <-t.C:
				r.sample()
			}
		}
	}()
	return r
}

func (r *rssPeak) sample() {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", r.pid))
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				if kb<<10 > r.peak.Load() {
					r.peak.Store(kb << 10)
				}
			}
		}
	}
}

func (r *rssPeak) finish() int64 {
	close(r.stop)
	<-r.done
	return r.peak.Load()
}

func benchSizes(b *testing.B) []int64 {
	spec := os.Getenv("BERTH_BENCH_S3_SIZES")
	if spec == "" {
		spec = "64MiB,256MiB,1GiB"
	}
	var out []int64
	for _, s := range strings.Split(spec, ",") {
		s = strings.TrimSpace(s)
		mult := int64(1)
		for suf, m := range map[string]int64{"GiB": 1 << 30, "MiB": 1 << 20, "KiB": 1 << 10} {
			if v, ok := strings.CutSuffix(s, suf); ok {
				s, mult = v, m
				break
			}
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 {
			b.Fatalf("BERTH_BENCH_S3_SIZES: bad size %q", s)
		}
		out = append(out, n*mult)
	}
	return out
}

func mibps(n int64, d time.Duration) float64 { return float64(n) / (1 << 20) / d.Seconds() }

func BenchmarkS3Blob(b *testing.B) {
	endpoint, _ := startVersitygw(b)
	prefix := fmt.Sprintf("bench-%d", time.Now().UnixNano())
	p := startBerthS3(b, b.TempDir(), func(port int) string { return benchS3Config(port, endpoint, prefix) })
	pid := p.cmd.Process.Pid
	// The same bucket and prefix served with enable_blob_redirect: pulls are
	// a 307 to a presigned URL, the bytes come from the bucket.
	pr := startBerthS3(b, b.TempDir(), func(port int) string {
		return strings.Replace(benchS3Config(port, endpoint, prefix), "path_style = true\n", "path_style = true\nenable_blob_redirect = true\n", 1)
	})
	ctx := context.Background()
	st, err := s3.New(ctx, s3.Options{Endpoint: endpoint, Bucket: e2eS3Bucket, Region: "us-east-1",
		AccessKeyID: e2eS3Access, SecretKey: e2eS3Secret, PathStyle: true})
	if err != nil {
		b.Fatal(err)
	}
	cl := st.Client()
	hc := &http.Client{}

	for i := 0; i < b.N; i++ {
		var table strings.Builder
		fmt.Fprintf(&table, "\n| size | direct put | direct put + copy | berth push, monolithic | monolithic/direct put | berth push, PATCH stream | PATCH/(direct put + copy) | direct get | direct part-wise get | berth pull | pull/direct get | pull/part-wise | pull, redirect | redirect/direct get | berth peak RSS push (mono, PATCH) | berth peak RSS pull |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
		for si, size := range benchSizes(b) {
			var ms []blobTimes
			for round := range benchRounds(b) {
				src := newBenchStream(uint64(si+1)*7919+uint64(i*100+round), size)
				h := sha256.New()
				io.Copy(h, src.reset())
				dgst := "sha256:" + hex.EncodeToString(h.Sum(nil))

				// Direct multipart put / get of the same bytes.
				key := prefix + "/direct-" + strconv.Itoa(si) + "-" + strconv.Itoa(round)
				t0 := time.Now()
				if err := directPut(ctx, cl, key, src.reset(), size); err != nil {
					b.Fatal(err)
				}
				dPut := time.Since(t0)
				// What content addressing adds on S3: the server-side copy of the
				// finished upload to blobs/<alg>/<hex> (berth does it at commit).
				t0 = time.Now()
				if _, err := cl.CopyObject(ctx, &awss3.CopyObjectInput{Bucket: aws.String(e2eS3Bucket), Key: aws.String(key + "-copy"),
					CopySource: aws.String(e2eS3Bucket + "/" + key)}); err != nil {
					b.Fatal(err)
				}
				dCopy := time.Since(t0)
				cl.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String(e2eS3Bucket), Key: aws.String(key + "-copy")})
				t0 = time.Now()
				out, err := cl.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(e2eS3Bucket), Key: &key})
				if err != nil {
					b.Fatal(err)
				}
				n, err := drain(out.Body)
				out.Body.Close()
				dGet := time.Since(t0)
				if err != nil || n != size {
					b.Fatalf("direct get: %d bytes, %v", n, err)
				}
				// The mirror of directPut: the object read back part by part.
				t0 = time.Now()
				n, err = directPartGet(ctx, cl, key, size)
				dParts := time.Since(t0)
				if err != nil || n != size {
					b.Fatalf("direct part-wise get: %d bytes, %v", n, err)
				}
				cl.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String(e2eS3Bucket), Key: &key})

				// Through berth: POST, then PUT ?digest= with the whole body.
				repo := "bench/blob" + strconv.Itoa(si) + "-" + strconv.Itoa(round)
				rss := startRSSPeak(pid)
				t0 = time.Now()
				resp, body := doReq(b, "POST", p.url("/v2/"+repo+"/blobs/uploads/"), nil, nil)
				wantStatus(b, "start upload", resp, body, http.StatusAccepted)
				u := p.resolve(b, resp.Header.Get("Location"))
				q := u.Query()
				q.Set("digest", dgst)
				u.RawQuery = q.Encode()
				req, _ := http.NewRequestWithContext(ctx, "PUT", u.String(), src.reset())
				req.ContentLength = size
				req.Header.Set("Content-Type", "application/octet-stream")
				res, err := hc.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				bPush := time.Since(t0)
				rssPush := rss.finish()
				if res.StatusCode != http.StatusCreated {
					b.Fatalf("push: %d", res.StatusCode)
				}

				// Through berth as docker and go-containerregistry push: POST, one
				// streamed PATCH with the whole body, PUT ?digest= without a body.
				// The digest is known only at the end: upload, then server-side copy.
				repoP := repo + "-patch"
				rssP := startRSSPeak(pid)
				t0 = time.Now()
				resp, body = doReq(b, "POST", p.url("/v2/"+repoP+"/blobs/uploads/"), nil, nil)
				wantStatus(b, "start upload", resp, body, http.StatusAccepted)
				req, _ = http.NewRequestWithContext(ctx, "PATCH", p.resolve(b, resp.Header.Get("Location")).String(), src.reset())
				req.ContentLength = size
				req.Header.Set("Content-Type", "application/octet-stream")
				res, err = hc.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusAccepted {
					b.Fatalf("patch: %d", res.StatusCode)
				}
				u = p.resolve(b, res.Header.Get("Location"))
				q = u.Query()
				q.Set("digest", dgst)
				u.RawQuery = q.Encode()
				resp, body = doReq(b, "PUT", u.String(), nil, nil)
				wantStatus(b, "finish upload", resp, body, http.StatusCreated)
				bPatch := time.Since(t0)
				rssPatch := rssP.finish()

				rss = startRSSPeak(pid)
				t0 = time.Now()
				res, err = hc.Get(p.url("/v2/" + repo + "/blobs/" + dgst))
				if err != nil {
					b.Fatal(err)
				}
				n, err = drain(res.Body)
				res.Body.Close()
				bPull := time.Since(t0)
				rssPull := rss.finish()
				if err != nil || n != size || res.StatusCode != 200 {
					b.Fatalf("pull: %d, %d bytes, %v", res.StatusCode, n, err)
				}

				t0 = time.Now()
				res, err = hc.Get(pr.url("/v2/" + repo + "/blobs/" + dgst)) // follows the 307
				if err != nil {
					b.Fatal(err)
				}
				n, err = drain(res.Body)
				res.Body.Close()
				bRedirect := time.Since(t0)
				if err != nil || n != size || res.StatusCode != 200 || res.Request.URL.Host == pr.host() {
					b.Fatalf("pull with redirect: %d, %d bytes from %s, %v", res.StatusCode, n, res.Request.URL.Host, err)
				}

				ms = append(ms, blobTimes{dPut, dCopy, dGet, dParts, bPush, bPatch, bPull, bRedirect, rssPush, rssPatch, rssPull})
			}
			m := medianTimes(ms)
			fmt.Fprintf(&table, "| %d MiB | %.0f MiB/s | %.0f MiB/s | %.0f MiB/s | %.0f %% | %.0f MiB/s | %.0f %% | %.0f MiB/s | %.0f MiB/s | %.0f MiB/s | %.0f %% | %.0f %% | %.0f MiB/s | %.0f %% | %.0f, %.0f MiB | %.0f MiB |\n",
				size>>20, mibps(size, m.dPut), mibps(size, m.dPut+m.dCopy), mibps(size, m.bPush), 100*m.dPut.Seconds()/m.bPush.Seconds(),
				mibps(size, m.bPatch), 100*(m.dPut+m.dCopy).Seconds()/m.bPatch.Seconds(),
				mibps(size, m.dGet), mibps(size, m.dParts), mibps(size, m.bPull), 100*m.dGet.Seconds()/m.bPull.Seconds(), 100*m.dParts.Seconds()/m.bPull.Seconds(),
				mibps(size, m.bRedirect), 100*m.dGet.Seconds()/m.bRedirect.Seconds(),
				float64(m.rssPush)/(1<<20), float64(m.rssPatch)/(1<<20), float64(m.rssPull)/(1<<20))
			b.ReportMetric(100*m.dPut.Seconds()/m.bPush.Seconds(), "push%direct")
			b.ReportMetric(100*m.dGet.Seconds()/m.bPull.Seconds(), "pull%direct")
			b.ReportMetric(100*m.dParts.Seconds()/m.bPull.Seconds(), "pull%parts")
		}
		fmt.Print(table.String()) // b.Log truncates long benchmark output
	}
}

// blobTimes are one round's measurements of one size.
type blobTimes struct {
	dPut, dCopy, dGet, dParts, bPush, bPatch, bPull, bRedirect time.Duration
	rssPush, rssPatch, rssPull                                 int64
}

// medianTimes takes the median of each duration over the rounds (the rounds
// interleave berth and the direct baseline, so both see the same neighbours)
// and the largest RSS.
func medianTimes(ms []blobTimes) blobTimes {
	med := func(f func(blobTimes) time.Duration) time.Duration {
		ds := make([]time.Duration, len(ms))
		for i, m := range ms {
			ds[i] = f(m)
		}
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	var out blobTimes
	out.dPut = med(func(m blobTimes) time.Duration { return m.dPut })
	out.dCopy = med(func(m blobTimes) time.Duration { return m.dCopy })
	out.dGet = med(func(m blobTimes) time.Duration { return m.dGet })
	out.dParts = med(func(m blobTimes) time.Duration { return m.dParts })
	out.bPush = med(func(m blobTimes) time.Duration { return m.bPush })
	out.bPatch = med(func(m blobTimes) time.Duration { return m.bPatch })
	out.bPull = med(func(m blobTimes) time.Duration { return m.bPull })
	out.bRedirect = med(func(m blobTimes) time.Duration { return m.bRedirect })
	for _, m := range ms {
		out.rssPush, out.rssPatch, out.rssPull = max(out.rssPush, m.rssPush), max(out.rssPatch, m.rssPatch), max(out.rssPull, m.rssPull)
	}
	return out
}

func benchRounds(b *testing.B) int {
	spec := os.Getenv("BERTH_BENCH_S3_ROUNDS")
	if spec == "" {
		return 3
	}
	n, err := strconv.Atoi(spec)
	if err != nil || n < 1 || n > 20 {
		b.Fatalf("BERTH_BENCH_S3_ROUNDS: want 1..20, got %q", spec)
	}
	return n
}

// directPut is a multipart upload of size bytes from r in parts of
// benchPartSize, one after the other.
func directPut(ctx context.Context, cl *awss3.Client, key string, r io.Reader, size int64) error {
	bucket := aws.String(e2eS3Bucket)
	mpu, err := cl.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: bucket, Key: &key})
	if err != nil {
		return err
	}
	buf := make([]byte, benchPartSize)
	var parts []types.CompletedPart
	for n := int32(1); ; n++ {
		k, err := io.ReadFull(r, buf)
		if k > 0 {
			out, perr := cl.UploadPart(ctx, &awss3.UploadPartInput{Bucket: bucket, Key: &key, UploadId: mpu.UploadId,
				PartNumber: aws.Int32(n), Body: bytes.NewReader(buf[:k]), ContentLength: aws.Int64(int64(k))})
			if perr != nil {
				return perr
			}
			parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(n), ETag: out.ETag})
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return err
		}
	}
	_, err = cl.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{Bucket: bucket, Key: &key, UploadId: mpu.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
	return err
}

// directPartGet reads key back in ranges of benchPartSize, one after the
// other: the get that mirrors directPut's multipart upload.
func directPartGet(ctx context.Context, cl *awss3.Client, key string, size int64) (int64, error) {
	var total int64
	for off := int64(0); off < size; off += benchPartSize {
		out, err := cl.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(e2eS3Bucket), Key: &key,
			Range: aws.String(fmt.Sprintf("bytes=%d-%d", off, min(off+benchPartSize, size)-1))})
		if err != nil {
			return total, err
		}
		n, err := drain(out.Body)
		out.Body.Close()
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

func benchTotals(b *testing.B) []int {
	spec := os.Getenv("BERTH_BENCH_S3_TOTALS")
	if spec == "" {
		spec = "100,1000,10000"
	}
	var out []int
	for _, s := range strings.Split(spec, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 100 {
			b.Fatalf("BERTH_BENCH_S3_TOTALS: bad total %q (at least 100)", s)
		}
		out = append(out, n)
	}
	return out
}

// fillListing stores total repositories (bench/r00000 ...) and total tags in
// bench/tags through the storage API directly, 16 at a time.
func fillListing(b *testing.B, st *s3.Store, total int) {
	ctx := context.Background()
	cfg := []byte(`{}`)
	cfgD := digest.FromBytes(cfg)
	m := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[]}`, cfgD, len(cfg)))
	man := storage.Manifest{Digest: digest.FromBytes(m), MediaType: "application/vnd.oci.image.manifest.v1+json", Data: m}
	jobs := make(chan func() error)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for range 16 {
		wg.Go(func() {
			for j := range jobs {
				if err := j(); err != nil {
					firstErr.CompareAndSwap(nil, err)
				}
			}
		})
	}
	for i := range total {
		repo := fmt.Sprintf("bench/r%05d", i)
		jobs <- func() error {
			return st.PutManifest(ctx, repo, storage.PutManifestRequest{Manifest: man, Tags: []string{"v1"}})
		}
	}
	for i := range total {
		tag := fmt.Sprintf("t%05d", i)
		jobs <- func() error {
			return st.PutManifest(ctx, "bench/tags", storage.PutManifestRequest{Manifest: man, Tags: []string{tag}})
		}
	}
	close(jobs)
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		b.Fatalf("fill: %v", err)
	}
}

func BenchmarkS3Listing(b *testing.B) {
	endpoint, _ := startVersitygw(b)
	ctx := context.Background()
	base := fmt.Sprintf("list-%d", time.Now().UnixNano())
	type inst struct {
		total  int
		prefix string
		p      *berthProc
	}
	var insts []inst
	var cl *awss3.Client
	for _, total := range benchTotals(b) {
		prefix := base + "-" + strconv.Itoa(total)
		st, err := s3.New(ctx, s3.Options{Endpoint: endpoint, Bucket: e2eS3Bucket, Region: "us-east-1",
			AccessKeyID: e2eS3Access, SecretKey: e2eS3Secret, PathStyle: true, KeyPrefix: prefix})
		if err != nil {
			b.Fatal(err)
		}
		cl = st.Client()
		t0 := time.Now()
		fillListing(b, st, total)
		b.Logf("filled %d repositories and %d tags in %s", total, total, time.Since(t0).Round(time.Second))
		p := startBerthS3(b, b.TempDir(), func(port int) string { return benchS3Config(port, endpoint, prefix) })
		insts = append(insts, inst{total, prefix, p})
	}

	const reps = 20
	median := func(fn func()) time.Duration {
		var ds []time.Duration
		for range reps {
			t0 := time.Now()
			fn()
			ds = append(ds, time.Since(t0))
		}
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	page := func(u string, want int) time.Duration {
		return median(func() {
			resp, body := doReq(b, "GET", u, nil, nil)
			wantStatus(b, "listing page", resp, body, http.StatusOK)
			var v struct {
				Repositories []string `json:"repositories"`
				Tags         []string `json:"tags"`
			}
			if err := json.Unmarshal(body, &v); err != nil || len(v.Repositories)+len(v.Tags) != want {
				b.Fatalf("%s: %d entries (%v), want %d", u, len(v.Repositories)+len(v.Tags), err, want)
			}
		})
	}
	// direct is the same page straight from the bucket: ListObjectsV2 with
	// StartAfter and MaxKeys 100, what berth sends.
	direct := func(prefix, startAfter string) time.Duration {
		return median(func() {
			in := &awss3.ListObjectsV2Input{Bucket: aws.String(e2eS3Bucket), Prefix: aws.String(prefix), MaxKeys: aws.Int32(100)}
			if startAfter != "" {
				in.StartAfter = aws.String(prefix + startAfter)
			}
			if _, err := cl.ListObjectsV2(ctx, in); err != nil {
				b.Fatal(err)
			}
		})
	}
	for i := 0; i < b.N; i++ {
		var table strings.Builder
		fmt.Fprintf(&table, "\n| total | page | catalog (berth) | same page, direct ListObjectsV2 | tags/list (berth) | same page, direct ListObjectsV2 |\n|---|---|---|---|---|---|\n")
		for _, in := range insts {
			for _, pos := range []struct {
				name  string
				after int
			}{{"first", 0}, {"middle", in.total / 2}, {"last", in.total - 100}} {
				if pos.after > 0 && pos.after < 100 {
					continue
				}
				catU, tagU := in.p.url("/v2/_catalog?n=100"), in.p.url("/v2/bench/tags/tags/list?n=100")
				var catAfter, tagAfter string
				if pos.after > 0 {
					catU += "&last=" + fmt.Sprintf("bench/r%05d", pos.after-1)
					tagU += "&last=" + fmt.Sprintf("t%05d", pos.after-1)
					catAfter, tagAfter = fmt.Sprintf("bench0r1%s", strings.Join(strings.Split(fmt.Sprintf("%05d", pos.after-1), ""), "1")), fmt.Sprintf("t%05d", pos.after-1)
				}
				// The catalog also lists bench/tags; tag pages are exact.
				catWant, tagWant := min(100, in.total-pos.after+1), min(100, in.total-pos.after)
				fmt.Fprintf(&table, "| %d | %s | %s | %s | %s | %s |\n", in.total, pos.name,
					ms(page(catU, catWant)), ms(direct(in.prefix+"/_repos/", catAfter)),
					ms(page(tagU, tagWant)), ms(direct(in.prefix+"/repositories/bench/tags/_manifests/tags/", tagAfter)))
			}
		}
		fmt.Print(table.String()) // b.Log truncates long benchmark output
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

// drain reads r to the end through one 1 MiB buffer, the same way for the
// direct GET and the pulls through berth: io.Discard's own ReadFrom reads in
// 8 KiB pieces, and on 2 shared cores the client's read calls would weigh on
// whichever path has the least CPU to spare.
func drain(r io.Reader) (int64, error) {
	return io.CopyBuffer(struct{ io.Writer }{io.Discard}, struct{ io.Reader }{r}, make([]byte, 1<<20))
}
