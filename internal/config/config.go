// Package config loads and validates berth's TOML configuration.
//
// The syntax follows Angos's config.toml so that an Angos file can be brought
// over: [server], [server.tls], [blob_store.fs] or [blob_store.s3], plus berth's own [limits],
// [uploads], [log], [metrics] and [ui].
//
//	cfg, err := config.Load("config.toml")
//	var errs *config.Errors
//	if errors.As(err, &errs) {
//		for _, p := range errs.Problems { ... } // every problem, with key path and line
//	}
//
// Decoding is strict: an unknown key is an error, never ignored, because a
// misspelt security setting must not silently fall back to a default: a
// registry must never start open when its file asks for authentication.
package config

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config is berth's configuration. Build one with Default, Load or Parse.
type Config struct {
	Server    Server
	BlobStore BlobStore
	Limits    Limits
	Manifests Manifests
	Uploads   Uploads
	Log       Log
	Metrics   Metrics
	UI        UI
	Cache     Cache
	Auth      Auth
	GC        GC
	Tracing   Tracing
	Admin     Admin
	// Global and Repositories hold access policies and immutable tags.
	Global       Global
	Repositories []Repository

	// file and lines let Validate report problems at their place in the file.
	file    string
	lines   lineIndex
	typeErr map[string]bool // keys whose value had the wrong type
}

// Server is the [server] table.
type Server struct {
	// BindAddress is the host or IP to listen on ("0.0.0.0": every IPv4
	// interface; "" or "::": every interface).
	BindAddress string
	// Port is the TCP port (0: any free port, which is logged at startup).
	Port int
	// ReadHeaderTimeout bounds reading a request's headers. There is
	// deliberately no read or write timeout for whole requests: blob
	// transfers can take hours.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes keep-alive connections idle for this long.
	IdleTimeout time.Duration
	// ShutdownTimeout is how long in-flight requests get to finish on shutdown.
	ShutdownTimeout time.Duration
	// TrustedProxies are the addresses of reverse proxies in front of
	// berth: from these peers only, X-Forwarded-For gives the client address
	// (policies, trusted IPs, rate limits) and X-Forwarded-Proto the scheme
	// of the token realm.
	TrustedProxies []netip.Prefix
	// TLS, when not nil, makes the server speak HTTPS only.
	TLS *TLS
}

// TLS is the [server.tls] table.
type TLS struct {
	// CertificateBundle is the PEM file with the certificate chain (server_certificate_bundle).
	CertificateBundle string
	// PrivateKey is the PEM file with the private key (server_private_key).
	PrivateKey string
}

// Cache is the [cache] table: the in-memory manifest cache, and state
// shared between replicas.
type Cache struct {
	// ManifestBytes bounds the in-memory cache of manifests and tag
	// resolutions (0: off).
	ManifestBytes int64
	// ManifestTTL is how long a cached manifest or tag resolution is served
	// before it is read from storage again: the bound on a stale answer when
	// an invalidation from another replica (or from berth gc) is lost.
	ManifestTTL time.Duration
	// Redis, when not nil, holds the state several replicas must share.
	Redis *Redis
}

// BlobStore is the [blob_store] table.
type BlobStore struct {
	FS FS
	// S3, when not nil, stores blobs, manifests and upload sessions in S3
	// instead of FS.RootDir ([blob_store.s3]). FS.RootDir then keeps its
	// default and holds only local state (the token service's key and state).
	S3 *S3
}

// FS is the [blob_store.fs] table.
type FS struct {
	// RootDir is the directory holding blobs, manifests and upload sessions
	// (with [blob_store.s3]: only the token service's local state).
	RootDir string
}

// Limits is the [limits] table.
type Limits struct {
	// MaxManifestSize is the largest manifest accepted, in bytes.
	MaxManifestSize int64
	// MaxBlobSize is the largest blob accepted, in bytes (0: unlimited).
	MaxBlobSize int64
}

// Manifests is the [manifests] table.
type Manifests struct {
	// AllowSparse accepts manifests whose layers or child manifests are not
	// in the repository (the config must exist). Off: MANIFEST_BLOB_UNKNOWN.
	AllowSparse bool
}

// Uploads is the [uploads] table.
type Uploads struct {
	// Expiry: upload sessions started longer ago than this are purged.
	Expiry time.Duration
	// PurgeInterval is how often expired sessions are looked for.
	PurgeInterval time.Duration
}

// Log is the [log] table.
type Log struct {
	// Level is debug, info, warn or error.
	Level string
	// Format is text or json.
	Format string
}

