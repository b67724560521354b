package s3

import (
	"bytes"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
)

// TestPurgeOrphans: a session whose state object is gone (a removal
// interrupted halfway, or a replica that died while creating it) leaves a
// multipart upload and a staged tail; PurgeUploads removes both once they
// are older than the cutoff, besides the expired sessions themselves.
func TestPurgeOrphans(t *testing.T) {
	ctx := t.Context()
	st := openStore(t, testOptions(t, newPrefix()))
	orphan, err := st.BeginUpload(ctx, "repo")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.AppendUpload(ctx, "repo", orphan.ID, 0, bytes.NewReader([]byte("staged tail"))); err != nil {
		t.Fatal(err)
	}
	if err := st.del(ctx, st.uploadKey(orphan.ID)+keyState); err != nil {
		t.Fatal(err)
	}
	expired, err := st.BeginUpload(ctx, "repo")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.AppendUpload(ctx, "repo", expired.ID, 0, bytes.NewReader([]byte("more"))); err != nil {
		t.Fatal(err)
	}

	uploads := func() (objects, mpus int) {
		t.Helper()
		prefix := st.prefix + "_uploads/"
		out, err := st.c.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: &st.bucket, Prefix: aws.String(prefix)})
		if err != nil {
			t.Fatal(err)
		}
		mp, err := st.c.ListMultipartUploads(ctx, &awss3.ListMultipartUploadsInput{Bucket: &st.bucket, Prefix: aws.String(prefix)})
		if err != nil {
			t.Fatal(err)
		}
		return len(out.Contents), len(mp.Uploads)
	}
	if o, m := uploads(); o != 3 || m != 2 {
		t.Fatalf("before purge: %d objects, %d multipart uploads; want 3 (orphan tail, expired state and tail) and 2", o, m)
	}
	// Nothing is old yet.
	if n, err := st.PurgeUploads(ctx, time.Now().Add(-time.Hour)); err != nil || n != 0 {
		t.Fatalf("PurgeUploads (nothing old) = %d, %v", n, err)
	}
	if o, m := uploads(); o != 3 || m != 2 {
		t.Fatalf("a purge with an old cutoff removed something: %d objects, %d multipart uploads", o, m)
	}
	n, err := st.PurgeUploads(ctx, time.Now().Add(time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("PurgeUploads = %d, %v; want 1 session", n, err)
	}
	if o, m := uploads(); o != 0 || m != 0 {
		t.Fatalf("after purge: %d objects, %d multipart uploads left under _uploads/", o, m)
	}
}
