package s3

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/berth-registry/berth/internal/storage"
	"github.com/berth-registry/berth/internal/storage/storagetest"
)

var errCrash = errors.New("test: process killed here")

// crashAt returns Faults whose Commit hook "kills the process" (returns
// errCrash, abandoning the state) before the given step.
func crashAt(step string, hit *bool) Faults {
	return Faults{Commit: func(s string) error {
		if s == step && !*hit {
			*hit = true
			return errCrash
		}
		return nil
	}}
}

// TestCommitCrashRetry: a commit killed before any of its steps, then
// retried (same session, same digest, no body) on a new store on the same
// bucket, ends with the blob stored and linked, the data not sent again.
// Up to and including the deletion of the state the retry completes the
// commit; after it the commit is complete (the session is ended, as after
// any commit whose response was lost), the retry answers ErrUploadUnknown and
// PurgeUploads removes what the removal left. Before the fix (tail, data,
// state removed in that order) a kill after the data object was deleted left
// a session whose retry failed: the multipart upload completed and its
// object gone.
func TestCommitCrashRetry(t *testing.T) {
	cases := []struct {
		name  string
		sizes []int // appends
		steps []string
	}{
		{"multipart", []int{MinPartSize, 1000}, []string{"tail", "complete", "copy", "mark", "link", "remove-state", "remove-mpu", "remove-tail", "remove-data"}},
		{"tail only", []int{1000, 234}, []string{"copy", "mark", "link", "remove-state", "remove-mpu", "remove-tail", "remove-data"}},
	}
	for _, c := range cases {
		total := 0
		for _, n := range c.sizes {
			total += n
		}
		data := randomBytes(uint64(total), total)
		d := sha256Of(data)
		ended := false // the step deleting the state has run
		for _, step := range c.steps {
			t.Run(c.name+"/"+step, func(t *testing.T) {
				ctx := t.Context()
				opts := testOptions(t, newPrefix())
				var hit bool
				copts := opts
				copts.Faults = crashAt(step, &hit)
				st := openStore(t, copts)
				u, err := st.BeginUpload(ctx, "crash/repo")
				if err != nil {
					t.Fatal(err)
				}
				off := 0
				for _, n := range c.sizes {
					if _, err := st.AppendUpload(ctx, "crash/repo", u.ID, int64(off), bytes.NewReader(data[off:off+n])); err != nil {
						t.Fatal(err)
					}
					off += n
				}
				if _, err := st.CommitUpload(ctx, "crash/repo", u.ID, d); !errors.Is(err, errCrash) || !hit {
					t.Fatalf("CommitUpload = %v, want the crash before %s", err, step)
				}

				st = openStore(t, opts)
				got, err := st.CommitUpload(ctx, "crash/repo", u.ID, d)
				if ended {
					if !errors.Is(err, storage.ErrUploadUnknown) {
						t.Fatalf("retried CommitUpload after the session ended = %+v, %v; want ErrUploadUnknown", got, err)
					}
				} else if err != nil || got.Digest != d || got.Size != int64(total) {
					t.Fatalf("retried CommitUpload = %+v, %v", got, err)
				}
				if b := readAll(t, st, "crash/repo", d); !bytes.Equal(b, data) {
					t.Fatalf("blob holds %d bytes hashing to %s", len(b), sha256Of(b))
				}
				if repos, err := st.ListRepositories(ctx, "", -1); err != nil || len(repos) != 1 || repos[0] != "crash/repo" {
					t.Fatalf("ListRepositories = %v, %v", repos, err)
				}
				if _, err := st.StatUpload(ctx, "crash/repo", u.ID); !errors.Is(err, storage.ErrUploadUnknown) {
					t.Fatalf("StatUpload after the commit = %v", err)
				}
				if _, err := st.CommitUpload(ctx, "crash/repo", u.ID, d); !errors.Is(err, storage.ErrUploadUnknown) {
					t.Fatalf("CommitUpload after the commit = %v", err)
				}
				// Whatever the crash left of the session goes with the purge.
				if _, err := st.PurgeUploads(ctx, time.Now().Add(time.Hour)); err != nil {
					t.Fatal(err)
				}
				assertNoUploads(t, st)
			})
			if step == "remove-state" {
				ended = true
			}
		}
	}
}

func assertNoUploads(t *testing.T, st *Store) {
	t.Helper()
	ctx := t.Context()
	prefix := st.prefix + "_uploads/"
	out, err := st.c.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: &st.bucket, Prefix: aws.String(prefix)})
	if err != nil {
		t.Fatal(err)
	}
	mp, err := st.c.ListMultipartUploads(ctx, &awss3.ListMultipartUploadsInput{Bucket: &st.bucket, Prefix: aws.String(prefix)})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Contents) != 0 || len(mp.Uploads) != 0 {
		var keys []string
		for _, o := range out.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
		t.Fatalf("left under _uploads/: objects %s, %d multipart uploads", strings.Join(keys, " "), len(mp.Uploads))
	}
}

