package storagetest

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/berth-registry/berth/internal/storage"
)

// ErrCrash is what a backend's fault hook returns to "kill the process" at a
// step of CommitUpload: the commit returns it at once and leaves its storage
// as a process killed there would.
var ErrCrash = errors.New("storagetest: process killed here")

// CrashingStore opens a store over fresh, empty storage whose CommitUpload
// fails with ErrCrash before step (once), and returns with it reopen, which
// opens a second store, without faults, over the same storage: the restarted
// process.
type CrashingStore func(t *testing.T, step string) (st storage.Store, reopen func() storage.Store)

// CommitCrashRetry is the contract of a commit killed by a crash (hardening
// point 8): for every step, a commit killed before it leaves a session that
// StatUpload reports with its full size and that a retried CommitUpload on
// the restarted store (same session, same digest, no body) completes, the
// data not being sent again; a retry claiming another digest fails with
// ErrDigestMismatch and links nothing. steps are the backend's CommitUpload
// steps up to and including the one that ends the session (after it the
// commit is complete). The upload is a 5 MiB chunk and a small one, so that
// a backend with multipart uploads has a part and a staged remainder.
func CommitCrashRetry(t *testing.T, open CrashingStore, steps []string) {
	data := content("crash", 5<<20+1000)
	d := sha256Digest(data)
	const repo = "crash/repo"
	commitCrashed := func(t *testing.T, step string) (storage.Store, string) {
		ctx := t.Context()
		st, reopen := open(t, step)
		u, err := st.BeginUpload(ctx, repo)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.AppendUpload(ctx, repo, u.ID, 0, bytes.NewReader(data[:5<<20])); err != nil {
			t.Fatal(err)
		}
		if _, err := st.AppendUpload(ctx, repo, u.ID, 5<<20, bytes.NewReader(data[5<<20:])); err != nil {
			t.Fatal(err)
		}
		if _, err := st.CommitUpload(ctx, repo, u.ID, d); !errors.Is(err, ErrCrash) {
			t.Fatalf("CommitUpload with a crash before %s = %v, want ErrCrash", step, err)
		}
		st = reopen()
		info, err := st.StatUpload(ctx, repo, u.ID)
		if err != nil || info.Size != int64(len(data)) {
			t.Fatalf("StatUpload after the crash = %+v, %v; want size %d", info, err, len(data))
		}
		return st, u.ID
	}
	for _, step := range steps {
		t.Run(step, func(t *testing.T) {
			ctx := t.Context()
			st, id := commitCrashed(t, step)
			got, err := st.CommitUpload(ctx, repo, id, d)
			if err != nil || got.Digest != d || got.Size != int64(len(data)) {
				t.Fatalf("retried CommitUpload = %+v, %v", got, err)
			}
			rc, err := st.OpenBlob(ctx, repo, d, 0, -1)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(b, data) {
				t.Fatalf("blob after the retry: %d bytes, %v", len(b), err)
			}
			if _, err := st.StatUpload(ctx, repo, id); !errors.Is(err, storage.ErrUploadUnknown) {
				t.Fatalf("StatUpload after the commit = %v, want ErrUploadUnknown", err)
			}
		})
		t.Run(step+"/other digest", func(t *testing.T) {
			ctx := t.Context()
			st, id := commitCrashed(t, step)
			other := []byte("someone else's blob")
			od := sha256Digest(other)
			u, err := st.BeginUpload(ctx, "elsewhere")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.AppendUpload(ctx, "elsewhere", u.ID, 0, bytes.NewReader(other)); err != nil {
				t.Fatal(err)
			}
			if _, err := st.CommitUpload(ctx, "elsewhere", u.ID, od); err != nil {
				t.Fatal(err)
			}
			if _, err := st.CommitUpload(ctx, repo, id, od); !errors.Is(err, storage.ErrDigestMismatch) {
				t.Fatalf("retry with another digest = %v, want ErrDigestMismatch", err)
			}
			if _, err := st.StatBlob(ctx, repo, od); !errors.Is(err, storage.ErrBlobUnknown) {
				t.Fatalf("StatBlob of the other digest = %v, want ErrBlobUnknown", err)
			}
		})
	}
}
