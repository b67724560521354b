package config

import (
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
)

// Redis is the [cache.redis] table: the state several replicas share (token
// use counters and revocations, the token signing key, OIDC discovery and key
// sets, upload-session locks).
//
// URL may carry a password (redis://:secret@host:6379/0). It is never printed
// or logged: Redis implements fmt.Stringer, fmt.GoStringer and
// slog.LogValuer, and Redacted returns the URL without it.
type Redis struct {
	// URL is redis://[user:password@]host:port[/db], rediss:// for TLS, or
	// unix:///path/to/socket.
	URL string
	// KeyPrefix is prepended to every key berth writes (default "berth:").
	KeyPrefix string
	// PasswordFile, when set, names a file whose first line is the password
	// (e.g. a mounted Kubernetes Secret); it replaces any password in URL.
	// Read when Redis is opened (ConnURL), so the file may live only where
	// berth serves.
	PasswordFile string
}

// ConnURL returns the URL to connect with: URL, with the password read from
// PasswordFile when that is set. The result may hold a password: never log
// it. Errors name the file, never its content.
func (r Redis) ConnURL() (string, error) {
	if r.PasswordFile == "" {
		return r.URL, nil
	}
	b, err := os.ReadFile(r.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("cache.redis.password_file: %w", err)
	}
	pw, _, _ := strings.Cut(string(b), "\n")
	pw = strings.TrimSuffix(pw, "\r")
	if pw == "" {
		return "", fmt.Errorf("cache.redis.password_file: %s: no password on its first line", r.PasswordFile)
	}
	u, err := url.Parse(r.URL)
	if err != nil {
		return "", fmt.Errorf("cache.redis.url: is not a URL")
	}
	user := ""
	if u.User != nil {
		user = u.User.Username()
	}
	u.User = url.UserPassword(user, pw)
	return u.String(), nil
}

// DefaultRedisKeyPrefix is the default [cache.redis] key_prefix.
const DefaultRedisKeyPrefix = "berth:"

// Redacted returns URL with any password replaced by "xxxxx".
func (r Redis) Redacted() string {
	u, err := url.Parse(r.URL)
	if err != nil {
		if strings.Contains(r.URL, "@") {
			return redacted
		}
		return r.URL
	}
	return u.Redacted()
}

// String formats r with the password redacted.
func (r Redis) String() string {
	return "{URL:" + r.Redacted() + " KeyPrefix:" + r.KeyPrefix + " PasswordFile:" + r.PasswordFile + "}"
}

// GoString formats r with the password redacted.
func (r Redis) GoString() string { return r.String() }

// LogValue logs r with the password redacted.
func (r Redis) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("url", r.Redacted()), slog.String("key_prefix", r.KeyPrefix)}
	if r.PasswordFile != "" {
		attrs = append(attrs, slog.String("password_file", r.PasswordFile))
	}
	return slog.GroupValue(attrs...)
}

type rawCache struct {
	ManifestBytes any `toml:"manifest_bytes"`
	ManifestTTL   any `toml:"manifest_ttl"`
	Redis         *struct {
		URL          any `toml:"url"`
		KeyPrefix    any `toml:"key_prefix"`
		PasswordFile any `toml:"password_file"`
	} `toml:"redis"`
}

var cacheKnown = []string{"cache", "cache.manifest_bytes", "cache.manifest_ttl", "cache.redis", "cache.redis.url", "cache.redis.key_prefix", "cache.redis.password_file"}

func (d *decoder) decodeCache(r *rawCache, c *Config) {
	if r == nil {
		return
	}
	d.size("cache.manifest_bytes", r.ManifestBytes, &c.Cache.ManifestBytes)
	d.duration("cache.manifest_ttl", r.ManifestTTL, &c.Cache.ManifestTTL)
	if r.Redis == nil {
		return
	}
	rd := &Redis{KeyPrefix: DefaultRedisKeyPrefix}
	if _, ok := r.Redis.URL.(string); !ok && r.Redis.URL != nil {
		// Never echo the value: it may hold a password.
		d.bad("cache.redis.url", "must be a string")
	} else {
		d.str("cache.redis.url", r.Redis.URL, &rd.URL)
	}
	d.str("cache.redis.key_prefix", r.Redis.KeyPrefix, &rd.KeyPrefix)
	d.str("cache.redis.password_file", r.Redis.PasswordFile, &rd.PasswordFile)
	c.Cache.Redis = rd
}

func (c *Config) validateCache(bad func(key, format string, args ...any)) {
	if c.Cache.ManifestBytes < 0 {
		bad("cache.manifest_bytes", "must not be negative (0 turns the cache off), got %d", c.Cache.ManifestBytes)
	}
	if c.Cache.ManifestTTL <= 0 && !c.typeErr["cache.manifest_ttl"] {
		bad("cache.manifest_ttl", "must be greater than zero, got %s", c.Cache.ManifestTTL)
	}
	r := c.Cache.Redis
	if r == nil {
		return
	}
	const key = "cache.redis.url"
	if c.typeErr[key] {
		return
	}
	if r.URL == "" {
		if c.lines.has(key) {
			bad(key, "must not be empty")
		} else {
			bad(key, "is required when [cache.redis] is present")
		}
		return
	}
	u, err := url.Parse(r.URL)
	switch {
	case err != nil:
		// url.Parse's error quotes the input: say nothing of the value.
		bad(key, "is not a URL")
	case u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix":
		bad(key, "%s is not a redis://, rediss:// or unix:// URL", (Redis{URL: r.URL}).Redacted())
	case u.Scheme != "unix" && u.Host == "":
		bad(key, "%s has no host", (Redis{URL: r.URL}).Redacted())
	case u.Scheme == "unix" && u.Path == "":
		bad(key, "%s has no socket path", (Redis{URL: r.URL}).Redacted())
	}
}
