package config

import (
	"fmt"
	"log/slog"
	"net/url"
)

// S3 is the [blob_store.s3] table: blobs, manifests and upload sessions in an
// S3-compatible bucket. The keys follow Angos's; path_style is berth's own.
//
// SecretKey is a credential: it is never printed or logged. S3 implements
// fmt.Stringer, fmt.GoStringer and slog.LogValuer to redact it.
type S3 struct {
	// Endpoint is the S3 API URL (http or https); empty: AWS's endpoint for Region.
	Endpoint string
	// Bucket is the bucket name (required).
	Bucket string
	// Region is the signing region (empty: us-east-1).
	Region string
	// KeyPrefix is prepended to every object key (optional).
	KeyPrefix string
	// AccessKeyID and SecretKey are static credentials; both empty: the
	// default AWS credential chain (environment, shared files, web identity,
	// instance metadata).
	AccessKeyID string
	SecretKey   string
	// MultipartPartSize is the size of multipart upload parts, in bytes
	// (0: the backend's default, 8 MiB; otherwise at least 5 MiB).
	MultipartPartSize int64
	// PathStyle addresses the bucket as endpoint/bucket rather than
	// bucket.endpoint (needed by most self-hosted S3 servers).
	PathStyle bool
	// EnableBlobRedirect makes a blob GET answer 307 Temporary Redirect to a
	// presigned URL of the object, so the bytes flow from the bucket to the
	// client directly. Clients must be able to reach Endpoint.
	EnableBlobRedirect bool
	// ReadAheadParts, when 2 or more, makes a blob GET fetch up to that many
	// parts of MultipartPartSize at once with ranged GETs, sent to the client
	// in order (0: off, one GetObject stream per blob GET).
	ReadAheadParts int
}

// MinMultipartPartSize is the smallest part S3 accepts (except the last one).
const MinMultipartPartSize = 5 << 20

const redacted = "[REDACTED]"

func (s S3) redacted() s3Redacted {
	r := s3Redacted(s)
	if r.SecretKey != "" {
		r.SecretKey = redacted
	}
	return r
}

// s3Redacted has S3's fields but none of its methods, for formatting.
type s3Redacted S3

// String formats s with the secret key redacted.
func (s S3) String() string { return fmtValue(s.redacted()) }

// GoString formats s with the secret key redacted.
func (s S3) GoString() string { return fmtValue(s.redacted()) }

// LogValue logs the non-secret fields of s.
func (s S3) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("endpoint", s.Endpoint),
		slog.String("bucket", s.Bucket),
		slog.String("region", s.Region),
		slog.String("key_prefix", s.KeyPrefix),
		slog.Bool("path_style", s.PathStyle),
		slog.Bool("enable_blob_redirect", s.EnableBlobRedirect),
		slog.Int("read_ahead_parts", s.ReadAheadParts),
		slog.Bool("static_credentials", s.AccessKeyID != ""),
	)
}

type rawS3 struct {
	Endpoint           any `toml:"endpoint"`
	Bucket             any `toml:"bucket"`
	Region             any `toml:"region"`
	KeyPrefix          any `toml:"key_prefix"`
	AccessKeyID        any `toml:"access_key_id"`
	SecretKey          any `toml:"secret_key"`
	MultipartPartSize  any `toml:"multipart_part_size"`
	PathStyle          any `toml:"path_style"`
	EnableBlobRedirect any `toml:"enable_blob_redirect"`
	ReadAheadParts     any `toml:"read_ahead_parts"`
}

var s3Known = []string{
	"blob_store.s3", "blob_store.s3.endpoint", "blob_store.s3.bucket", "blob_store.s3.region",
	"blob_store.s3.key_prefix", "blob_store.s3.access_key_id", "blob_store.s3.secret_key",
	"blob_store.s3.multipart_part_size", "blob_store.s3.path_style", "blob_store.s3.enable_blob_redirect",
	"blob_store.s3.read_ahead_parts",
}

func (d *decoder) decodeS3(r *rawS3, c *Config) {
	if r == nil {
		return
	}
	s := &S3{}
	d.str("blob_store.s3.endpoint", r.Endpoint, &s.Endpoint)
	d.str("blob_store.s3.bucket", r.Bucket, &s.Bucket)
	d.str("blob_store.s3.region", r.Region, &s.Region)
	d.str("blob_store.s3.key_prefix", r.KeyPrefix, &s.KeyPrefix)
	d.str("blob_store.s3.access_key_id", r.AccessKeyID, &s.AccessKeyID)
	if _, ok := r.SecretKey.(string); !ok && r.SecretKey != nil {
		// Never echo the value: it may be a mistyped secret.
		d.bad("blob_store.s3.secret_key", "must be a string")
	} else {
		d.str("blob_store.s3.secret_key", r.SecretKey, &s.SecretKey)
	}
	d.size("blob_store.s3.multipart_part_size", r.MultipartPartSize, &s.MultipartPartSize)
	d.boolean("blob_store.s3.path_style", r.PathStyle, &s.PathStyle)
	d.boolean("blob_store.s3.enable_blob_redirect", r.EnableBlobRedirect, &s.EnableBlobRedirect)
	d.integer("blob_store.s3.read_ahead_parts", r.ReadAheadParts, &s.ReadAheadParts)
	c.BlobStore.S3 = s
}

func (c *Config) validateS3(bad func(key, format string, args ...any)) {
	s := c.BlobStore.S3
	if s == nil {
		return
	}
	if c.lines.has("blob_store.fs") {
		bad("blob_store.s3", "[blob_store.fs] and [blob_store.s3] are both set: choose one")
	}
	switch {
	case s.Bucket != "":
	case c.typeErr["blob_store.s3.bucket"]:
	case !c.lines.has("blob_store.s3.bucket"):
		bad("blob_store.s3.bucket", "is required when [blob_store.s3] is present")
	default:
		bad("blob_store.s3.bucket", "must not be empty")
	}
	if e := s.Endpoint; e != "" {
		u, err := url.Parse(e)
		switch {
		case err != nil:
			bad("blob_store.s3.endpoint", "%q is not a URL", e)
		case (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			bad("blob_store.s3.endpoint", "%q is not an http:// or https:// URL", e)
		}
	}
	if (s.AccessKeyID == "") != (s.SecretKey == "") &&
		!c.typeErr["blob_store.s3.access_key_id"] && !c.typeErr["blob_store.s3.secret_key"] {
		if s.AccessKeyID == "" {
			bad("blob_store.s3.access_key_id", "is required when secret_key is set (set both, or neither to use the default AWS credential chain)")
		} else {
			bad("blob_store.s3.secret_key", "is required when access_key_id is set (set both, or neither to use the default AWS credential chain)")
		}
	}
	const part = "blob_store.s3.multipart_part_size"
	if n := s.MultipartPartSize; (n != 0 || c.lines.has(part)) && !c.typeErr[part] && n < MinMultipartPartSize {
		bad(part, "must be at least 5MiB (%d bytes), got %d", MinMultipartPartSize, n)
	}
	if n := s.ReadAheadParts; n != 0 && (n < 2 || n > MaxReadAheadParts) {
		bad("blob_store.s3.read_ahead_parts", "must be 0 (off) or 2..%d, got %d", MaxReadAheadParts, n)
	}
}

// MaxReadAheadParts bounds read_ahead_parts: each blob GET may hold that many
// parts of multipart_part_size in memory.
const MaxReadAheadParts = 64

func fmtValue(v s3Redacted) string { return fmt.Sprintf("%+v", v) }
