package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestGCCommand(t *testing.T) {
	root := filepath.Join(t.TempDir(), "data")
	cfg := writeFile(t, "[blob_store.fs]\nroot_dir = \""+root+"\"\n[gc]\ngrace_period = \"0s\"\n")
	code, out, errOut := runCmd(t, "gc", "-c", cfg, "--dry-run")
	if code != exitOK || !strings.HasPrefix(out, "would free 0 blobs (0 bytes), 0 untagged manifests, 0 repository links, 0 stale temp files (0 bytes); 0 repositories scanned") {
		t.Fatalf("gc --dry-run = %d, %q, %q", code, out, errOut)
	}
	if !strings.Contains(errOut, `msg="garbage collection"`) {
		t.Errorf("gc does not log its run: %q", errOut)
	}
	code, out, _ = runCmd(t, "-c", cfg, "gc")
	if code != exitOK || !strings.HasPrefix(out, "freed 0 blobs") {
		t.Fatalf("berth -c FILE gc = %d, %q", code, out)
	}

	// A temp file a crashed write left in the blob store: listed by the dry
	// run, removed by the real run.
	stray := filepath.Join(root, "blobs", "sha256", "ab", ".tmp-42")
	if err := os.MkdirAll(filepath.Dir(stray), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stray, []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := os.Chtimes(stray, old, old); err != nil {
		t.Fatal(err)
	}
	code, out, _ = runCmd(t, "gc", "-c", cfg, "--dry-run")
	if code != exitOK || !strings.Contains(out, "1 stale temp files (7 bytes)") ||
		!strings.Contains(out, "\nwould remove stale temp file blobs/sha256/ab/.tmp-42 (7 bytes, last written 2020-01-02T03:04:05Z)\n") {
		t.Fatalf("gc --dry-run with a stale temp file = %d, %q", code, out)
	}
	if _, err := os.Stat(stray); err != nil {
		t.Fatalf("dry run removed the temp file: %v", err)
	}
	code, out, _ = runCmd(t, "gc", "-c", cfg)
	if code != exitOK || !strings.Contains(out, "1 stale temp files (7 bytes)") || strings.Count(out, "\n") != 1 {
		t.Fatalf("gc with a stale temp file = %d, %q", code, out)
	}
	if _, err := os.Stat(stray); !os.IsNotExist(err) {
		t.Fatalf("gc left the stale temp file: %v", err)
	}
	if code, _, errOut := runCmd(t, "gc", "-c", cfg, "now"); code != exitUsage || !strings.Contains(errOut, `unexpected argument "now"`) {
		t.Fatalf("gc with an argument = %d, %q", code, errOut)
	}
	if code, _, errOut := runCmd(t, "gc", "--force"); code != exitUsage || !strings.Contains(errOut, "gc:") {
		t.Fatalf("gc with an unknown flag = %d, %q", code, errOut)
	}
	bad := writeFile(t, "[gc]\ngrace_period = \"-1s\"\n")
	if code, _, errOut := runCmd(t, "gc", "-c", bad); code != exitError || !strings.Contains(errOut, "gc.grace_period") {
		t.Fatalf("gc with a bad config = %d, %q", code, errOut)
	}
}
