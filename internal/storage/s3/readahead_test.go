package s3

import (
	"bytes"
	"context"
	"errors"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/berth-registry/berth/internal/storage"
	"github.com/berth-registry/berth/internal/storage/storagetest"
)

// fakeRanges is an object of data answered part by part through fetch, with
// hooks to hold parts back, fail them, and count fetches in flight.
type fakeRanges struct {
	data     []byte
	partSize int64

	// wait, when set, is called before part k (its index) is answered.
	wait func(ctx context.Context, k int) error
	// failAt: the index of a part that fails (after scribbling over dst).
	failAt int

	active, peak atomic.Int64
	mu           sync.Mutex
	completed    []int // part indexes in the order their fetches succeeded
}

var errFake = errors.New("fake: part failed")

func (f *fakeRanges) fetch(ctx context.Context, off int64, dst []byte) error {
	n := f.active.Add(1)
	defer f.active.Add(-1)
	for {
		p := f.peak.Load()
		if n <= p || f.peak.CompareAndSwap(p, n) {
			break
		}
	}
	k := int(off / f.partSize)
	if f.wait != nil {
		if err := f.wait(ctx, k); err != nil {
			return err
		}
	}
	if k == f.failAt {
		for i := range dst {
			dst[i] = 0xEE // garbage that must never reach the client
		}
		return errFake
	}
	copy(dst, f.data[off:off+int64(len(dst))])
	f.mu.Lock()
	f.completed = append(f.completed, k)
	f.mu.Unlock()
	return nil
}

func newPool(size int64) *partPool { return newPartPool(size, 8) }

// Parts that complete out of order (each waits for the later parts of its
// window) are still delivered in order, through Read and through WriteTo,
// for the whole object and for ranges that do not start on a part.
func TestReadAheadOrder(t *testing.T) {
	const part, window = 1000, 3
	data := randomBytes(1, 20*part+333)
	for _, rng := range [][2]int64{{0, int64(len(data))}, {1234, 10 * part}, {int64(len(data)) - 5, 5}} {
		for _, viaWriteTo := range []bool{false, true} {
			// Part k waits for part k+1 of the same group of `window`
			// parts (counted from the range's start): the last part of a
			// group completes first.
			done := make([]chan struct{}, 64)
			for i := range done {
				done[i] = make(chan struct{})
			}
			var rel sync.Mutex
			closed := map[int]bool{}
			off0 := rng[0]
			nparts := int((rng[1] + part - 1) / part)
			fr := &fakeRanges{data: data, partSize: part, failAt: -1}
			fetch := func(ctx context.Context, off int64, dst []byte) error {
				k := int((off - off0) / part)
				if k+1 < nparts && (k+1)%window != 0 {
					select {
					case <-done[k+1]:
					case <-ctx.Done():
						return ctx.Err()
					}
				}
				copy(dst, data[off:off+int64(len(dst))])
				fr.mu.Lock()
				fr.completed = append(fr.completed, k)
				fr.mu.Unlock()
				rel.Lock()
				if !closed[k] {
					closed[k] = true
					close(done[k])
				}
				rel.Unlock()
				return nil
			}
			r := newReadAhead(t.Context(), fetch, newPool(part), part, window, rng[0], rng[1])
			var got []byte
			var err error
			if viaWriteTo {
				var buf bytes.Buffer
				_, err = r.WriteTo(&buf)
				got = buf.Bytes()
			} else {
				got, err = io.ReadAll(r)
			}
			r.Close()
			if err != nil {
				t.Fatalf("range %v: %v", rng, err)
			}
			if !bytes.Equal(got, data[rng[0]:rng[0]+rng[1]]) {
				t.Fatalf("range %v (WriteTo %v): %d bytes, not the object's", rng, viaWriteTo, len(got))
			}
			if nparts >= window {
				inOrder := true
				for i, k := range fr.completed {
					if k != i {
						inOrder = false
					}
				}
				if inOrder {
					t.Fatalf("range %v: parts completed in order %v: the test proves nothing", rng, fr.completed)
				}
			}
		}
	}
}

