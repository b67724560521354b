// Package redistest starts a real redis-server for tests: on 127.0.0.1, on a
// free port, without persistence, as a child process the test kills when it
// ends. Without redis-server on PATH the test is skipped, unless
// BERTH_REQUIRE_REDIS=1 (CI), when it fails. scripts/install-test-redis.sh
// installs it.
//
//	srv := redistest.Start(t)
//	cfg := "[cache.redis]\nurl = \"" + srv.URL() + "\"\n"
//	srv.Stop()  // e.g. to see readiness fail; Start again with srv.Restart()
package redistest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/berth-registry/berth/internal/testutil"
)

// Server is one redis-server child process.
type Server struct {
	t    testing.TB
	bin  string
	Addr string // 127.0.0.1:<port>

	mu  sync.Mutex
	cmd *exec.Cmd
	out *bytes.Buffer
}

// Start starts a redis-server for t and stops it when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		msg := "redis-server not found on PATH (scripts/install-test-redis.sh installs it)"
		if os.Getenv("BERTH_REQUIRE_REDIS") == "1" {
			t.Fatalf("BERTH_REQUIRE_REDIS=1: %s", msg)
		}
		t.Skip(msg)
	}
	s := &Server{t: t, bin: bin}
	t.Cleanup(s.Stop)
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(testutil.FreePort(t)))
		if lastErr = s.start(); lastErr == nil {
			return s
		}
	}
	t.Fatalf("redistest: %v", lastErr)
	return nil
}

// URL is the server's redis:// URL.
func (s *Server) URL() string { return "redis://" + s.Addr + "/0" }

func (s *Server) start() error {
	_, port, _ := net.SplitHostPort(s.Addr)
	cmd := exec.Command(s.bin, "--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no",
		"--daemonize", "no", "--dir", s.t.TempDir(), "--loglevel", "warning")
	out := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if ping(s.Addr) {
			s.mu.Lock()
			s.cmd, s.out = cmd, out
			s.mu.Unlock()
			go func() { <-exited }()
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("redis-server on %s exited: %v: %s", s.Addr, err, out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("redis-server on %s did not answer PING: %s", s.Addr, out.String())
		}
	}
}

// Stop kills the server (idempotent). Its data is lost.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	// Wait until the port is free, so a Restart can take it again.
	for i := 0; i < 200 && ping(s.Addr); i++ {
		time.Sleep(10 * time.Millisecond)
	}
}

// Restart starts the server again on the same port, empty.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		s.t.Fatalf("redistest: restart: %v", err)
	}
}

// ping sends an inline PING and reports whether +PONG came back.
func ping(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	buf := make([]byte, 7)
	n, _ := c.Read(buf)
	return bytes.HasPrefix(buf[:n], []byte("+PONG"))
}
