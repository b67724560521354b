package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
)

// Parallel ranged read-ahead for blob GETs ([blob_store.s3] read_ahead_parts).
//
// On a real object store one GET stream is limited by the throughput of one
// connection (tens to a few hundred MB/s), far below what the store serves to
// several. With read-ahead a blob GET is cut into parts of
// Options.ReadAheadPartSize; up to ReadAheadParts of them are fetched at once
// with ranged GetObjects, each into a buffer of its own, and handed to the
// client strictly in order:
//
//   - memory: at most ReadAheadParts buffers of ReadAheadPartSize per open
//     blob (the part being sent counts as one), taken from a pool that keeps
//     up to 2 × ReadAheadParts of them between GETs;
//   - order: a part is sent only once it is complete and every part before it
//     was sent, whatever order the GETs finish in;
//   - errors: a part that fails (after one retry of a broken body) is never
//     sent in part: the reader returns the error instead of its bytes, and
//     cancels the other fetches. The first part is fetched before OpenBlob
//     returns, so a missing object is still ErrBlobUnknown before any header;
//   - cancellation: the fetches run under the request's context, so a client
//     that goes away stops them; Close cancels them and waits for every
//     fetch goroutine to return before the buffers go back to the pool.

// partPool keeps up to cap(free) part buffers for the next GETs. Unlike a
// sync.Pool it keeps them across garbage collections: a fresh 8 MiB buffer
// costs its page faults on every GET otherwise.
type partPool struct {
	size int64
	free chan *[]byte
}

func newPartPool(size int64, keep int) *partPool {
	return &partPool{size: size, free: make(chan *[]byte, keep)}
}

func (p *partPool) Get() *[]byte {
	select {
	case b := <-p.free:
		return b
	default:
		b := make([]byte, p.size)
		return &b
	}
}

func (p *partPool) Put(b *[]byte) {
	select {
	case p.free <- b:
	default:
	}
}

// fetchFunc fills dst with the object's bytes [off, off+len(dst)), or fails.
type fetchFunc func(ctx context.Context, off int64, dst []byte) error

// raPart is one part of a readAhead: its buffer is filled by one fetch
// goroutine, which closes done when it has returned.
type raPart struct {
	buf  *[]byte
	n    int
	done chan struct{}
	err  error
}

// readAhead is the io.ReadCloser (and io.WriterTo) of a blob GET with
// read-ahead. It is not safe for concurrent use, like any body.
type readAhead struct {
	ctx      context.Context
	cancel   context.CancelFunc
	fetch    fetchFunc
	pool     *partPool
	partSize int64
	window   int // buffers in use at most: queued parts + the current one

	next  int64 // offset of the next part to start
	end   int64
	queue []*raPart // started parts, in order
	cur   *raPart   // the part being sent
	pos   int       // bytes of cur already sent
	err   error     // sticky
	wg    sync.WaitGroup

	closed bool
}

// newReadAhead reads [off, off+length) through fetch, window parts of
// partSize at a time. Its fetches run under a child of ctx.
func newReadAhead(ctx context.Context, fetch fetchFunc, pool *partPool, partSize int64, window int, off, length int64) *readAhead {
	ctx, cancel := context.WithCancel(ctx)
	return &readAhead{
		ctx: ctx, cancel: cancel, fetch: fetch, pool: pool,
		partSize: partSize, window: max(window, 1),
		next: off, end: off + length,
	}
}

// fill starts fetches until window buffers are in use or the range is done.
func (r *readAhead) fill() {
	inUse := len(r.queue)
	if r.cur != nil {
		inUse++
	}
	for ; inUse < r.window && r.next < r.end; inUse++ {
		n := min(r.partSize, r.end-r.next)
		bp := r.pool.Get()
		p := &raPart{buf: bp, n: int(n), done: make(chan struct{})}
		off := r.next
		r.next += n
		r.queue = append(r.queue, p)
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer close(p.done)
			p.err = r.fetch(r.ctx, off, (*bp)[:n])
		}()
	}
}

