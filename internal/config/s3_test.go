package config

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

const testSecret = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"

func TestParseS3(t *testing.T) {
	doc := `[blob_store.s3]
endpoint = "http://127.0.0.1:7070"
bucket = "registry"
region = "eu-west-3"
key_prefix = "berth/"
access_key_id = "AKIAEXAMPLE"
secret_key = "` + testSecret + `"
multipart_part_size = "16MiB"
path_style = true
read_ahead_parts = 4
`
	c, err := Parse([]byte(doc), "c.toml")
	if err != nil {
		t.Fatal(err)
	}
	want := S3{
		Endpoint: "http://127.0.0.1:7070", Bucket: "registry", Region: "eu-west-3", KeyPrefix: "berth/",
		AccessKeyID: "AKIAEXAMPLE", SecretKey: testSecret, MultipartPartSize: 16 << 20, PathStyle: true, ReadAheadParts: 4,
	}
	if c.BlobStore.S3 == nil || *c.BlobStore.S3 != want {
		t.Fatalf("S3 = %+v, want %+v", c.BlobStore.S3, want)
	}
	// The local state keeps root_dir's default.
	if c.BlobStore.FS.RootDir != DefaultRootDir {
		t.Errorf("root_dir = %q, want the default %q", c.BlobStore.FS.RootDir, DefaultRootDir)
	}

	// Minimal: bucket only, default credential chain.
	c, err = Parse([]byte("[blob_store.s3]\nbucket = \"b\"\n"), "c.toml")
	if err != nil {
		t.Fatal(err)
	}
	if s := c.BlobStore.S3; s == nil || s.Bucket != "b" || s.AccessKeyID != "" || s.MultipartPartSize != 0 || s.PathStyle {
		t.Fatalf("S3 = %+v", s)
	}

	// Without the table there is no S3 store.
	c, err = Parse([]byte("[blob_store.fs]\nroot_dir = \"/data\"\n"), "c.toml")
	if err != nil || c.BlobStore.S3 != nil {
		t.Fatalf("fs only: %v, S3 = %v", err, c.BlobStore.S3)
	}
}

func TestParseS3Errors(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []Problem
	}{
		{"fs and s3", "[blob_store.fs]\nroot_dir = \"/d\"\n[blob_store.s3]\nbucket = \"b\"", []Problem{{"blob_store.s3", 3, "choose one"}}},
		{"empty bucket", "[blob_store.s3]\nbucket = \"\"", []Problem{{"blob_store.s3.bucket", 2, "must not be empty"}}},
		{"empty table", "[blob_store.s3]", []Problem{{"blob_store.s3.bucket", 1, "is required"}}},
		{"endpoint scheme", "[blob_store.s3]\nbucket = \"b\"\nendpoint = \"s3.example.com\"", []Problem{{"blob_store.s3.endpoint", 3, "not an http:// or https:// URL"}}},
		{"endpoint ftp", "[blob_store.s3]\nbucket = \"b\"\nendpoint = \"ftp://x\"", []Problem{{"blob_store.s3.endpoint", 3, "not an http:// or https:// URL"}}},
		{"key without secret", "[blob_store.s3]\nbucket = \"b\"\naccess_key_id = \"AK\"", []Problem{{"blob_store.s3.secret_key", 1, "is required when access_key_id is set"}}},
		{"secret without key", "[blob_store.s3]\nbucket = \"b\"\nsecret_key = \"" + testSecret + "\"", []Problem{{"blob_store.s3.access_key_id", 1, "is required when secret_key is set"}}},
		{"part too small", "[blob_store.s3]\nbucket = \"b\"\nmultipart_part_size = \"4MiB\"", []Problem{{"blob_store.s3.multipart_part_size", 3, "at least 5MiB"}}},
		{"part zero", "[blob_store.s3]\nbucket = \"b\"\nmultipart_part_size = 0", []Problem{{"blob_store.s3.multipart_part_size", 3, "at least 5MiB"}}},
		{"read-ahead of one part", "[blob_store.s3]\nbucket = \"b\"\nread_ahead_parts = 1", []Problem{{"blob_store.s3.read_ahead_parts", 3, "0 (off) or 2..64"}}},
		{"read-ahead too deep", "[blob_store.s3]\nbucket = \"b\"\nread_ahead_parts = 65", []Problem{{"blob_store.s3.read_ahead_parts", 3, "0 (off) or 2..64"}}},
		{"read-ahead not an integer", "[blob_store.s3]\nbucket = \"b\"\nread_ahead_parts = \"4\"", []Problem{{"blob_store.s3.read_ahead_parts", 3, "must be an integer"}}},
		{"part not a size", "[blob_store.s3]\nbucket = \"b\"\nmultipart_part_size = \"big\"", []Problem{{"blob_store.s3.multipart_part_size", 3, "is not a size"}}},
		{"path_style type", "[blob_store.s3]\nbucket = \"b\"\npath_style = \"yes\"", []Problem{{"blob_store.s3.path_style", 3, "must be true or false"}}},
		{"secret type", "[blob_store.s3]\nbucket = \"b\"\naccess_key_id = \"AK\"\nsecret_key = 123456789", []Problem{{"blob_store.s3.secret_key", 4, "must be a string"}}},
		{"not a table", "[blob_store]\ns3 = \"bucket\"", []Problem{{"blob_store.s3", 2, "must be a table"}}},
		{"typo", "[blob_store.s3]\nbucket = \"b\"\nsecret_keys = \"x\"", []Problem{{"blob_store.s3.secret_keys", 3, "did you mean blob_store.s3.secret_key?"}}},
		// Every problem at once, in line order.
		{"all at once", "[blob_store.fs]\nroot_dir = \"/d\"\n[blob_store.s3]\nendpoint = \"nope\"\naccess_key_id = \"AK\"\nmultipart_part_size = 1024", []Problem{
			{"blob_store.s3", 3, "choose one"},
			{"blob_store.s3.bucket", 3, "is required"},
			{"blob_store.s3.secret_key", 3, "is required when access_key_id is set"},
			{"blob_store.s3.endpoint", 4, "not an http"},
			{"blob_store.s3.multipart_part_size", 6, "at least 5MiB"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.doc), "c.toml")
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", c)
			}
			checkProblems(t, problems(t, err), tt.want)
			if strings.Contains(err.Error(), testSecret) || strings.Contains(err.Error(), "123456789") {
				t.Errorf("the error shows the secret key:\n%v", err)
			}
		})
	}
}

// The secret key is never formatted or logged.
func TestS3SecretRedacted(t *testing.T) {
	s := S3{Bucket: "b", AccessKeyID: "AK", SecretKey: testSecret}
	var b strings.Builder
	fmt.Fprintf(&b, "%v %+v %#v %s ", s, s, s, s)
	fmt.Fprintf(&b, "%v %+v %#v ", &s, &s, &s)
	c := Default()
	c.BlobStore.S3 = &s
	fmt.Fprintf(&b, "%+v %#v ", c.BlobStore, c.BlobStore)
	slog.New(slog.NewTextHandler(&b, nil)).Info("x", "s3", s, "s3p", &s)
	slog.New(slog.NewJSONHandler(&b, nil)).Info("x", "s3", s)
	out := b.String()
	if strings.Contains(out, testSecret) {
		t.Fatalf("secret key printed:\n%s", out)
	}
	if !strings.Contains(out, "AK") || !strings.Contains(out, redacted) {
		t.Errorf("non-secret fields missing:\n%s", out)
	}
}
