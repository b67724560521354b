package main

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestGCCommand(t *testing.T) {
	root := filepath.Join(t.TempDir(), "data")
	cfg := writeFile(t, "[blob_store.fs]\nroot_dir = \""+root+"\"\n[gc]\ngrace_period = \"0s\"\n")
	code, out, errOut := runCmd(t, "gc", "-c", cfg, "--dry-run")
	if code != exitOK || !strings.HasPrefix(out, "would free 0 blobs (0 bytes), 0 untagged manifests, 0 repository links; 0 repositories scanned") {
		t.Fatalf("gc --dry-run = %d, %q, %q", code, out, errOut)
	}
	if !strings.Contains(errOut, `msg="garbage collection"`) {
		t.Errorf("gc does not log its run: %q", errOut)
	}
	code, out, _ = runCmd(t, "-c", cfg, "gc")
	if code != exitOK || !strings.HasPrefix(out, "freed 0 blobs") {
		t.Fatalf("berth -c FILE gc = %d, %q", code, out)
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