// A 64 MiB blob read with 4 parts of 1 MiB allocates about 4 MiB, and no
// more than 4 fetches ever run at once.
func TestReadAheadMemoryBound(t *testing.T) {
	const part, window = 1 << 20, 4
	data := randomBytes(2, 64<<20)
	f := &fakeRanges{data: data, partSize: part, failAt: -1}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	r := newReadAhead(t.Context(), f.fetch, newPool(part), part, window, 0, int64(len(data)))
	n, err := io.Copy(io.Discard, r)
	r.Close()
	runtime.ReadMemStats(&after)
	if err != nil || n != int64(len(data)) {
		t.Fatalf("copied %d, %v", n, err)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("allocated %d bytes for a %d-byte blob, %d fetches at most at once", alloc, len(data), f.peak.Load())
	if limit := uint64(window*part + 512<<10); alloc > limit {
		t.Fatalf("allocated %d bytes, want at most %d (window × part + 512 KiB)", alloc, limit)
	}
	if p := f.peak.Load(); p > window || p < 2 {
		t.Fatalf("%d fetches at once, want 2..%d", p, window)
	}
}

// A failing part: every byte before it is delivered, none of it (nor of
// anything after it), the error is returned, and the other fetches stop.
func TestReadAheadError(t *testing.T) {
	const part, window = 1000, 4
	data := randomBytes(3, 10*part)
	for _, viaWriteTo := range []bool{false, true} {
		f := &fakeRanges{data: data, partSize: part, failAt: 3}
		r := newReadAhead(t.Context(), f.fetch, newPool(part), part, window, 0, int64(len(data)))
		var got []byte
		var err error
		if viaWriteTo {
			var buf bytes.Buffer
			_, err = r.WriteTo(&buf)
			got = buf.Bytes()
		} else {
			got, err = io.ReadAll(r)
		}
		if !errors.Is(err, errFake) {
			t.Fatalf("err = %v, want the part's error", err)
		}
		if !bytes.Equal(got, data[:3*part]) {
			t.Fatalf("got %d bytes before the error, want exactly the 3 parts before it", len(got))
		}
		if _, err := r.Read(make([]byte, 10)); !errors.Is(err, errFake) {
			t.Fatalf("the error is not sticky: %v", err)
		}
		r.Close()
		if a := f.active.Load(); a != 0 {
			t.Fatalf("%d fetches still running after Close", a)
		}
	}
}

// A client that goes away (its request context is cancelled) or a body
// closed half-way stops every fetch: Close returns only once all fetch
// goroutines have, and none is left behind.
func TestReadAheadCancel(t *testing.T) {
	const part, window = 1000, 4
	data := randomBytes(4, 20*part)
	for _, how := range []string{"context", "close"} {
		f := &fakeRanges{data: data, partSize: part, failAt: -1}
		f.wait = func(ctx context.Context, k int) error {
			if k < 2 {
				return nil
			}
			<-ctx.Done() // parts from 2 on hang until cancelled
			return ctx.Err()
		}
		before := runtime.NumGoroutine()
		ctx, cancel := context.WithCancel(t.Context())
		r := newReadAhead(ctx, f.fetch, newPool(part), part, window, 0, int64(len(data)))
		got := make([]byte, 2*part)
		if _, err := io.ReadFull(r, got); err != nil || !bytes.Equal(got, data[:2*part]) {
			t.Fatalf("%s: first parts: %v", how, err)
		}
		if how == "context" {
			cancel()
			if _, err := r.Read(make([]byte, 1)); !errors.Is(err, context.Canceled) {
				t.Fatalf("read after the client left: %v", err)
			}
		}
		r.Close()
		cancel()
		if a := f.active.Load(); a != 0 {
			t.Fatalf("%s: %d fetches still running after Close", how, a)
		}
		if n := runtime.NumGoroutine(); n > before {
			t.Fatalf("%s: %d goroutines after Close, %d before", how, n, before)
		}
	}
}

func readAheadOptions(t *testing.T, prefix string) Options {
	o := testOptions(t, prefix)
	o.ReadAheadParts = 3
	o.ReadAheadPartSize = 64 << 10
	return o
}

// The storage contract holds with read-ahead on (parts of 64 KiB, so the
// contract's larger blobs use it).
func TestContractReadAhead(t *testing.T) {
	server(t)
	storagetest.RunWithReopen(t,
		func(t *testing.T) storage.Store { return openStore(t, readAheadOptions(t, newPrefix())) },
		func(t *testing.T, s storage.Store) storage.Store {
			return openStore(t, readAheadOptions(t, s.(*Store).prefix))
		})
}

// Against versitygw: whole blobs and ranges read with read-ahead are the
// blob's bytes, and a blob whose object is gone is ErrBlobUnknown before any
// byte is sent.
func TestReadAheadS3(t *testing.T) {
	st := openStore(t, readAheadOptions(t, newPrefix()))
	ctx := t.Context()
	data := randomBytes(5, 1<<20+777)
	d := sha256Of(data)
	pushBlob(t, st, "ra/repo", data)
	if got := readAll(t, st, "ra/repo", d); !bytes.Equal(got, data) {
		t.Fatalf("whole blob: %d bytes differ", len(got))
	}
	for _, rng := range [][2]int64{{0, 200 << 10}, {65535, 300 << 10}, {1 << 20, -1}, {100, 64<<10 + 1}} {
		rc, err := st.OpenBlob(ctx, "ra/repo", d, rng[0], rng[1])
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		end := int64(len(data))
		if rng[1] >= 0 {
			end = rng[0] + rng[1]
		}
		if err != nil || !bytes.Equal(got, data[rng[0]:end]) {
			t.Fatalf("range %v: %d bytes, %v", rng, len(got), err)
		}
	}
	// An object that is gone when the first part is fetched: the error
	// comes from opening the blob, before any byte.
	if _, err := st.openReadAhead(ctx, st.prefix+"blobs/sha256/missing", 0, 1<<20); !isNotFound(err) {
		t.Fatalf("missing object: %v, want not found", err)
	}
}

// pushBlob stores data as a blob of repo through an upload session.
func pushBlob(t *testing.T, st *Store, repo string, data []byte) {
	t.Helper()
	ctx := t.Context()
	up, err := st.BeginUpload(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.UploadWhole(ctx, repo, up.ID, sha256Of(data), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
}

// The first part's error is OpenBlob's.
func TestReadAheadFirstPartError(t *testing.T) {
	f := &fakeRanges{data: make([]byte, 5000), partSize: 1000, failAt: 0}
	r := newReadAhead(t.Context(), f.fetch, newPool(1000), 1000, 3, 0, 5000)
	defer r.Close()
	if err := r.first(); !errors.Is(err, errFake) {
		t.Fatalf("first: %v", err)
	}
}
