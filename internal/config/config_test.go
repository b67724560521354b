package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/berth-registry/berth/internal/seedtest"
)

// writeCert writes a self-signed certificate and its key into dir.
func writeCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// public strips the source information so configs compare by value.
func public(c *Config) Config {
	v := *c
	v.file, v.lines, v.typeErr = "", nil, nil
	return v
}

func problems(t *testing.T, err error) []Problem {
	t.Helper()
	if err == nil {
		return nil
	}
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error is %T (%v), want *config.Errors", err, err)
	}
	return errs.Problems
}

func TestDefault(t *testing.T) {
	c := Default()
	want := Config{
		Server: Server{
			BindAddress:       "0.0.0.0",
			Port:              5000,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       120 * time.Second,
			ShutdownTimeout:   30 * time.Second,
		},
		BlobStore: BlobStore{FS: FS{RootDir: "./berth-data"}},
		Limits:    Limits{MaxManifestSize: 4 << 20, MaxBlobSize: 0},
		Uploads:   Uploads{Expiry: 24 * time.Hour, PurgeInterval: time.Hour},
		Log:       Log{Level: "info", Format: "text"},
		Metrics:   Metrics{Enabled: true, Address: ""},
		UI:        UI{Enabled: false, Name: "berth"},
		Cache:     Cache{ManifestBytes: 64 << 20, ManifestTTL: 5 * time.Second},
		Auth: Auth{Token: Token{Enabled: true, Service: "berth", AccessTokenTTL: 5 * time.Minute, KeyRotationInterval: 24 * time.Hour},
			RateLimit: RateLimit{MaxFailures: 30, Window: time.Minute}},
		GC: GC{GracePeriod: time.Hour},

		Tracing: Tracing{SampleRatio: 1, ServiceName: "berth"},
		Admin:   Admin{BindAddress: "127.0.0.1:5001"},
	}
	if got := public(c); !reflect.DeepEqual(got, want) {
		t.Errorf("Default() = %+v\nwant %+v", got, want)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Default().Validate() = %v", err)
	}
	if got := c.ListenAddr(); got != "0.0.0.0:5000" {
		t.Errorf("ListenAddr() = %q", got)
	}
	if c.TLSEnabled() {
		t.Error("TLSEnabled() = true for the default config")
	}
}

func TestParseEmptyIsDefault(t *testing.T) {
	for _, doc := range []string{"", "# nothing\n", "[server]\n[limits]\n[uploads]\n[log]\n[metrics]\n[ui]\n[blob_store.fs]\n"} {
		c, err := Parse([]byte(doc), "c.toml")
		if err != nil {
			t.Fatalf("Parse(%q): %v", doc, err)
		}
		if got, want := public(c), public(Default()); !reflect.DeepEqual(got, want) {
			t.Errorf("Parse(%q) = %+v\nwant defaults %+v", doc, got, want)
		}
	}
}

