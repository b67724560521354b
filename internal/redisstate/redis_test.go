package redisstate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-registry/berth/internal/redistest"
)

func open(t *testing.T, srv *redistest.Server, prefix string) *Redis {
	t.Helper()
	r, err := Open(context.Background(), srv.URL(), prefix, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// Locks exclude each other across clients (replicas); waiting ends with the
// context; an unlock frees the lock for the next.
func TestLock(t *testing.T) {
	srv := redistest.Start(t)
	a, b := open(t, srv, "p:"), open(t, srv, "p:")
	ctx := context.Background()

	var inside, overlaps atomic.Int32
	var wg sync.WaitGroup
	for i := range 16 {
		r := a
		if i%2 == 1 {
			r = b
		}
		wg.Go(func() {
			for range 5 {
				unlock, err := r.Lock(ctx, "upload-1")
				if err != nil {
					t.Error(err)
					return
				}
				if inside.Add(1) != 1 {
					overlaps.Add(1)
				}
				time.Sleep(time.Millisecond)
				inside.Add(-1)
				unlock()
			}
		})
	}
	wg.Wait()
	if overlaps.Load() != 0 {
		t.Fatalf("%d overlapping holders", overlaps.Load())
	}

	unlock, err := a.Lock(ctx, "upload-2")
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	_, err = b.Lock(short, "upload-2")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second holder: %v", err)
	}
	// Another name is independent; another prefix is another namespace.
	if u, err := b.Lock(ctx, "upload-3"); err != nil {
		t.Fatal(err)
	} else {
		u()
	}
	if u, err := open(t, srv, "other:").Lock(ctx, "upload-2"); err != nil {
		t.Fatal(err)
	} else {
		u()
	}
	unlock()
	u, err := b.Lock(ctx, "upload-2")
	if err != nil {
		t.Fatal(err)
	}
	u()
}

func TestCacheAndLoadOrCreate(t *testing.T) {
	srv := redistest.Start(t)
	a, b := open(t, srv, "p:"), open(t, srv, "p:")
	ctx := context.Background()

	if _, found, err := a.Get(ctx, "jwks"); err != nil || found {
		t.Fatalf("empty cache: %v %v", found, err)
	}
	if err := a.Set(ctx, "jwks", []byte("keys"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if v, found, err := b.Get(ctx, "jwks"); err != nil || !found || string(v) != "keys" {
		t.Fatalf("Get = %q %v %v", v, found, err)
	}
	if err := a.Set(ctx, "short", []byte("x"), 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // Redis expires it; not a timing assertion on berth
	if _, found, _ := b.Get(ctx, "short"); found {
		t.Error("expired entry still found")
	}

	// Replicas starting at once agree on one key.
	var mu sync.Mutex
	got := map[string]bool{}
	var created atomic.Int32
	var wg sync.WaitGroup
	for i := range 10 {
		r := a
		if i%2 == 1 {
			r = b
		}
		wg.Go(func() {
			v, err := r.LoadOrCreate(ctx, "signing-key", func() ([]byte, error) {
				return fmt.Appendf(nil, "key-%d", created.Add(1)), nil
			})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			got[string(v)] = true
			mu.Unlock()
		})
	}
	wg.Wait()
	if len(got) != 1 {
		t.Fatalf("replicas disagree on the key: %v", got)
	}
	// The generator's error is returned, nothing stored.
	if _, err := a.LoadOrCreate(ctx, "other", func() ([]byte, error) { return nil, errors.New("boom") }); err == nil || err.Error() != "boom" {
		t.Fatalf("create error: %v", err)
	}
}

// Token records: Update is atomic across clients and keeps the expiry.
func TestTokenStore(t *testing.T) {
	srv := redistest.Start(t)
	a, b := open(t, srv, "p:").Tokens(), open(t, srv, "p:").Tokens()
	ctx := context.Background()
	if err := a.Create(ctx, "id1", []byte("0"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := b.Create(ctx, "id1", []byte("0"), time.Hour); err == nil {
		t.Fatal("second Create of one id succeeded")
	}
	var wg sync.WaitGroup
	for i := range 40 {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			err := s.Update(ctx, "id1", func(rec []byte) ([]byte, error) {
				var n int
				fmt.Sscan(string(rec), &n)
				return fmt.Append(nil, n+1), nil
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	var final []byte
	b.Update(ctx, "id1", func(rec []byte) ([]byte, error) { final = rec; return nil, nil })
	if string(final) != "40" {
		t.Fatalf("after 40 concurrent increments: %q", final)
	}
	r := open(t, srv, "p:")
	if ttl := r.c.TTL(ctx, "p:token:id1").Val(); ttl <= 0 || ttl > time.Hour {
		t.Errorf("TTL after updates = %v", ttl)
	}
	// A missing record is nil, and returning nil stores nothing.
	var seen []byte = []byte("x")
	if err := a.Update(ctx, "nope", func(rec []byte) ([]byte, error) { seen = rec; return nil, nil }); err != nil || seen != nil {
		t.Fatalf("missing record: %q %v", seen, err)
	}
	// fn's error comes back unchanged.
	boom := errors.New("refused")
	if err := a.Update(ctx, "id1", func([]byte) ([]byte, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("fn error: %v", err)
	}
}

// The password of the URL never appears in errors or logs.
func TestOpenRedactsPassword(t *testing.T) {
	const pw = "Sup3r-s3cret-pw"
	var logs bytes.Buffer
	for _, u := range []string{"redis://:" + pw + "@127.0.0.1:1/0", "redis://u:" + pw + "@127.0.0.1:1/notadb", "http://u:" + pw + "@h/"} {
		r, err := Open(context.Background(), u, "p:", newLogger(&logs))
		if err == nil {
			if perr := r.Ping(context.Background()); perr != nil && strings.Contains(perr.Error(), pw) {
				t.Errorf("ping error shows the password: %v", perr)
			}
			r.Close()
		} else if strings.Contains(err.Error(), pw) {
			t.Errorf("error shows the password: %v", err)
		}
	}
	if strings.Contains(logs.String(), pw) {
		t.Errorf("log shows the password:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "xxxxx") {
		t.Errorf("expected a redacted URL in the log:\n%s", logs.String())
	}
}

func newLogger(w *bytes.Buffer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

func TestKeyring(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	a, b := open(t, srv, "p:").Keyring("ring"), open(t, srv, "p:").Keyring("ring")
	if doc, err := a.LoadKeyring(ctx); err != nil || doc != nil {
		t.Fatalf("empty keyring: %q, %v", doc, err)
	}
	swap := func(k *Keyring, old, next string, want bool) {
		t.Helper()
		var o []byte
		if old != "" {
			o = []byte(old)
		}
		ok, err := k.SwapKeyring(ctx, o, []byte(next))
		if err != nil || ok != want {
			t.Fatalf("SwapKeyring(%q, %q) = %v, %v; want %v", old, next, ok, err, want)
		}
	}
	swap(a, "", "v1", true)
	swap(b, "", "v1b", false) // b did not see v1
	swap(b, "v1", "v2", true)
	swap(a, "v1", "v2a", false) // a lost the race
	if doc, err := a.LoadKeyring(ctx); err != nil || string(doc) != "v2" {
		t.Fatalf("keyring = %q, %v; want v2", doc, err)
	}
	// Another prefix is another registry.
	if doc, _ := open(t, srv, "q:").Keyring("ring").LoadKeyring(ctx); doc != nil {
		t.Fatalf("keyring leaks across prefixes: %q", doc)
	}
	r := open(t, srv, "p:")
	if v, err := r.LoadKey(ctx, "none"); err != nil || v != nil {
		t.Fatalf("LoadKey of nothing = %q, %v", v, err)
	}
	if _, err := r.LoadOrCreate(ctx, "k", func() ([]byte, error) { return []byte("x"), nil }); err != nil {
		t.Fatal(err)
	}
	if v, err := r.LoadKey(ctx, "k"); err != nil || string(v) != "x" {
		t.Fatalf("LoadKey = %q, %v", v, err)
	}
}

// Invalidations published by one client reach every subscriber; reset runs
// at each (re)subscription, also after the connection was killed.
func TestManifestInvalidations(t *testing.T) {
	srv := redistest.Start(t)
	a, b := open(t, srv, "p:"), open(t, srv, "p:")
	other := open(t, srv, "q:")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan string, 10)
	resets := make(chan struct{}, 10)
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.ManifestInvalidations(ctx, func(m string) { got <- m }, func() { resets <- struct{}{} })
	}()
	<-resets
	if err := other.PublishManifestInvalidation(ctx, "wrong prefix"); err != nil {
		t.Fatal(err)
	}
	if err := a.PublishManifestInvalidation(ctx, "x t repo v1"); err != nil {
		t.Fatal(err)
	}
	if m := <-got; m != "x t repo v1" {
		t.Fatalf("got %q", m)
	}
	// Kill the subscriber's connection: it resubscribes and resets.
	if err := a.c.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	<-resets
	if err := a.PublishManifestInvalidation(ctx, "x m repo sha256:ab"); err != nil {
		t.Fatal(err)
	}
	if m := <-got; m != "x m repo sha256:ab" {
		t.Fatalf("after the reconnect got %q", m)
	}
	cancel()
	<-done // ends with ctx, even while blocked in a read
}
