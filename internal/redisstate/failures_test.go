package redisstate

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/berth-registry/berth/internal/access"
	"github.com/berth-registry/berth/internal/redistest"
)

var _ access.FailureCounter = (*Redis)(nil)

func TestFailuresSharedAcrossClients(t *testing.T) {
	srv := redistest.Start(t)
	a, b := open(t, srv, "t:"), open(t, srv, "t:")
	ctx := context.Background()
	if n, left, err := a.AddFailures(ctx, "192.0.2.1", 0, time.Minute); err != nil || n != 0 || left != 0 {
		t.Fatalf("fresh: %d %s %v", n, left, err)
	}
	// Two replicas counting at once lose nothing.
	var wg sync.WaitGroup
	for _, r := range []*Redis{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				if _, _, err := r.AddFailures(ctx, "192.0.2.1", 1, time.Minute); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	n, left, err := b.AddFailures(ctx, "192.0.2.1", 0, time.Minute)
	if err != nil || n != 100 || left <= 0 || left > time.Minute {
		t.Fatalf("after 100 failures from two clients: n=%d left=%s err=%v", n, left, err)
	}
	if n, _, _ := a.AddFailures(ctx, "192.0.2.2", 0, time.Minute); n != 0 {
		t.Fatalf("another address: %d", n)
	}
	// The window ends: the count is gone.
	if _, _, err := a.AddFailures(ctx, "192.0.2.3", 1, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, _, err := b.AddFailures(ctx, "192.0.2.3", 0, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the window never ended")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A prefix separates registries sharing one Redis.
	other := open(t, srv, "other:")
	if n, _, _ := other.AddFailures(ctx, "192.0.2.1", 0, time.Minute); n != 0 {
		t.Fatalf("another prefix sees %d", n)
	}
}
