// Package logbuf batches log lines into fewer writes.
//
// berth writes one structured line per request; written straight to stderr
// that is one write system call per request, which was 8 % of the CPU of a
// cached manifest GET under load (docs/benchmarks.md). A Writer collects
// lines and writes them together every interval, or as soon as MaxBuffer
// bytes are waiting; Handler flushes at once after every line at warning
// level or above, so problems are never held back.
//
//	w := logbuf.New(os.Stderr, 100*time.Millisecond)
//	defer w.Close() // MUST: flushes what is waiting
//	logger := slog.New(logbuf.Handler(slog.NewTextHandler(w, nil), w))
//
// Caveat: a process killed (SIGKILL, a crash outside Go's control) loses the
// info lines of at most the last interval. A Go panic is printed after them
// only if Close runs; warnings and errors are always already written.
package logbuf

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"
)

// MaxBuffer is how many bytes wait at most before a write flushes them.
const MaxBuffer = 64 << 10

// Writer buffers whole writes (a slog handler writes one line per call) and
// writes them to the underlying writer in order.
type Writer struct {
	mu     sync.Mutex
	w      io.Writer
	buf    []byte
	closed bool
	err    error // the last write error, reported by the next Write

	stop chan struct{}
	done chan struct{}
}

// New returns a Writer that flushes to w every interval.
func New(w io.Writer, interval time.Duration) *Writer {
	b := &Writer{w: w, buf: make([]byte, 0, MaxBuffer), stop: make(chan struct{}), done: make(chan struct{})}
	go b.run(interval)
	return b
}

func (b *Writer) run(interval time.Duration) {
	defer close(b.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			_ = b.Flush()
		}
	}
}

// Write appends p; it writes through once the buffer would exceed MaxBuffer
// (and always after Close).
func (b *Writer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.err; err != nil {
		b.err = nil
		return 0, err
	}
	if b.closed || len(p) > MaxBuffer {
		if err := b.flushLocked(); err != nil {
			return 0, err
		}
		return b.w.Write(p)
	}
	if len(b.buf)+len(p) > MaxBuffer {
		if err := b.flushLocked(); err != nil {
			return 0, err
		}
	}
	b.buf = append(b.buf, p...)
	return len(p), nil
}

// Flush writes what is waiting.
func (b *Writer) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	err := b.flushLocked()
	if err != nil {
		b.err = err
	}
	return err
}

func (b *Writer) flushLocked() error {
	if len(b.buf) == 0 {
		return nil
	}
	_, err := b.w.Write(b.buf)
	b.buf = b.buf[:0]
	return err
}

// Close stops the periodic flush and flushes; later writes go straight
// through.
func (b *Writer) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	close(b.stop)
	<-b.done
	return b.Flush()
}

// Handler returns h, which writes to w, flushing w after every record at
// warning level or above.
func Handler(h slog.Handler, w *Writer) slog.Handler { return flushing{h, w} }

type flushing struct {
	slog.Handler
	w *Writer
}

func (f flushing) Handle(ctx context.Context, r slog.Record) error {
	err := f.Handler.Handle(ctx, r)
	if r.Level >= slog.LevelWarn {
		if ferr := f.w.Flush(); err == nil {
			err = ferr
		}
	}
	return err
}

func (f flushing) WithAttrs(as []slog.Attr) slog.Handler {
	return flushing{f.Handler.WithAttrs(as), f.w}
}

func (f flushing) WithGroup(name string) slog.Handler {
	return flushing{f.Handler.WithGroup(name), f.w}
}
