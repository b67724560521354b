package gc_test

import (
	"testing"

	"github.com/berth-registry/berth/internal/gc"
)

func TestReportString(t *testing.T) {
	r := gc.Report{DryRun: true, Blobs: 3, Bytes: 1234, Manifests: 1, Links: 2, TempFiles: 1, TempBytes: 77, Repositories: 5}
	want := "would free 3 blobs (1234 bytes), 1 untagged manifests, 2 repository links, 1 stale temp files (77 bytes); 5 repositories scanned, 0 kept (in use), 0s"
	if got := r.String(); got != want {
		t.Errorf("String() = %q\nwant %q", got, want)
	}
	r.DryRun = false
	if got := r.String(); got[:6] != "freed " {
		t.Errorf("String() = %q, want it to start with \"freed \"", got)
	}
}
