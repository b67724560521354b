package logbuf

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// countingWriter records each write it receives.
type countingWriter struct {
	mu     sync.Mutex
	writes int
	buf    bytes.Buffer
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes++
	return c.buf.Write(p)
}

func (c *countingWriter) snapshot() (int, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writes, c.buf.String()
}

// Info lines are batched into one write (the interval is an hour: only
// Close writes them); a warning flushes at once, with what came before it,
// in order; nothing is lost and lines are never split.
func TestBatchesAndFlushes(t *testing.T) {
	cw := &countingWriter{}
	w := New(cw, time.Hour)
	log := slog.New(Handler(slog.NewTextHandler(w, nil), w))
	for i := range 100 {
		log.Info("request", "n", i)
	}
	if n, _ := cw.snapshot(); n != 0 {
		t.Fatalf("%d writes for 100 buffered info lines", n)
	}
	log.With("k", "v").Warn("trouble")
	n, out := cw.snapshot()
	if n != 1 || strings.Count(out, "\n") != 101 || !strings.Contains(out, "n=99") || !strings.HasSuffix(out, "msg=trouble k=v\n") {
		t.Fatalf("after a warning: %d writes, %d lines, tail %q", n, strings.Count(out, "\n"), out[max(0, len(out)-80):])
	}
	log.Info("last")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, out := cw.snapshot(); !strings.HasSuffix(out, "msg=last\n") {
		t.Fatal("Close did not flush")
	}
	log.Info("after close") // written through
	if _, out := cw.snapshot(); !strings.HasSuffix(out, "msg=\"after close\"\n") {
		t.Fatal("a write after Close was lost")
	}
}

// The buffer never holds more than MaxBuffer bytes: beyond it a write
// flushes first; a single larger line is written through.
func TestBounded(t *testing.T) {
	cw := &countingWriter{}
	w := New(cw, time.Hour)
	defer w.Close()
	line := []byte(strings.Repeat("x", 1000) + "\n")
	for range 1000 {
		if _, err := w.Write(line); err != nil {
			t.Fatal(err)
		}
		w.mu.Lock()
		held := len(w.buf)
		w.mu.Unlock()
		if held > MaxBuffer {
			t.Fatalf("%d bytes buffered, bound %d", held, MaxBuffer)
		}
	}
	if n, _ := cw.snapshot(); n < 1000*1001/MaxBuffer-1 || n > 1000*1001/MaxBuffer+1 {
		t.Fatalf("%d writes for %d bytes", n, 1000*1001)
	}
	big := []byte(strings.Repeat("y", MaxBuffer+1))
	if _, err := w.Write(big); err != nil {
		t.Fatal(err)
	}
	if _, out := cw.snapshot(); !strings.HasSuffix(out, string(big)) {
		t.Fatal("a line over the bound was not written through")
	}
}

// The periodic flush writes waiting lines without any warning.
func TestPeriodicFlush(t *testing.T) {
	cw := &countingWriter{}
	w := New(cw, 5*time.Millisecond)
	defer w.Close()
	fmt.Fprintln(w, "line")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if _, out := cw.snapshot(); out == "line\n" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("never flushed")
		}
	}
}
