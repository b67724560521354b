package config

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"
)

const redisPassword = "s3cr3t-redis-Passw0rd"

func TestParseRedis(t *testing.T) {
	c, err := Parse([]byte("[cache.redis]\nurl = \"redis://:"+redisPassword+"@10.0.0.5:6379/2\"\nkey_prefix = \"reg1:\"\n"), "c.toml")
	if err != nil {
		t.Fatal(err)
	}
	r := c.Cache.Redis
	if r == nil || r.URL != "redis://:"+redisPassword+"@10.0.0.5:6379/2" || r.KeyPrefix != "reg1:" {
		t.Fatalf("Redis = %#v", r)
	}

	c, err = Parse([]byte("[cache.redis]\nurl = \"unix:///run/redis.sock\"\n"), "c.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Cache.Redis.KeyPrefix != DefaultRedisKeyPrefix {
		t.Errorf("default key_prefix = %q, want %q", c.Cache.Redis.KeyPrefix, DefaultRedisKeyPrefix)
	}

	c, err = Parse([]byte("[server]\nport = 5000\n"), "c.toml")
	if err != nil || c.Cache.Redis != nil {
		t.Fatalf("no [cache.redis]: %v, %v", err, c.Cache.Redis)
	}
}

func TestParseRedisErrors(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []Problem
	}{
		{"no url", "[cache.redis]\nkey_prefix = \"x\"", []Problem{{"cache.redis.url", 1, "is required"}}},
		{"empty url", "[cache.redis]\nurl = \"\"", []Problem{{"cache.redis.url", 2, "must not be empty"}}},
		{"scheme", "[cache.redis]\nurl = \"http://u:" + redisPassword + "@h:6379\"", []Problem{{"cache.redis.url", 2, "not a redis://"}}},
		{"no host", "[cache.redis]\nurl = \"redis://\"", []Problem{{"cache.redis.url", 2, "has no host"}}},
		{"no socket", "[cache.redis]\nurl = \"unix://\"", []Problem{{"cache.redis.url", 2, "no socket path"}}},
		{"url type", "[cache.redis]\nurl = 6379", []Problem{{"cache.redis.url", 2, "must be a string"}}},
		{"prefix type", "[cache.redis]\nurl = \"redis://h\"\nkey_prefix = 1", []Problem{{"cache.redis.key_prefix", 3, "must be a string"}}},
		{"unknown", "[cache.redis]\nurl = \"redis://h\"\nurll = 1", []Problem{{"cache.redis.urll", 3, "unknown key"}}},
		{"not a table", "cache = 5", []Problem{{"cache", 1, "must be a table"}}},
		{"unknown cache", "[cache.memcached]\nurl = \"x\"", []Problem{{"cache.memcached", 1, "unknown table"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.doc), "c.toml")
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", c.Cache.Redis)
			}
			checkProblems(t, problems(t, err), tt.want)
			if strings.Contains(err.Error(), redisPassword) {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
}

func TestRedisRedacted(t *testing.T) {
	r := Redis{URL: "redis://user:" + redisPassword + "@h:6379/0", KeyPrefix: "p:"}
	var logged strings.Builder
	slog.New(slog.NewTextHandler(&logged, nil)).Info("x", "redis", r)
	for _, s := range []string{r.String(), fmt.Sprintf("%v", r), fmt.Sprintf("%+v", r), fmt.Sprintf("%#v", r), r.Redacted(), logged.String()} {
		if strings.Contains(s, redisPassword) {
			t.Errorf("password shown: %s", s)
		}
		if !strings.Contains(s, "h:6379") {
			t.Errorf("host missing: %s", s)
		}
	}
}

func TestRedisPasswordFile(t *testing.T) {
	dir := t.TempDir()
	pwFile := dir + "/password"
	if err := os.WriteFile(pwFile, []byte(redisPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Parse([]byte("[cache.redis]\nurl = \"redis://:old@10.0.0.5:6379/2\"\npassword_file = \""+pwFile+"\"\n"), "c.toml")
	if err != nil {
		t.Fatal(err)
	}
	r := *c.Cache.Redis
	if r.PasswordFile != pwFile {
		t.Fatalf("PasswordFile = %q", r.PasswordFile)
	}
	got, err := r.ConnURL()
	if want := "redis://:" + redisPassword + "@10.0.0.5:6379/2"; err != nil || got != want {
		t.Errorf("ConnURL = %q, %v; want %q", got, err, want)
	}
	var logged strings.Builder
	slog.New(slog.NewTextHandler(&logged, nil)).Info("x", "redis", r)
	if s := logged.String() + r.String(); strings.Contains(s, redisPassword) || !strings.Contains(s, pwFile) {
		t.Errorf("logged %s", s)
	}

	// A user name in the URL is kept; the file's password is used with it.
	r.URL = "rediss://berth@redis.internal:6380/0"
	if got, err := r.ConnURL(); err != nil || got != "rediss://berth:"+redisPassword+"@redis.internal:6380/0" {
		t.Errorf("ConnURL with user = %q, %v", got, err)
	}
	// Without a password file, the URL as written.
	if got, err := (Redis{URL: "redis://h:6379"}).ConnURL(); err != nil || got != "redis://h:6379" {
		t.Errorf("ConnURL without file = %q, %v", got, err)
	}

	for name, content := range map[string]string{"missing": "", "empty": "\n"} {
		f := dir + "/" + name
		if name == "empty" {
			if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		_, err := Redis{URL: "redis://h:6379", PasswordFile: f}.ConnURL()
		if err == nil || !strings.Contains(err.Error(), "cache.redis.password_file") {
			t.Errorf("%s file: err = %v", name, err)
		}
	}

	_, err = Parse([]byte("[cache.redis]\nurl = \"redis://h\"\npassword_file = 1\n"), "c.toml")
	checkProblems(t, problems(t, err), []Problem{{"cache.redis.password_file", 3, "must be a string"}})
}

func TestParseManifestCache(t *testing.T) {
	c, err := Parse([]byte("[server]\nport = 5000\n"), "c.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Cache.ManifestBytes != DefaultManifestCache || c.Cache.ManifestTTL != DefaultManifestCacheTTL {
		t.Fatalf("defaults: %d %s", c.Cache.ManifestBytes, c.Cache.ManifestTTL)
	}
	c, err = Parse([]byte("[cache]\nmanifest_bytes = \"16MiB\"\nmanifest_ttl = \"2s\"\n"), "c.toml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Cache.ManifestBytes != 16<<20 || c.Cache.ManifestTTL != 2*time.Second {
		t.Fatalf("got %d %s", c.Cache.ManifestBytes, c.Cache.ManifestTTL)
	}
	if c, err = Parse([]byte("[cache]\nmanifest_bytes = 0\n"), "c.toml"); err != nil || c.Cache.ManifestBytes != 0 {
		t.Fatalf("0 turns it off: %v %d", err, c.Cache.ManifestBytes)
	}
	_, err = Parse([]byte("[cache]\nmanifest_bytes = -1\nmanifest_ttl = \"0s\"\n"), "c.toml")
	checkProblems(t, problems(t, err), []Problem{{"cache.manifest_bytes", 2, "must not be negative"}, {"cache.manifest_ttl", 3, "greater than zero"}})
}
