package s3

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"io"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// BenchmarkPush stores one blob per iteration on versitygw, through the
// store's verbs as the registry calls them: "whole" (BeginUpload +
// UploadWhole, a monolithic push) and "chunked" (BeginUpload, StatUpload +
// AppendUpload for each 16 MiB chunk, CommitUpload: a docker-style chunked
// push). BERTH_BENCH_PUSH_MIB sets the blob size (default 256).
//
//	go test ./internal/storage/s3/ -run '^$' -bench Push -benchtime 3x -cpuprofile /tmp/cpu.out
func BenchmarkPush(b *testing.B) {
	size := int64(256 << 20)
	if v, err := strconv.Atoi(os.Getenv("BERTH_BENCH_PUSH_MIB")); err == nil && v > 0 {
		size = int64(v) << 20
	}
	const chunk = 16 << 20
	st, err := New(b.Context(), Options{Endpoint: server(b), Bucket: testBucket, KeyPrefix: newPrefix(),
		AccessKeyID: testAccess, SecretKey: testSecret, PathStyle: true})
	if err != nil {
		b.Fatal(err)
	}
	block := randomBytes(1, 1<<20)
	blob := func(seq int) (io.Reader, digest.Digest) {
		var stamp [8]byte
		binary.LittleEndian.PutUint64(stamp[:], uint64(seq))
		var parts []io.Reader
		for i := int64(0); i < size>>20; i++ {
			parts = append(parts, bytes.NewReader(stamp[:]), bytes.NewReader(block[8:]))
		}
		h := sha256.New()
		io.Copy(h, io.MultiReader(parts...))
		for i := range parts {
			parts[i].(*bytes.Reader).Seek(0, io.SeekStart)
		}
		return io.MultiReader(parts...), digest.Digest("sha256:" + hex.EncodeToString(h.Sum(nil)))
	}
	ctx := b.Context()
	seq := 0
	for _, mode := range []string{"whole", "chunked"} {
		b.Run(mode, func(b *testing.B) {
			b.SetBytes(size)
			var commit time.Duration
			defer func() { b.ReportMetric(commit.Seconds()/float64(b.N), "commit-s/op") }()
			for b.Loop() {
				b.StopTimer()
				seq++
				r, d := blob(seq)
				b.StartTimer()
				up, err := st.BeginUpload(ctx, "bench/push")
				if err != nil {
					b.Fatal(err)
				}
				if mode == "whole" {
					if _, err := st.UploadWhole(ctx, "bench/push", up.ID, d, r); err != nil {
						b.Fatal(err)
					}
					continue
				}
				for off := int64(0); off < size; off += chunk {
					info, err := st.StatUpload(ctx, "bench/push", up.ID)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := st.AppendUpload(ctx, "bench/push", up.ID, info.Size, io.LimitReader(r, chunk)); err != nil {
						b.Fatal(err)
					}
				}
				t0 := time.Now()
				if _, err := st.CommitUpload(ctx, "bench/push", up.ID, d); err != nil {
					b.Fatal(err)
				}
				commit += time.Since(t0)
			}
		})
	}
}