// SlogLevel returns Level as a slog.Level (info when unrecognised).
func (l Log) SlogLevel() slog.Level {
	switch l.Level {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// Metrics is the [metrics] table.
type Metrics struct {
	// Enabled serves Prometheus metrics.
	Enabled bool
	// Address, when not empty, serves /metrics on its own listener
	// ("127.0.0.1:9090") instead of on the main one.
	Address string
}

// UI is the [ui] table: the web UI (internal/ui), served at / when enabled.
type UI struct {
	// Enabled serves the web UI.
	Enabled bool
	// Name is the title shown on every page.
	Name string
}

// Defaults.
const (
	DefaultBindAddress       = "0.0.0.0"
	DefaultPort              = 5000
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
	DefaultShutdownTimeout   = 30 * time.Second
	DefaultRootDir           = "./berth-data"
	DefaultMaxManifestSize   = 4 << 20
	DefaultManifestCache     = 64 << 20
	DefaultManifestCacheTTL  = 5 * time.Second
	DefaultUploadExpiry      = 24 * time.Hour
	DefaultPurgeInterval     = time.Hour
	DefaultLogLevel          = "info"
	DefaultLogFormat         = "text"
	DefaultUIName            = "berth"
)

// Default returns the configuration used when no file is given: plain HTTP on
// 0.0.0.0:5000, storage in ./berth-data, metrics on /metrics.
func Default() *Config {
	return &Config{
		Server: Server{
			BindAddress:       DefaultBindAddress,
			Port:              DefaultPort,
			ReadHeaderTimeout: DefaultReadHeaderTimeout,
			IdleTimeout:       DefaultIdleTimeout,
			ShutdownTimeout:   DefaultShutdownTimeout,
		},
		BlobStore: BlobStore{FS: FS{RootDir: DefaultRootDir}},
		Limits:    Limits{MaxManifestSize: DefaultMaxManifestSize},
		Cache:     Cache{ManifestBytes: DefaultManifestCache, ManifestTTL: DefaultManifestCacheTTL},
		Uploads:   Uploads{Expiry: DefaultUploadExpiry, PurgeInterval: DefaultPurgeInterval},
		GC:        GC{GracePeriod: DefaultGCGracePeriod},
		Log:       Log{Level: DefaultLogLevel, Format: DefaultLogFormat},
		Metrics:   Metrics{Enabled: true},
		UI:        UI{Name: DefaultUIName},
		Tracing:   Tracing{SampleRatio: DefaultTracingSampleRatio, ServiceName: DefaultTracingServiceName},
		Admin:     Admin{BindAddress: DefaultAdminAddress},
		Auth: Auth{Token: Token{Enabled: true, Service: DefaultTokenService, AccessTokenTTL: DefaultAccessTokenTTL, KeyRotationInterval: DefaultKeyRotationInterval},
			RateLimit: RateLimit{MaxFailures: DefaultMaxFailures, Window: DefaultFailureWindow}},
	}
}

// ListenAddr is the main listener's address, host:port.
func (c *Config) ListenAddr() string {
	return net.JoinHostPort(c.Server.BindAddress, strconv.Itoa(c.Server.Port))
}

// TLSEnabled reports whether the main listener speaks HTTPS.
func (c *Config) TLSEnabled() bool {
	return c.Server.TLS != nil
}

// Load reads and parses the file at path. See Parse.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(data, path)
}

// Validate checks the values (not the syntax, which Parse checks) and
// returns every problem as *Errors, or nil. When [server.tls] is set it loads
// the certificate and key, so that a broken TLS setup fails at startup rather
// than at the first handshake.
func (c *Config) Validate() error {
	errs := &Errors{File: c.file}
	c.validate(errs)
	return errs.err()
}

func (c *Config) validate(errs *Errors) {
	bad := func(key, format string, args ...any) {
		errs.add(key, c.lines.line(key), format, args...)
	}

	s := c.Server
	if h := s.BindAddress; strings.Contains(h, ":") && net.ParseIP(h) == nil {
		bad("server.bind_address", "%q is not a host name or IP address (put the port in server.port)", h)
	}
	if s.Port < 0 || s.Port > 65535 {
		bad("server.port", "%d is out of range 0-65535", s.Port)
	}
	positive := func(key string, d time.Duration) {
		if d <= 0 {
			bad(key, "must be greater than zero, got %s", d)
		}
	}
	positive("server.read_header_timeout", s.ReadHeaderTimeout)
	positive("server.idle_timeout", s.IdleTimeout)
	positive("server.shutdown_timeout", s.ShutdownTimeout)
	if t := s.TLS; t != nil {
		cert, key := t.CertificateBundle, t.PrivateKey
		required := func(k, v string) {
			switch {
			case v != "":
			case !c.lines.has(k):
				bad(k, "is required when [server.tls] is present")
			case c.typeErr[k]:
				// already reported: the value is not a string
			default:
				bad(k, "must not be empty")
			}
		}
		required("server.tls.server_certificate_bundle", cert)
		required("server.tls.server_private_key", key)
		if cert != "" && key != "" {
			if _, err := tls.LoadX509KeyPair(cert, key); err != nil {
				bad("server.tls", "cannot load certificate and key: %v", err)
			}
		}
	}

	if c.BlobStore.FS.RootDir == "" {
		bad("blob_store.fs.root_dir", "must not be empty")
	}

	if c.Limits.MaxManifestSize <= 0 {
		bad(c.keyAsWritten("limits.max_manifest_size", "global.max_manifest_size"), "must be greater than zero")
	}
	if c.Limits.MaxBlobSize < 0 {
		bad("limits.max_blob_size", "must not be negative (0 means unlimited)")
	}

	positive("uploads.expiry", c.Uploads.Expiry)
	positive("uploads.purge_interval", c.Uploads.PurgeInterval)

	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "%q is not one of text, json", c.Log.Format)
	}

	if a := c.Metrics.Address; a != "" {
		_, port, err := net.SplitHostPort(a)
		if err != nil {
			bad("metrics.address", "%q is not a host:port address: %v", a, err)
		} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			bad("metrics.address", "%q has an invalid port", a)
		}
	}

	if c.UI.Name == "" {
		bad("ui.name", "must not be empty")
	}
	c.validateS3(bad)
	c.validateCache(bad)
	c.validateGC(bad)
	c.validateAuth(bad)
	c.validateTracing(bad)
	c.validateAdmin(bad)
}
