package s3

// BenchmarkS3ReadAhead measures blob GETs through the store with and without
// read-ahead, from versitygw directly and through a proxy that limits every
// TCP connection to BERTH_BENCH_S3_RATE MB/s (default 50) from the server to
// the store: the stand-in for a real object store, where one stream is
// limited by one connection's throughput. The blob is BERTH_BENCH_S3_RA_SIZE
// (default 256MiB).
//
//	go test ./internal/storage/s3 -run '^$' -bench ReadAhead -benchtime 3x
//
// Reported: MB/s of one GET read to the end (io.Copy to io.Discard, i.e.
// through WriteTo), and the store's allocated bytes per GET.

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/s3test"
)

// rateProxy forwards loopback TCP connections to target, each one's answers
// limited to rate bytes/s (requests pass unlimited).
type rateProxy struct {
	ln     net.Listener
	target string
	rate   float64
	wg     sync.WaitGroup
}

func startRateProxy(tb testing.TB, target string, rate float64) *rateProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &rateProxy{ln: ln, target: target, rate: rate}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() { defer p.wg.Done(); p.serve(c) }()
		}
	}()
	tb.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

func (p *rateProxy) serve(c net.Conn) {
	defer c.Close()
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer s.Close()
	go func() { _, _ = io.Copy(s, c); s.Close() }()
	buf := make([]byte, 32<<10)
	var sent float64
	start := time.Now()
	for {
		n, err := s.Read(buf)
		if n > 0 {
			// No credit for idle time: a kept-alive connection that waited
			// does not get a burst.
			expected := time.Duration(sent / p.rate * float64(time.Second))
			if el := time.Since(start); el > expected+10*time.Millisecond {
				start = time.Now().Add(-expected)
			}
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
			sent += float64(n)
			if d := time.Duration(sent/p.rate*float64(time.Second)) - time.Since(start); d > 0 {
				time.Sleep(d)
			}
		}
		if err != nil {
			return
		}
	}
}

func envInt(name string, def int64) int64 {
	if v := os.Getenv(name); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > 0 {
			return n
		}
	}
	return def
}

type patternStream struct{ left int64 }

func (z *patternStream) Read(p []byte) (int, error) {
	if z.left <= 0 {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), z.left))
	for i := range p[:n] {
		p[i] = byte(z.left - int64(i))
	}
	z.left -= int64(n)
	return n, nil
}

func BenchmarkS3ReadAhead(b *testing.B) {
	srv := s3test.Shared(b)
	size := int64(256 << 20)
	if v := os.Getenv("BERTH_BENCH_S3_RA_SIZE"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > 0 {
			size = n << 20 // MiB
		}
	}
	rate := float64(envInt("BERTH_BENCH_S3_RATE", 50)) * 1e6
	ctx := context.Background()
	prefix := newPrefix()
	opts := Options{Endpoint: srv.Endpoint, Bucket: testBucket, Region: "us-east-1", KeyPrefix: prefix,
		AccessKeyID: testAccess, SecretKey: testSecret, PathStyle: true}
	st, err := New(ctx, opts)
	if err != nil {
		b.Fatal(err)
	}
	up, err := st.BeginUpload(ctx, "bench/ra")
	if err != nil {
		b.Fatal(err)
	}
	// The digest of the generated content, then the upload.
	h := digest.SHA256.Digester()
	if _, err := io.Copy(h.Hash(), &patternStream{left: size}); err != nil {
		b.Fatal(err)
	}
	d := h.Digest()
	if _, err := st.UploadWhole(ctx, "bench/ra", up.ID, d, &patternStream{left: size}); err != nil {
		b.Fatal(err)
	}
	host := srv.Endpoint[len("http://"):]
	proxy := startRateProxy(b, host, rate)
	for _, via := range []string{"direct", fmt.Sprintf("limited-%.0fMBps", rate/1e6)} {
		for _, ra := range [][2]int64{{0, 0}, {4, 8 << 20}, {8, 8 << 20}, {4, 16 << 20}} {
			name := fmt.Sprintf("%s/parts=%d/part=%dMiB", via, ra[0], ra[1]>>20)
			if ra[0] == 0 {
				name = via + "/single-stream"
			}
			b.Run(name, func(b *testing.B) {
				o := opts
				if via != "direct" {
					o.Endpoint = "http://" + proxy.ln.Addr().String()
				}
				o.ReadAheadParts, o.ReadAheadPartSize = int(ra[0]), ra[1]
				st, err := New(ctx, o)
				if err != nil {
					b.Fatal(err)
				}
				var ms0, ms1 runtime.MemStats
				runtime.ReadMemStats(&ms0)
				start := time.Now()
				for b.Loop() {
					rc, err := st.OpenBlob(ctx, "bench/ra", d, 0, -1)
					if err != nil {
						b.Fatal(err)
					}
					n, err := io.Copy(io.Discard, rc)
					rc.Close()
					if err != nil || n != size {
						b.Fatalf("read %d of %d: %v", n, size, err)
					}
				}
				el := time.Since(start)
				runtime.ReadMemStats(&ms1)
				b.ReportMetric(float64(size)*float64(b.N)/1e6/el.Seconds(), "MB/s")
				b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/float64(b.N)/(1<<20), "MiB-alloc/op")
			})
		}
	}
}
