package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"testing"
	"time"

	"github.com/berth-registry/berth/internal/s3test"
)

// TestPowerLossResume: a real berth receives three chunks, is killed, and
// the session's data file is cut behind its saved hash state — what a power
// loss can leave now that a PATCH is not synced (the state file may reach
// the disk before the data). After the restart the upload reports what the
// file holds; the client resumes there (with other bytes than the first
// time: a resumed client owes nothing to the lost ones) and the commit
// stores exactly the bytes the server holds under their digest. Before, the
// stale state was taken for the resumed bytes and the PUT got 400
// DIGEST_INVALID for the real digest.
func TestPowerLossResume(t *testing.T) {
	if s3test.OnS3() {
		t.Skip("truncates the filesystem backend's upload data file (S3 appends are whole parts: see internal/storage/s3)")
	}
	const repo = "e2e/powerloss"
	dir := t.TempDir()
	p := startBerth(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	up, err := beginUpload(ctx, p, repo)
	if err != nil {
		t.Fatal(err)
	}
	first := make([]byte, 3<<20)
	rand.Read(first)
	for i := 0; i < 3; i++ {
		if err := up.patch(ctx, first[i<<20:(i+1)<<20]); err != nil {
			t.Fatal(err)
		}
	}
	p.kill()
	const kept = 3 << 19
	data := filepath.Join(dir, "repositories", repo, "_uploads", path.Base(up.location.Path), "data")
	if err := os.Truncate(data, kept); err != nil {
		t.Fatal(err)
	}
	p.restart()

	code, n, err := up.status(ctx)
	if err != nil || code != http.StatusNoContent {
		t.Fatalf("GET upload status after the restart: %d, %v", code, err)
	}
	if n != kept {
		t.Fatalf("upload status after the power loss: %d bytes, want %d (what the data file holds)", n, kept)
	}
	up.offset = n
	resend := make([]byte, len(first)-kept)
	rand.Read(resend)
	if err := up.patch(ctx, resend); err != nil {
		t.Fatal(err)
	}
	want := append(append([]byte{}, first[:kept]...), resend...)
	d := sha256Digest(want)
	if _, err := up.finish(ctx, d); err != nil {
		t.Fatalf("commit of the resumed upload: %v", err)
	}
	resp, err := httpClient.Get(p.url("/v2/" + repo + "/blobs/" + d))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(got, want) {
		t.Fatalf("GET blob: status %d, %d bytes, equal %v, err %v", resp.StatusCode, len(got), bytes.Equal(got, want), err)
	}
}