// TestCommitCrashRetryOtherDigest: after a crash past the copy into the
// blob store, a retry claiming another digest (stored, in another
// repository) is refused and links nothing.
func TestCommitCrashRetryOtherDigest(t *testing.T) {
	for _, step := range []string{"link", "remove-state"} {
		t.Run(step, func(t *testing.T) {
			ctx := t.Context()
			opts := testOptions(t, newPrefix())
			var hit bool
			copts := opts
			copts.Faults = crashAt(step, &hit)
			st := openStore(t, copts)
			data, other := randomBytes(1, MinPartSize+10), []byte("someone else's blob")
			u, err := st.BeginUpload(ctx, "repo")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.AppendUpload(ctx, "repo", u.ID, 0, bytes.NewReader(data)); err != nil {
				t.Fatal(err)
			}
			if _, err := st.CommitUpload(ctx, "repo", u.ID, sha256Of(data)); !errors.Is(err, errCrash) {
				t.Fatalf("CommitUpload = %v, want the crash", err)
			}

			st = openStore(t, opts)
			u2, err := st.BeginUpload(ctx, "elsewhere")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.AppendUpload(ctx, "elsewhere", u2.ID, 0, bytes.NewReader(other)); err != nil {
				t.Fatal(err)
			}
			if _, err := st.CommitUpload(ctx, "elsewhere", u2.ID, sha256Of(other)); err != nil {
				t.Fatal(err)
			}
			if _, err := st.CommitUpload(ctx, "repo", u.ID, sha256Of(other)); !errors.Is(err, storage.ErrDigestMismatch) {
				t.Fatalf("retry with another digest = %v, want ErrDigestMismatch", err)
			}
			if _, err := st.StatBlob(ctx, "repo", sha256Of(other)); !errors.Is(err, storage.ErrBlobUnknown) {
				t.Fatalf("StatBlob of the other digest = %v, want ErrBlobUnknown", err)
			}
			if _, err := st.StatUpload(ctx, "repo", u.ID); !errors.Is(err, storage.ErrUploadUnknown) {
				t.Fatalf("StatUpload after the mismatch = %v", err)
			}
		})
	}
}

// TestCommitDataLostByOldVersion: a session left by an older version that
// deleted its data object before its state (killed in between) still
// commits when its content is stored.
func TestCommitDataLostByOldVersion(t *testing.T) {
	ctx := t.Context()
	opts := testOptions(t, newPrefix())
	var hit bool
	copts := opts
	copts.Faults = crashAt("remove-state", &hit)
	st := openStore(t, copts)
	data := randomBytes(7, MinPartSize+99)
	d := sha256Of(data)
	u, err := st.BeginUpload(ctx, "repo")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.AppendUpload(ctx, "repo", u.ID, 0, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CommitUpload(ctx, "repo", u.ID, d); !errors.Is(err, errCrash) {
		t.Fatalf("CommitUpload = %v, want the crash", err)
	}
	// What the old order did next: abort, delete tail and data, killed.
	ss := loadState(t, st, "repo", u.ID)
	if err := st.abortMPU(ctx, u.ID, ss.UploadID); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{keyTail, keyData} {
		if err := st.del(ctx, st.uploadKey(u.ID)+k); err != nil {
			t.Fatal(err)
		}
	}
	st = openStore(t, opts)
	if got, err := st.CommitUpload(ctx, "repo", u.ID, d); err != nil || got.Size != int64(len(data)) {
		t.Fatalf("retried CommitUpload = %+v, %v", got, err)
	}
	assertNoUploads(t, st)
}

// TestCommitCrashContract: storagetest.CommitCrashRetry at every step of
// the commit up to the deletion of the state, which ends the session.
func TestCommitCrashContract(t *testing.T) {
	server(t)
	storagetest.CommitCrashRetry(t, func(t *testing.T, step string) (storage.Store, func() storage.Store) {
		opts := testOptions(t, newPrefix())
		hit := false
		copts := opts
		copts.Faults = Faults{Commit: func(s string) error {
			if s == step && !hit {
				hit = true
				return storagetest.ErrCrash
			}
			return nil
		}}
		return openStore(t, copts), func() storage.Store { return openStore(t, opts) }
	}, []string{"tail", "complete", "copy", "mark", "link", "remove-state"})
}
