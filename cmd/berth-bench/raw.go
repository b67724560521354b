package main

// The machine's raw limits berth-bench measures before the registry: a file
// written with sha256 and fsync, a file read from the page cache, sha256 of
// memory, and the same bytes through a loopback TCP socket without HTTP.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/opencontainers/go-digest"
)

// writeHashSync writes size bytes of src to a new file at path while hashing
// them, then fsyncs it: the least a registry must do to store a pushed blob.
func writeHashSync(path string, src io.Reader, size int64) (digest.Digest, time.Duration, error) {
	_ = os.Remove(path)
	buf := make([]byte, ioBuf)
	start := time.Now()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	var n int64
	for n < size {
		m, err := io.ReadFull(src, buf[:min(int64(len(buf)), size-n)])
		if err != nil {
			return "", 0, err
		}
		h.Write(buf[:m])
		if _, err := f.Write(buf[:m]); err != nil {
			return "", 0, err
		}
		n += int64(m)
	}
	if err := f.Sync(); err != nil {
		return "", 0, err
	}
	if err := f.Close(); err != nil {
		return "", 0, err
	}
	dur := time.Since(start)
	return digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(h.Sum(nil))), dur, nil
}

// readFile reads the whole file into one reused buffer, hashing it if asked.
func readFile(path string, hash bool) (time.Duration, error) {
	buf := make([]byte, ioBuf)
	start := time.Now()
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	h := sha256.New()
	for {
		n, err := f.Read(buf)
		if hash && n > 0 {
			h.Write(buf[:n])
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, err
		}
	}
	if hash {
		_ = h.Sum(nil)
	}
	return time.Since(start), nil
}

// hashMemory is sha256 alone, on n bytes already in memory.
func hashMemory(block []byte, n int64) time.Duration {
	h := sha256.New()
	start := time.Now()
	for done := int64(0); done < n; done += int64(len(block)) {
		h.Write(block[:min(int64(len(block)), n-done)])
	}
	_ = h.Sum(nil)
	return time.Since(start)
}

// tcpPush sends size bytes of src through a loopback TCP connection to a
// receiver in this process that hashes them into a reused buffer: a registry
// push without HTTP and without the disk (which raw-write measures), the CPU
// ceiling of moving and hashing the bytes on this machine.
func tcpPush(ctx context.Context, src io.Reader, size int64, want digest.Digest) (time.Duration, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	type recv struct {
		d   digest.Digest
		err error
	}
	done := make(chan recv, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- recv{err: err}
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Minute))
		h := sha256.New()
		buf := make([]byte, ioBuf)
		n, err := io.CopyBuffer(h, io.LimitReader(c, size), buf)
		if err == nil && n != size {
			err = fmt.Errorf("received %d bytes, want %d", n, size)
		}
		done <- recv{d: digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(h.Sum(nil))), err: err}
	}()
	start := time.Now()
	var dl net.Dialer
	c, err := dl.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Minute))
	if _, err := io.Copy(c, src); err != nil {
		return 0, err
	}
	r := <-done
	dur := time.Since(start)
	if r.err != nil {
		return 0, r.err
	}
	if r.d != want {
		return 0, fmt.Errorf("received %s, sent %s", r.d, want)
	}
	return dur, nil
}

// tcpPull serves the (page-cached) file at path through a loopback TCP
// connection, with sendfile (as Go's net/http does for an *os.File body) or
// with read/write through a 32 KiB buffer (as io.Copy does for any other
// reader), and reads it into a reused buffer: a registry pull without HTTP.
func tcpPull(ctx context.Context, path string, size int64, sendfile bool) (time.Duration, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	sent := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			sent <- err
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Minute))
		f, err := os.Open(path)
		if err != nil {
			sent <- err
			return
		}
		defer f.Close()
		if sendfile {
			_, err = io.Copy(c, f)
		} else {
			_, err = io.CopyBuffer(struct{ io.Writer }{c}, struct{ io.Reader }{f}, make([]byte, 32<<10))
		}
		sent <- err
	}()
	buf := make([]byte, ioBuf)
	start := time.Now()
	var dl net.Dialer
	c, err := dl.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Minute))
	var n int64
	for {
		m, err := c.Read(buf)
		n += int64(m)
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, err
		}
	}
	dur := time.Since(start)
	if err := <-sent; err != nil {
		return 0, err
	}
	if n != size {
		return 0, fmt.Errorf("got %d bytes, want %d", n, size)
	}
	return dur, nil
}

// timedReader notes when the last of size bytes was read from it, i.e. when
// the HTTP client had handed the whole body to the socket.
type timedReader struct {
	r    io.Reader
	size int64
	n    int64
	last time.Time
}

func (t *timedReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.n += int64(n)
	if t.n >= t.size && t.last.IsZero() {
		t.last = time.Now()
	}
	return n, err
}
