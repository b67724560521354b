package server

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/storage/fs"
)

// TestGCSchedule: with [gc] interval the server collects garbage on its own,
// logs each run and counts it in the metrics.
func TestGCSchedule(t *testing.T) {
	store, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	b := []byte("garbage: no manifest refers to it")
	sum := sha256.Sum256(b)
	d := digest.Digest("sha256:" + hex.EncodeToString(sum[:]))
	u, err := store.BeginUpload(ctx, "repo")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.AppendUpload(ctx, "repo", u.ID, 0, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	if _, err := store.CommitUpload(ctx, "repo", u.ID, d); err != nil {
		t.Fatal(err)
	}

	cfg := testConfig()
	cfg.GC.Interval = 20 * time.Millisecond
	cfg.GC.GracePeriod = time.Hour
	// An hour and a half later, the blob is past its grace period.
	later := func() time.Time { return time.Now().Add(90 * time.Minute) }
	r := start(t, cfg, store, options{now: later})
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(r.logs.String(), `msg="garbage collection" dry_run=false blobs=1 bytes=33`) {
		if time.Now().After(deadline) {
			t.Fatalf("no garbage collection freed the blob:\n%s", r.logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := store.StatBlob(ctx, "repo", d); err == nil {
		t.Fatal("the blob is still there")
	}
	code, body := get(t, "http://"+r.addr+"/metrics")
	if code != http.StatusOK || !strings.Contains(body, "berth_gc_blobs_deleted_total 1") || !strings.Contains(body, `berth_gc_runs_total{result="ok"}`) {
		t.Fatalf("metrics after a gc run (%d):\n%s", code, grepLines(body, "berth_gc_"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
