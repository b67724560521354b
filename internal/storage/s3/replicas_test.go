package s3

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/berth-registry/berth/internal/redisstate"
	"github.com/berth-registry/berth/internal/redistest"
	"github.com/berth-registry/berth/internal/storage"
)

// Without a Locker, a second process writing a session's state from a stale
// read is refused (If-Match on the state object's ETag), not applied.
func TestStaleStateWriteRefused(t *testing.T) {
	opts := testOptions(t, newPrefix())
	a, b := openStore(t, opts), openStore(t, opts)
	ctx := t.Context()
	u, err := a.BeginUpload(ctx, "team/app")
	if err != nil {
		t.Fatal(err)
	}
	stale, err := a.loadSession(ctx, "team/app", u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.AppendUpload(ctx, "team/app", u.ID, 0, bytes.NewReader([]byte("hello"))); err != nil {
		t.Fatal(err)
	}
	stale.Size = 99
	if err := a.saveSession(ctx, u.ID, stale); !errors.Is(err, storage.ErrUploadOffset) {
		t.Fatalf("stale state write: %v, want ErrUploadOffset", err)
	}
	if info, err := a.StatUpload(ctx, "team/app", u.ID); err != nil || info.Size != 5 {
		t.Fatalf("state after refused write: %+v, %v", info, err)
	}
	// The fresh state writes fine (and a chunk continues on a).
	if n, err := a.AppendUpload(ctx, "team/app", u.ID, 5, bytes.NewReader([]byte(" world"))); err != nil || n != 11 {
		t.Fatalf("append after: %d, %v", n, err)
	}
	if _, err := b.CommitUpload(ctx, "team/app", u.ID, sha256Of([]byte("hello world"))); err != nil {
		t.Fatal(err)
	}
}

// gateReader yields first, then blocks until release is closed, then EOF.
type gateReader struct {
	first   []byte
	started chan struct{}
	release chan struct{}
}

func (r *gateReader) Read(p []byte) (int, error) {
	if r.first != nil {
		n := copy(p, r.first)
		r.first = nil
		close(r.started)
		return n, nil
	}
	<-r.release
	return 0, io.EOF
}

// With a Redis Locker, an append to a session on one store waits while
// another store (replica) is appending to it, then sees the new offset.
func TestLockerSerialisesAppendsAcrossStores(t *testing.T) {
	rs := redistest.Start(t)
	lock := func() Locker {
		r, err := redisstate.Open(t.Context(), rs.URL(), "s3test:", nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		return r
	}
	opts := testOptions(t, newPrefix())
	opts.Locker = lock()
	a := openStore(t, opts)
	opts.Locker = lock()
	b := openStore(t, opts)
	ctx := t.Context()
	u, err := a.BeginUpload(ctx, "team/app")
	if err != nil {
		t.Fatal(err)
	}

	gr := &gateReader{first: []byte("first-"), started: make(chan struct{}), release: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		_, err := a.AppendUpload(ctx, "team/app", u.ID, 0, gr)
		done <- err
	}()
	<-gr.started // a holds the session's lock and is mid-append

	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = b.AppendUpload(short, "team/app", u.ID, 0, bytes.NewReader([]byte("other")))
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("append on b while a appends: %v, want to wait for the lock", err)
	}
	close(gr.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Now b gets the lock and sees a's bytes: offset 0 no longer continues.
	if _, err := b.AppendUpload(ctx, "team/app", u.ID, 0, bytes.NewReader([]byte("other"))); !errors.Is(err, storage.ErrUploadOffset) {
		t.Fatalf("stale offset on b: %v", err)
	}
	if n, err := b.AppendUpload(ctx, "team/app", u.ID, 6, bytes.NewReader([]byte("second"))); err != nil || n != 12 {
		t.Fatalf("append on b: %d, %v", n, err)
	}
	if _, err := a.CommitUpload(ctx, "team/app", u.ID, sha256Of([]byte("first-second"))); err != nil {
		t.Fatal(err)
	}
}

type downLocker struct{}

func (downLocker) Lock(context.Context, string) (func(), error) {
	return nil, errors.New("dial tcp 127.0.0.1:6379: connect: connection refused")
}

// When the Locker does not answer, appends fail as unavailable (503), and
// the session is untouched.
func TestLockerDown(t *testing.T) {
	opts := testOptions(t, newPrefix())
	a := openStore(t, opts)
	opts.Locker = downLocker{}
	b := openStore(t, opts)
	ctx := t.Context()
	u, err := a.BeginUpload(ctx, "team/app")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.AppendUpload(ctx, "team/app", u.ID, 0, bytes.NewReader([]byte("x"))); !errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("append with the locker down: %v", err)
	}
	if _, err := b.UploadWhole(ctx, "team/app", u.ID, sha256Of([]byte("x")), bytes.NewReader([]byte("x"))); !errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("whole upload with the locker down: %v", err)
	}
	if info, err := a.StatUpload(ctx, "team/app", u.ID); err != nil || info.Size != 0 {
		t.Fatalf("session: %+v, %v", info, err)
	}
}