func TestParseKeys(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeCert(t, dir)
	tests := []struct {
		doc  string
		want func(c *Config)
	}{
		{"[server]\nbind_address = \"127.0.0.1\"", func(c *Config) { c.Server.BindAddress = "127.0.0.1" }},
		{"[server]\nbind_address = \"::1\"", func(c *Config) { c.Server.BindAddress = "::1" }},
		{"[server]\nbind_address = \"\"", func(c *Config) { c.Server.BindAddress = "" }},
		{"[server]\nport = 8080", func(c *Config) { c.Server.Port = 8080 }},
		{"[server]\nport = 0", func(c *Config) { c.Server.Port = 0 }},
		{"[server]\nread_header_timeout = \"5s\"", func(c *Config) { c.Server.ReadHeaderTimeout = 5 * time.Second }},
		{"[server]\nidle_timeout = \"1m30s\"", func(c *Config) { c.Server.IdleTimeout = 90 * time.Second }},
		{"[server]\nshutdown_timeout = \"2m\"", func(c *Config) { c.Server.ShutdownTimeout = 2 * time.Minute }},
		{"[server.tls]\nserver_certificate_bundle = '" + cert + "'\nserver_private_key = '" + key + "'",
			func(c *Config) { c.Server.TLS = &TLS{CertificateBundle: cert, PrivateKey: key} }},
		{"[blob_store.fs]\nroot_dir = \"/data\"", func(c *Config) { c.BlobStore.FS.RootDir = "/data" }},
		{"blob_store.fs.root_dir = \"/dotted\"", func(c *Config) { c.BlobStore.FS.RootDir = "/dotted" }},
		{"[limits]\nmax_manifest_size = 1024", func(c *Config) { c.Limits.MaxManifestSize = 1024 }},
		{"[limits]\nmax_manifest_size = \"8MiB\"", func(c *Config) { c.Limits.MaxManifestSize = 8 << 20 }},
		{"[limits]\nmax_blob_size = \"10 GB\"", func(c *Config) { c.Limits.MaxBlobSize = 10e9 }},
		{"[limits]\nmax_blob_size = 0", func(c *Config) { c.Limits.MaxBlobSize = 0 }},
		{"[uploads]\nexpiry = \"1h\"", func(c *Config) { c.Uploads.Expiry = time.Hour }},
		{"[uploads]\npurge_interval = \"10m\"", func(c *Config) { c.Uploads.PurgeInterval = 10 * time.Minute }},
		{"[log]\nlevel = \"debug\"", func(c *Config) { c.Log.Level = "debug" }},
		{"[log]\nlevel = \"warn\"", func(c *Config) { c.Log.Level = "warn" }},
		{"[log]\nlevel = \"error\"", func(c *Config) { c.Log.Level = "error" }},
		{"[log]\nformat = \"json\"", func(c *Config) { c.Log.Format = "json" }},
		{"[metrics]\nenabled = false", func(c *Config) { c.Metrics.Enabled = false }},
		{"[metrics]\naddress = \"127.0.0.1:9090\"", func(c *Config) { c.Metrics.Address = "127.0.0.1:9090" }},
		{"[metrics]\naddress = \":9090\"", func(c *Config) { c.Metrics.Address = ":9090" }},
		{"[ui]\nenabled = true", func(c *Config) { c.UI.Enabled = true }},
		{"[ui]\nname = \"My Registry\"", func(c *Config) { c.UI.Name = "My Registry" }},
		{"ui = { enabled = true, name = \"inline\" }", func(c *Config) { c.UI.Enabled, c.UI.Name = true, "inline" }},
	}
	for _, tt := range tests {
		t.Run(tt.doc, func(t *testing.T) {
			c, err := Parse([]byte(tt.doc), "c.toml")
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			want := Default()
			tt.want(want)
			if got := public(c); !reflect.DeepEqual(got, public(want)) {
				t.Errorf("got  %+v\nwant %+v", got, public(want))
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []Problem // Message is matched as a substring
	}{
		{"syntax", "[server\nport = 1", []Problem{{"", 1, "expected ']'"}}},
		{"duplicate key", "[server]\nport = 1\nport = 2", []Problem{{"port", 3, "already defined"}}},
		{"unknown top-level table", "[servr]\nport = 1", []Problem{{"servr", 1, "unknown table (did you mean server?)"}}},
		{"unknown key", "[server]\nprot = 1", []Problem{{"server.prot", 2, "unknown key (did you mean server.port?)"}}},
		{"unknown key far from any", "[log]\ncolour = true", []Problem{{"log.colour", 2, "unknown key"}}},
		{"unknown key in inline table", "ui = { nme = \"x\" }", []Problem{{"ui.nme", 1, "unknown key (did you mean ui.name?)"}}},
		{"unknown nested table", "[server.http2]\nenabled = true", []Problem{{"server.http2", 1, "unknown table"}}},
		{"port type", "[server]\nport = \"5000\"", []Problem{{"server.port", 2, `must be an integer, got string "5000"`}}},
		{"port float", "[server]\nport = 50.5", []Problem{{"server.port", 2, "must be an integer, got float 50.5"}}},
		{"port range", "[server]\nport = 70000", []Problem{{"server.port", 2, "out of range 0-65535"}}},
		{"port negative", "[server]\nport = -1", []Problem{{"server.port", 2, "out of range 0-65535"}}},
		{"bind address with port", "[server]\nbind_address = \"0.0.0.0:5000\"", []Problem{{"server.bind_address", 2, "put the port in server.port"}}},
		{"bind address type", "[server]\nbind_address = 1", []Problem{{"server.bind_address", 2, "must be a string, got integer 1"}}},
		{"duration integer", "[server]\nread_header_timeout = 10", []Problem{{"server.read_header_timeout", 2, `must be a duration string such as "30s", got integer 10`}}},
		{"duration syntax", "[server]\nidle_timeout = \"2 minutes\"", []Problem{{"server.idle_timeout", 2, `"2 minutes" is not a duration`}}},
		{"duration zero", "[server]\nshutdown_timeout = \"0s\"", []Problem{{"server.shutdown_timeout", 2, "must be greater than zero"}}},
		{"duration negative", "[uploads]\nexpiry = \"-1h\"", []Problem{{"uploads.expiry", 2, "must be greater than zero"}}},
		{"purge interval zero", "[uploads]\npurge_interval = \"0s\"", []Problem{{"uploads.purge_interval", 2, "must be greater than zero"}}},
		{"tls empty table", "[server]\nport = 1\n[server.tls]\n", []Problem{
			{"server.tls.server_certificate_bundle", 3, "is required when [server.tls] is present"},
			{"server.tls.server_private_key", 3, "is required when [server.tls] is present"},
		}},
		{"tls missing key", "[server.tls]\nserver_certificate_bundle = \"/x/cert.pem\"", []Problem{
			{"server.tls.server_private_key", 1, "is required"},
		}},
		{"tls files missing", "[server.tls]\nserver_certificate_bundle = \"/nonexistent/cert.pem\"\nserver_private_key = \"/nonexistent/key.pem\"", []Problem{
			{"server.tls", 1, "cannot load certificate and key"},
		}},
		{"tls type", "[server.tls]\nserver_certificate_bundle = true\nserver_private_key = \"/k\"", []Problem{
			{"server.tls.server_certificate_bundle", 2, "must be a string, got boolean true"},
		}},
		{"tls empty strings", "[server.tls]\nserver_certificate_bundle = \"\"\nserver_private_key = \"\"", []Problem{
			{"server.tls.server_certificate_bundle", 2, "must not be empty"},
			{"server.tls.server_private_key", 3, "must not be empty"},
		}},
		{"root dir empty", "[blob_store.fs]\nroot_dir = \"\"", []Problem{{"blob_store.fs.root_dir", 2, "must not be empty"}}},
		{"size unit", "[limits]\nmax_manifest_size = \"4MB/s\"", []Problem{{"limits.max_manifest_size", 2, "is not a size"}}},
		{"size zero manifest", "[limits]\nmax_manifest_size = 0", []Problem{{"limits.max_manifest_size", 2, "must be greater than zero"}}},
		{"size negative", "[limits]\nmax_blob_size = -5", []Problem{{"limits.max_blob_size", 2, "must not be negative"}}},
		{"size float", "[limits]\nmax_blob_size = 1.5", []Problem{{"limits.max_blob_size", 2, "got float 1.5"}}},
		{"size overflow", "[limits]\nmax_blob_size = \"99999999999 TiB\"", []Problem{{"limits.max_blob_size", 2, "too large"}}},
		{"log level", "[log]\nlevel = \"verbose\"", []Problem{{"log.level", 2, `"verbose" is not one of debug, info, warn, error`}}},
		{"log format", "[log]\nformat = \"xml\"", []Problem{{"log.format", 2, `"xml" is not one of text, json`}}},
		{"metrics enabled type", "[metrics]\nenabled = \"yes\"", []Problem{{"metrics.enabled", 2, `must be true or false, got string "yes"`}}},
		{"metrics address", "[metrics]\naddress = \"9090\"", []Problem{{"metrics.address", 2, "not a host:port address"}}},
		{"metrics address port", "[metrics]\naddress = \"localhost:http\"", []Problem{{"metrics.address", 2, "invalid port"}}},
		{"ui name", "[ui]\nname = \"\"", []Problem{{"ui.name", 2, "must not be empty"}}},
		{"ui enabled type", "[ui]\nenabled = 1", []Problem{{"ui.enabled", 2, "must be true or false"}}},
		{"table as value", "server = 5\n[log]\nlevel = 1", []Problem{
			{"server", 1, "must be a table, got integer 5"},
			{"log.level", 3, "must be a string"},
		}},
		{"nested table as value", "[server]\ntls = \"on\"\nfoo = 1", []Problem{
			{"server.tls", 2, `must be a table, got string "on"`},
			{"server.foo", 3, "unknown key"},
		}},
		{"array of tables", "[[server]]\nport = 1", []Problem{{"server", 1, "must be a table, got an array"}}},
		{"date", "[server]\nport = 2024-01-01", []Problem{{"server.port", 2, "got a date/time"}}},

		// Sections of features not built yet.
		{"policy default twice", "[global.access_policy]\ndefault_allow = true\ndefault = \"deny\"", []Problem{{"global.access_policy.default", 3, "not both"}}},
		{"policy default value", "[repository.\"team/app\".access_policy]\ndefault = \"maybe\"", []Problem{{`repository."team/app".access_policy.default`, 2, "is not allow or deny"}}},
		{"policy rules type", "[global.access_policy]\nrules = \"x\"", []Problem{{"global.access_policy.rules", 2, "must be an array of strings"}}},
		{"s3 without bucket", "[blob_store.s3]\nregion = \"us-east-1\"", []Problem{{"blob_store.s3.bucket", 1, "is required"}}},
		{"s3 inline unknown", "blob_store = { s3 = { bucket = \"b\", buckt = 1 } }", []Problem{{"blob_store.s3.buckt", 1, "unknown key"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.doc), "c.toml")
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", public(c))
			}
			if c != nil {
				t.Error("Parse returned a config along with an error")
			}
			checkProblems(t, problems(t, err), tt.want)
		})
	}
}

func checkProblems(t *testing.T, got, want []Problem) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(want); i++ {
		ok = got[i].Key == want[i].Key && got[i].Line == want[i].Line && strings.Contains(got[i].Message, want[i].Message)
	}
	if !ok {
		t.Errorf("problems:\n%s\nwant:\n%s", fmtProblems(got), fmtProblems(want))
	}
}

