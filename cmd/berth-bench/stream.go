package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
)

// blockSize is the period of the generated content: one pseudo-random block,
// stamped with the stream id and the block index in its first 16 bytes, so no
// two blocks of a run (nor of two streams) are equal. Generating it costs a
// memory copy: far below what sha256, a disk or a socket can take.
const blockSize = 1 << 20

// newBlock returns the pseudo-random block of a seed.
func newBlock(seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 0x6265727468))
	b := make([]byte, blockSize)
	for i := 0; i < blockSize; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], r.Uint64())
	}
	return b
}

// stream is a deterministic reader of size bytes: the same block, id and size
// always give the same bytes, whatever the sizes of the reads.
type stream struct {
	block []byte
	id    uint64
	size  int64
	off   int64
}

func newStream(block []byte, id uint64, size int64) *stream {
	return &stream{block: block, id: id, size: size}
}

func (s *stream) Read(p []byte) (int, error) {
	if s.off >= s.size {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && s.off < s.size {
		idx := uint64(s.off / blockSize)
		in := int(s.off % blockSize)
		want := min(len(p)-n, blockSize-in)
		if rest := s.size - s.off; int64(want) > rest {
			want = int(rest)
		}
		copy(p[n:n+want], s.block[in:in+want])
		if in < 16 {
			var hdr [16]byte
			binary.LittleEndian.PutUint64(hdr[0:], s.id^binary.LittleEndian.Uint64(s.block[0:]))
			binary.LittleEndian.PutUint64(hdr[8:], idx^binary.LittleEndian.Uint64(s.block[8:]))
			copy(p[n:n+want], hdr[in:])
		}
		n += want
		s.off += int64(want)
	}
	return n, nil
}

// WriteTo lets io.Copy skip its own buffer: whole blocks go to w.
func (s *stream) WriteTo(w io.Writer) (int64, error) {
	buf := make([]byte, blockSize)
	var total int64
	for {
		n, err := s.Read(buf)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// parseSize reads 1GiB, 256MiB, 100KiB, 1GB, 1048576 (bytes).
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
		{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1},
	}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s = strings.TrimSpace(strings.TrimSuffix(s, u.suffix))
			mult = u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bad size %q", s)
	}
	if n < 0 || (n > 0 && mult > (1<<62)/n) {
		return 0, errors.New("size out of range")
	}
	return n * mult, nil
}

// fmtBytes prints a size in binary units.
func fmtBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
