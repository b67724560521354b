package server

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"
)

type countingPruner struct {
	calls atomic.Int32
	fail  bool
}

func (c *countingPruner) Prune() (int, error) {
	c.calls.Add(1)
	if c.fail {
		return 0, errors.New("disk on fire")
	}
	return 2, nil
}

// Dead token records are pruned periodically, not only at startup, and a
// failing prune does not stop the loop.
func TestPruneTokensPeriodically(t *testing.T) {
	for _, fail := range []bool{false, true} {
		p := &countingPruner{fail: fail}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			a := &app{log: slog.New(slog.DiscardHandler)}
			a.every(ctx, time.Millisecond, "pruning dead refresh/session tokens", a.pruneTokens(p))
			close(done)
		}()
		deadline := time.Now().Add(10 * time.Second)
		for p.calls.Load() < 3 {
			if time.Now().After(deadline) {
				t.Fatalf("fail=%v: %d prunes", fail, p.calls.Load())
			}
			time.Sleep(time.Millisecond)
		}
		cancel()
		<-done
	}
}
