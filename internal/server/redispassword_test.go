package server

import (
	"bufio"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-registry/berth/internal/config"
	"github.com/berth-registry/berth/internal/redistest"
)

// TestRedisPasswordFile: a Redis that requires a password is reached with
// [cache.redis] password_file (the Helm chart mounts it from a Secret) and
// refuses the same URL without it.
func TestRedisPasswordFile(t *testing.T) {
	srv := redistest.Start(t)
	const pw = "pw-from-a-mounted-secret"
	requirePass(t, srv.Addr, pw)

	pwFile := filepath.Join(t.TempDir(), "redis-password")
	if err := os.WriteFile(pwFile, []byte(pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte(fmt.Sprintf("[cache.redis]\nurl = %q\npassword_file = %q\n", srv.URL(), pwFile)), "c.toml")
	if err != nil {
		t.Fatal(err)
	}
	red, err := openShared(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer red.Close()
	if err := red.Ping(t.Context()); err != nil {
		t.Errorf("ping with password_file: %v", err)
	}

	cfg.Cache.Redis.PasswordFile = ""
	noPW, err := openShared(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer noPW.Close()
	if err := noPW.Ping(t.Context()); err == nil {
		t.Error("ping without the password succeeded: the server does not require one")
	}

	cfg.Cache.Redis.PasswordFile = pwFile + ".missing"
	if _, err := openShared(t.Context(), cfg, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "password_file") {
		t.Errorf("missing password file: err = %v", err)
	}
}

// requirePass sets requirepass on the Redis at addr (CONFIG SET, raw RESP).
func requirePass(t *testing.T, addr, pw string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	args := []string{"CONFIG", "SET", "requirepass", pw}
	cmd := fmt.Sprintf("*%d\r\n", len(args))
	for _, a := range args {
		cmd += fmt.Sprintf("$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(cmd)); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "+OK\r\n" {
		t.Fatalf("CONFIG SET requirepass: %q, %v", line, err)
	}
}
