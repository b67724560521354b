package fs

import (
	"bytes"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/berth-registry/berth/internal/storage"
)

// Power-loss simulations for upload sessions. Appends do not sync, so after a
// power loss the data file may have lost bytes that the (unsynced) hash state
// still covers, or the state may be lost or older. The registry must report
// only bytes the data file holds, and commit them under their real digest.

// reopen returns a store on s's root; rebooted gives it another boot id, as
// after a power loss.
func reopen(t *testing.T, s *Store, rebooted bool) *Store {
	t.Helper()
	s2, err := New(s.Root())
	must(t, err)
	if rebooted {
		s2.bootID[0] ^= 0xff
	}
	return s2
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func sessionFile(s *Store, id, name string) string {
	return filepath.Join(s.Root(), "repositories", "repo", "_uploads", id, name)
}

func readBlobAll(t *testing.T, s *Store, d []byte) []byte {
	t.Helper()
	rc, err := s.OpenBlob(t.Context(), "repo", sha256Of(d), 0, -1)
	must(t, err)
	defer rc.Close()
	got, err := io.ReadAll(rc)
	must(t, err)
	return got
}

// TestPowerLossDataTruncatedBehindState: the data file lost its last bytes
// while the saved hash state survived (it covers more than the file). The
// session reports the file's size; the client resumes there, and the commit
// hashes what the file holds — here the client even sends other bytes than
// the first time, so a stale state would commit the wrong digest. Before the
// fix the commit took the stale state (it covered exactly the new size) and
// refused the real digest.
func TestPowerLossDataTruncatedBehindState(t *testing.T) {
	for _, rebooted := range []bool{true, false} {
		t.Run(map[bool]string{true: "reboot", false: "same-boot"}[rebooted], func(t *testing.T) {
			ctx := t.Context()
			s := newStore(t)
			u, err := s.BeginUpload(ctx, "repo")
			must(t, err)
			first := randomBytes(3 << 20)
			var off int64
			for i := 0; i < 3; i++ {
				off, err = s.AppendUpload(ctx, "repo", u.ID, off, bytes.NewReader(first[i<<20:(i+1)<<20]))
				must(t, err)
			}
			// Power loss: the data file keeps 1.5 MiB, the state covers 3 MiB.
			const kept = 3 << 19
			must(t, os.Truncate(sessionFile(s, u.ID, fileData), kept))

			s2 := reopen(t, s, rebooted)
			info, err := s2.StatUpload(ctx, "repo", u.ID)
			must(t, err)
			if info.Size != kept {
				t.Fatalf("size after the power loss %d, want %d (what the data file holds)", info.Size, kept)
			}
			resend := randomBytes(len(first) - kept) // not the bytes sent before
			n, err := s2.AppendUpload(ctx, "repo", u.ID, kept, bytes.NewReader(resend))
			must(t, err)
			if n != int64(len(first)) {
				t.Fatalf("size %d, want %d", n, len(first))
			}
			want := append(append([]byte{}, first[:kept]...), resend...)
			_, err = s2.CommitUpload(ctx, "repo", u.ID, sha256Of(first))
			mustIs(t, err, storage.ErrDigestMismatch, "commit under the digest of the lost bytes")

			// Again, committed under the digest of what the file holds.
			u, err = s2.BeginUpload(ctx, "repo")
			must(t, err)
			_, err = s2.AppendUpload(ctx, "repo", u.ID, 0, bytes.NewReader(first))
			must(t, err)
			must(t, os.Truncate(sessionFile(s2, u.ID, fileData), kept))
			s3 := reopen(t, s2, rebooted)
			_, err = s3.AppendUpload(ctx, "repo", u.ID, kept, bytes.NewReader(resend))
			must(t, err)
			_, err = s3.CommitUpload(ctx, "repo", u.ID, sha256Of(want))
			must(t, err)
			if got := readBlobAll(t, s3, want); !bytes.Equal(got, want) {
				t.Fatal("stored blob differs from the bytes sent")
			}
		})
	}
}

// TestPowerLossStateLost: the state file is gone, or an older one came back
// (its last replacement was not synced). The session keeps the data file's
// size and the commit hashes the file.
func TestPowerLossStateLost(t *testing.T) {
	for _, tc := range []string{"lost", "older"} {
		t.Run(tc, func(t *testing.T) {
			ctx := t.Context()
			s := newStore(t)
			u, err := s.BeginUpload(ctx, "repo")
			must(t, err)
			b := randomBytes(3 << 20)
			off, err := s.AppendUpload(ctx, "repo", u.ID, 0, bytes.NewReader(b[:1<<20]))
			must(t, err)
			older, err := os.ReadFile(sessionFile(s, u.ID, fileHashState))
			must(t, err)
			off, err = s.AppendUpload(ctx, "repo", u.ID, off, bytes.NewReader(b[1<<20:2<<20]))
			must(t, err)
			if tc == "lost" {
				must(t, os.Remove(sessionFile(s, u.ID, fileHashState)))
			} else {
				must(t, os.WriteFile(sessionFile(s, u.ID, fileHashState), older, 0o644))
			}
			s2 := reopen(t, s, true)
			info, err := s2.StatUpload(ctx, "repo", u.ID)
			must(t, err)
			if info.Size != off {
				t.Fatalf("size %d, want %d", info.Size, off)
			}
			_, err = s2.AppendUpload(ctx, "repo", u.ID, off, bytes.NewReader(b[2<<20:]))
			must(t, err)
			_, err = s2.CommitUpload(ctx, "repo", u.ID, sha256Of(b))
			must(t, err)
			if got := readBlobAll(t, s2, b); !bytes.Equal(got, b) {
				t.Fatal("stored blob differs")
			}
		})
	}
}

// TestPowerLossGarbageInData: after a reboot, the data file has its size but
// not the bytes the saved state hashed (a filesystem that exposed unwritten
// blocks as zeros). The session must not report those bytes: it restarts
// from 0, and the client's re-upload commits. Before the fix the session
// reported the whole file.
func TestPowerLossGarbageInData(t *testing.T) {
	ctx := t.Context()
	s := newStore(t)
	u, err := s.BeginUpload(ctx, "repo")
	must(t, err)
	b := randomBytes(2 << 20)
	_, err = s.AppendUpload(ctx, "repo", u.ID, 0, bytes.NewReader(b))
	must(t, err)
	f, err := os.OpenFile(sessionFile(s, u.ID, fileData), os.O_WRONLY, 0)
	must(t, err)
	_, err = f.WriteAt(make([]byte, 4096), 1<<20)
	must(t, err)
	must(t, f.Close())

	s2 := reopen(t, s, true)
	info, err := s2.StatUpload(ctx, "repo", u.ID)
	must(t, err)
	if info.Size != 0 {
		t.Fatalf("size after a reboot with damaged data %d, want 0", info.Size)
	}
	// The same restart again: the re-hashed state is of this boot now.
	s3 := reopen(t, s2, false)
	info, err = s3.StatUpload(ctx, "repo", u.ID)
	must(t, err)
	if info.Size != 0 {
		t.Fatalf("size %d, want 0", info.Size)
	}
	_, err = s3.AppendUpload(ctx, "repo", u.ID, 0, bytes.NewReader(b))
	must(t, err)
	_, err = s3.CommitUpload(ctx, "repo", u.ID, sha256Of(b))
	must(t, err)
	if got := readBlobAll(t, s3, b); !bytes.Equal(got, b) {
		t.Fatal("stored blob differs")
	}
}

// TestRebootIntactData: after a reboot with nothing lost, the session keeps
// its size and commits (the state is verified against the file, re-written
// for this boot).
func TestRebootIntactData(t *testing.T) {
	ctx := t.Context()
	s := newStore(t)
	u, err := s.BeginUpload(ctx, "repo")
	must(t, err)
	b := randomBytes(2 << 20)
	off, err := s.AppendUpload(ctx, "repo", u.ID, 0, bytes.NewReader(b[:1<<20]))
	must(t, err)
	s2 := reopen(t, s, true)
	info, err := s2.StatUpload(ctx, "repo", u.ID)
	must(t, err)
	if info.Size != off {
		t.Fatalf("size %d, want %d", info.Size, off)
	}
	if st, ok := s2.readHashState(filepath.Dir(sessionFile(s2, u.ID, fileData))); !ok || !st.trusted || st.size != off {
		t.Fatalf("state after the reboot's first stat: %+v %v, want one of this boot covering %d", st, ok, off)
	}
	_, err = s2.AppendUpload(ctx, "repo", u.ID, off, bytes.NewReader(b[1<<20:]))
	must(t, err)
	_, err = s2.CommitUpload(ctx, "repo", u.ID, sha256Of(b))
	must(t, err)
}
