package s3

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
)

// Large blob GETs from a plain-HTTP endpoint (an in-cluster MinIO or
// versitygw) can move from the object store's socket to the client's socket
// without passing through berth's memory: the request is signed by the SDK
// (a presigned GET), written and its response head parsed by net/http
// (Request.Write, ReadResponse), and the body is then handed to the client
// connection's ReadFrom as the bare TCP connection, which Linux splices
// kernel-side. Proxying otherwise costs two extra copies of every byte (read
// into berth, write out of it) — on a CPU-bound host that is the difference
// between ~60 % and most of a direct GET's throughput.
//
// Anything unusual (TLS, an HTTP proxy, a redirect, chunked or encoded bodies,
// a length that does not match, an error status) falls back to the SDK's
// GetObject, which keeps its retries and error mapping.
const spliceMin = 4 << 20

// spliceBody streams the rest of a GET response read from conn.
type spliceBody struct {
	conn   net.Conn
	br     *bufio.Reader
	left   int64 // body bytes not yet returned
	stop   func() bool
	closed bool
}

// openSpliced GETs key's range [offset, offset+length) over a connection of
// its own. ok is false when the fast path does not apply; the caller then
// uses GetObject.
func (s *Store) openSpliced(ctx context.Context, in *awss3.GetObjectInput, length int64) (body io.ReadCloser, ok bool) {
	if length < spliceMin {
		return nil, false
	}
	preq, err := s.presign.PresignGetObject(ctx, in, awss3.WithPresignExpires(15*time.Minute))
	if err != nil || preq.Method != http.MethodGet {
		return nil, false
	}
	u, err := url.Parse(preq.URL)
	if err != nil || u.Scheme != "http" {
		return nil, false
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, preq.URL, nil)
	if err != nil {
		return nil, false
	}
	if p, err := http.ProxyFromEnvironment(req); err != nil || p != nil {
		return nil, false // the SDK goes through the proxy; so must we
	}
	for k, vs := range preq.SignedHeader {
		if http.CanonicalHeaderKey(k) == "Host" {
			continue
		}
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "80")
	}
	d := net.Dialer{Timeout: s.connectTimeout}
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, false
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() }) // a gone client frees the connection
	fail := func() (io.ReadCloser, bool) {
		stop()
		conn.Close()
		return nil, false
	}
	req.Close = true // one request per connection: nothing to pool or drain
	if err := req.Write(conn); err != nil {
		return fail()
	}
	br := bufio.NewReaderSize(conn, 32<<10)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return fail()
	}
	want := http.StatusOK
	if in.Range != nil {
		want = http.StatusPartialContent
	}
	if resp.StatusCode != want || resp.ContentLength != length || len(resp.TransferEncoding) > 0 ||
		resp.Header.Get("Content-Encoding") != "" {
		return fail()
	}
	return &spliceBody{conn: conn, br: br, left: length, stop: stop}, true
}

func (b *spliceBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.br.Read(p)
	b.left -= int64(n)
	if err == io.EOF && b.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// WriteTo writes what the response head's read left buffered, then hands w
// the bare connection, limited to the body: net/http's ResponseWriter and
// *net.TCPConn turn that into splice(2).
func (b *spliceBody) WriteTo(w io.Writer) (int64, error) {
	var total int64
	if n := min(int64(b.br.Buffered()), b.left); n > 0 {
		buf, _ := b.br.Peek(int(n))
		m, err := w.Write(buf)
		b.br.Discard(m)
		total += int64(m)
		b.left -= int64(m)
		if err != nil {
			return total, err
		}
	}
	if b.left <= 0 {
		return total, nil
	}
	src := &io.LimitedReader{R: b.conn, N: b.left}
	var n int64
	var err error
	if rf, ok := w.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		n, err = io.Copy(w, src)
	}
	total += n
	b.left -= n
	if err == nil && b.left > 0 {
		err = fmt.Errorf("s3: blob body ended %d bytes early: %w", b.left, io.ErrUnexpectedEOF)
	}
	return total, err
}

func (b *spliceBody) Close() error {
	if b.closed {
		return errors.New("s3: body already closed")
	}
	b.closed = true
	b.stop()
	return b.conn.Close()
}