// first waits for the first part, so that an error opening the object is
// returned by OpenBlob rather than by the first Read.
func (r *readAhead) first() error {
	if _, err := r.current(); err != nil && err != io.EOF {
		return err
	}
	return nil
}

// current returns the unsent bytes of the current part, moving on to the
// next part (and starting the next fetch) when it is used up; io.EOF at the
// end of the range.
func (r *readAhead) current() ([]byte, error) {
	for {
		if r.err != nil {
			return nil, r.err
		}
		if r.cur != nil && r.pos < r.cur.n {
			return (*r.cur.buf)[r.pos:r.cur.n], nil
		}
		if r.cur != nil {
			r.pool.Put(r.cur.buf)
			r.cur = nil
		}
		r.fill()
		if len(r.queue) == 0 {
			return nil, io.EOF
		}
		p := r.queue[0]
		select {
		case <-p.done:
		case <-r.ctx.Done():
			r.fail(r.ctx.Err())
			continue
		}
		r.queue = r.queue[1:]
		if p.err != nil {
			r.pool.Put(p.buf) // its goroutine has returned
			r.fail(p.err)
			continue
		}
		r.cur, r.pos = p, 0
		r.fill()
	}
}

// fail makes err sticky and cancels every fetch.
func (r *readAhead) fail(err error) {
	if r.err == nil {
		r.err = err
	}
	r.cancel()
}

func (r *readAhead) Read(p []byte) (int, error) {
	if r.closed {
		return 0, errors.New("s3: read of a closed blob")
	}
	b, err := r.current()
	if err != nil {
		return 0, err
	}
	n := copy(p, b)
	r.pos += n
	return n, nil
}

// WriteTo sends every part to w in one Write each: no copy through another
// buffer.
func (r *readAhead) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if r.closed {
			return total, errors.New("s3: read of a closed blob")
		}
		b, err := r.current()
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
		n, err := w.Write(b)
		r.pos += n
		total += int64(n)
		if err != nil {
			r.fail(err)
			return total, err
		}
	}
}

// Close cancels the fetches still running, waits for their goroutines to
// return and gives the buffers back.
func (r *readAhead) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	r.cancel()
	r.wg.Wait()
	for _, p := range r.queue {
		r.pool.Put(p.buf)
	}
	r.queue = nil
	if r.cur != nil {
		r.pool.Put(r.cur.buf)
		r.cur = nil
	}
	return nil
}

// openReadAhead opens [offset, offset+length) of key with read-ahead and
// waits for its first part.
func (s *Store) openReadAhead(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	fetch := func(ctx context.Context, off int64, dst []byte) error {
		return s.fetchRange(ctx, key, off, dst)
	}
	r := newReadAhead(ctx, fetch, s.raPool, s.raPartSize, s.raParts, offset, length)
	if err := r.first(); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// fetchRange reads key's bytes [off, off+len(dst)) into dst with a ranged
// GetObject. The SDK retries the request; a body that breaks off is fetched
// once more.
func (s *Store) fetchRange(ctx context.Context, key string, off int64, dst []byte) error {
	rng := fmt.Sprintf("bytes=%d-%d", off, off+int64(len(dst))-1)
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		var out *awss3.GetObjectOutput
		out, err = s.c.GetObject(ctx, &awss3.GetObjectInput{Bucket: &s.bucket, Key: &key, Range: aws.String(rng)})
		if err != nil {
			return err // already retried by the SDK
		}
		if out.ContentLength != nil && *out.ContentLength != int64(len(dst)) {
			out.Body.Close()
			return fmt.Errorf("s3: range %s of %s: %d bytes in the answer", rng, key, *out.ContentLength)
		}
		_, err = io.ReadFull(out.Body, dst)
		out.Body.Close()
		if err == nil || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("s3: range %s of %s: %w", rng, key, err)
	}
	return nil
}
