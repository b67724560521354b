package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestInstall: --install-to copies this executable into the directory
// atomically (mode 0755, the same bytes, no temporary file left), replacing
// an older plugin; --wait then blocks until stopped; a missing directory or
// an extra argument fails.
func TestInstall(t *testing.T) {
	dir := t.TempDir()
	dst := filepath.Join(dir, binaryName)
	if err := os.WriteFile(dst, []byte("old plugin"), 0o755); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"--install-to", dir}, strings.NewReader(""), &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("installed %d bytes, want this executable's %d", len(got), len(want))
	}
	if fi, err := os.Stat(dst); err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("installed mode: %v %v", fi.Mode(), err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("directory holds %d entries, want the plugin only", len(entries))
	}
	if !strings.Contains(stdout.String(), "installed "+dst+" (sha256:") {
		t.Fatalf("stdout %q", stdout.String())
	}

	// --wait: returns once stopped (the context ends).
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"--install-to=" + dir, "--wait"}, nil, &bytes.Buffer{}, &bytes.Buffer{})
	}()
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("--wait: exit %d", code)
	}

	for _, args := range [][]string{
		{"--install-to", filepath.Join(dir, "missing")},
		{"--install-to", dir, "extra"},
		{"--install-to"},
	} {
		stderr.Reset()
		if code := run(context.Background(), args, nil, &bytes.Buffer{}, &stderr); code == 0 || !strings.Contains(stderr.String(), "berth-credential-provider") && !strings.Contains(stderr.String(), "flag needs an argument") {
			t.Fatalf("%q: exit %d, stderr %q", args, code, stderr.String())
		}
	}
}
