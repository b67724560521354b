package testutil

import (
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"
)

func TestBuffer(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() { fmt.Fprintf(&b, "line %d\n", i) })
	}
	wg.Wait()
	if got := len(b.String()); got != 8*len("line 0\n") {
		t.Fatalf("%d bytes, want %d: %q", got, 8*len("line 0\n"), b.String())
	}
	var c Buffer
	fmt.Fprint(&c, "a\nb\nc\n")
	if got := c.Tail(2); got != "b\nc" {
		t.Fatalf("Tail(2) = %q", got)
	}
	if got := c.Tail(5); got != "a\nb\nc" {
		t.Fatalf("Tail(5) = %q", got)
	}
}

func TestFreePort(t *testing.T) {
	p := FreePort(t)
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		t.Fatalf("port %d is not free: %v", p, err)
	}
	l.Close()
}

func TestClock(t *testing.T) {
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	c := NewClock(t0)
	c.Advance(time.Minute)
	if got := c.Now(); !got.Equal(t0.Add(time.Minute)) {
		t.Fatalf("Now = %v", got)
	}
	c.Set(t0)
	if got := c.Now(); !got.Equal(t0) {
		t.Fatalf("Now after Set = %v", got)
	}
}