func fmtProblems(ps []Problem) string {
	var b strings.Builder
	for _, p := range ps {
		b.WriteString("  " + p.String("c.toml") + "\n")
	}
	return b.String()
}

// Every problem is reported at once, in line order, with key paths and lines.
func TestParseReportsEveryProblem(t *testing.T) {
	doc := `[server]
bind_address = "0.0.0.0"
port = "5000"
read_header_timeout = 10
colour = "blue"

[server.tls]
server_certificate_bundle = "/tls/server.crt"

[auth.oidc.github-actions]
provider = "githup"

[limits]
max_manifest_size = "4 furlongs"

[log]
level = "loud"
format = "json"

[metrics]
address = "nope"
`
	_, err := Parse([]byte(doc), "berth.toml")
	want := []Problem{
		{"server.port", 3, "must be an integer"},
		{"server.read_header_timeout", 4, "must be a duration string"},
		{"server.colour", 5, "unknown key"},
		{"server.tls.server_private_key", 7, "is required"},
		{"auth.oidc.github-actions.provider", 11, "is not one of github, gitlab, kubernetes, generic"},
		{"limits.max_manifest_size", 14, "is not a size"},
		{"log.level", 17, "is not one of"},
		{"metrics.address", 21, "not a host:port"},
	}
	checkProblems(t, problems(t, err), want)

	msg := err.Error()
	for _, line := range []string{
		`berth.toml:3: server.port: must be an integer, got string "5000"`,
		`berth.toml:11: auth.oidc.github-actions.provider: "githup" is not one of github, gitlab, kubernetes, generic`,
	} {
		if !strings.Contains(msg, line) {
			t.Errorf("Error() lacks %q:\n%s", line, msg)
		}
	}
	if n := strings.Count(msg, "\n") + 1; n != len(want) {
		t.Errorf("Error() has %d lines, want %d:\n%s", n, len(want), msg)
	}
}

// The "Complete Example" of Angos's GitHub Actions guide (seed 000) loads
// except for the sections of features that are not built yet. Its TLS paths
// point at a temporary certificate, since /tls does not exist here.
func TestParseAngosCompleteExample(t *testing.T) {
	cert, key := writeCert(t, t.TempDir())
	doc := seedtest.AngosComplete
	doc = strings.NewReplacer("/tls/server.crt", cert, "/tls/server.key", key).Replace(doc)
	c, err := Parse([]byte(doc), "config.toml")
	if err != nil {
		t.Fatalf("the Complete Example must load as written: %v", err)
	}
	if len(c.Repositories) != 2 || c.Repositories[0].Key != "dev" || c.Repositories[1].AccessPolicy.DefaultAllow ||
		len(c.Repositories[1].AccessPolicy.Rules) != 1 || len(c.Auth.OIDC) != 1 || !c.UI.Enabled {
		t.Fatalf("Complete Example parsed as %+v", c)
	}

	if c.ListenAddr() != "0.0.0.0:5000" || !c.TLSEnabled() || c.BlobStore.FS.RootDir != "/data" || !c.UI.Enabled {
		t.Errorf("unexpected config %+v", public(c))
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  bool
	}{
		{"0", 0, false},
		{"1024", 1024, false},
		{"1B", 1, false},
		{"1KB", 1000, false},
		{"1KiB", 1024, false},
		{"4MiB", 4 << 20, false},
		{"4 MiB", 4 << 20, false},
		{" 2MB ", 2e6, false},
		{"3GB", 3e9, false},
		{"3GiB", 3 << 30, false},
		{"1TB", 1e12, false},
		{"2TiB", 2 << 40, false},
		{"8388607TiB", 8388607 << 40, false},
		{"8388608TiB", 0, true},
		{"99999999999999999999", 0, true},
		{"", 0, true},
		{"MiB", 0, true},
		{"1.5GiB", 0, true},
		{"-1", 0, true},
		{"4mib", 0, true},
		{"4 M", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, error %t", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "berth.toml")
	if err := os.WriteFile(path, []byte("[server]\nport = 6000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.Port != 6000 || c.ListenAddr() != "0.0.0.0:6000" {
		t.Errorf("Load: %+v", public(c))
	}

	if err := os.WriteFile(path, []byte("[server]\nport = \"x\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(path)
	if !strings.HasPrefix(err.Error(), path+":2: server.port: ") {
		t.Errorf("Load error = %q, want it to start with the path and line", err)
	}

	_, err = Load(filepath.Join(dir, "missing.toml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want ErrNotExist", err)
	}
}

// Validate works on a Config built in code: every problem, no lines.
func TestValidateInCode(t *testing.T) {
	c := Default()
	c.Server.Port = 99999
	c.Server.IdleTimeout = 0
	c.Server.TLS = &TLS{}
	c.Limits.MaxBlobSize = -1
	c.Log.Format = "yaml"
	err := c.Validate()
	checkProblems(t, problems(t, err), []Problem{
		{"server.port", 0, "out of range"},
		{"server.idle_timeout", 0, "greater than zero"},
		{"server.tls.server_certificate_bundle", 0, "is required"},
		{"server.tls.server_private_key", 0, "is required"},
		{"limits.max_blob_size", 0, "must not be negative"},
		{"log.format", 0, "not one of"},
	})
	if !strings.HasPrefix(err.Error(), "server.port: 99999 is out of range") {
		t.Errorf("Error() = %q", err)
	}
}

func TestTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeCert(t, dir)
	c, err := Parse([]byte("[server.tls]\nserver_certificate_bundle = '"+cert+"'\nserver_private_key = '"+key+"'\n"), "c.toml")
	if err != nil {
		t.Fatal(err)
	}
	if !c.TLSEnabled() {
		t.Error("TLSEnabled() = false")
	}

	// The key of another certificate does not match.
	other := filepath.Join(dir, "other")
	if err := os.Mkdir(other, 0o700); err != nil {
		t.Fatal(err)
	}
	_, otherKey := writeCert(t, other)
	_, err = Parse([]byte("[server.tls]\nserver_certificate_bundle = '"+cert+"'\nserver_private_key = '"+otherKey+"'\n"), "c.toml")
	checkProblems(t, problems(t, err), []Problem{{"server.tls", 1, "cannot load certificate and key"}})
}

func TestSlogLevel(t *testing.T) {
	for level, want := range map[string]string{"debug": "DEBUG", "info": "INFO", "warn": "WARN", "error": "ERROR", "": "INFO"} {
		if got := (Log{Level: level}).SlogLevel().String(); got != want {
			t.Errorf("SlogLevel(%q) = %s, want %s", level, got, want)
		}
	}
}

func TestProblemString(t *testing.T) {
	tests := []struct {
		p    Problem
		file string
		want string
	}{
		{Problem{"server.port", 3, "bad"}, "c.toml", "c.toml:3: server.port: bad"},
		{Problem{"server.port", 0, "bad"}, "c.toml", "c.toml: server.port: bad"},
		{Problem{"", 7, "syntax"}, "c.toml", "c.toml:7: syntax"},
		{Problem{"server.port", 3, "bad"}, "", "line 3: server.port: bad"},
		{Problem{"server.port", 0, "bad"}, "", "server.port: bad"},
	}
	for _, tt := range tests {
		if got := tt.p.String(tt.file); got != tt.want {
			t.Errorf("String(%q) = %q, want %q", tt.file, got, tt.want)
		}
	}
}

func TestFormatKey(t *testing.T) {
	for parts, want := range map[string]string{
		"server\x00port": "server.port",
		"repository\x00team/app\x00access_policy": `repository."team/app".access_policy`,
		"a b": `"a b"`,
		"":    `""`,
	} {
		if got := formatKey(strings.Split(parts, "\x00")); got != want {
			t.Errorf("formatKey(%q) = %s, want %s", parts, got, want)
		}
	}
}

func TestManifestsAllowSparse(t *testing.T) {
	c, err := Parse([]byte("[manifests]\nallow_sparse = true\n"), "t.toml")
	if err != nil {
		t.Fatal(err)
	}
	if !c.Manifests.AllowSparse {
		t.Fatal("allow_sparse not set")
	}
	if Default().Manifests.AllowSparse {
		t.Fatal("allow_sparse on by default")
	}
	if _, err := Parse([]byte("[manifests]\nallow_sparse = \"yes\"\n"), "t.toml"); err == nil || !strings.Contains(err.Error(), "manifests.allow_sparse") {
		t.Fatalf("wrong type not reported with its key: %v", err)
	}
}
