package config

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"strconv"
	"strings"
)

// Tracing is the [tracing] table: OpenTelemetry spans exported over
// OTLP/HTTP (see docs/operations.md). Off by default; when off no tracer is
// built at all.
type Tracing struct {
	// Enabled exports spans to Endpoint.
	Enabled bool
	// Endpoint is the collector's OTLP/HTTP URL ("https://otel:4318"); spans
	// are posted to <endpoint>/v1/traces unless it has a path of its own.
	Endpoint string
	// Insecure allows an http:// endpoint: spans travel unencrypted.
	Insecure bool
	// CAFile is a PEM bundle the collector's certificate must chain to
	// (default: the system roots).
	CAFile string
	// HeadersFile holds extra request headers ("Name: value" lines), e.g.
	// the API key of a hosted collector: secrets stay out of the config.
	HeadersFile string
	// SampleRatio is the share of traces started here that are recorded
	// (0 to 1); a sampled parent (traceparent) is always followed.
	SampleRatio float64
	// ServiceName is the service.name resource attribute.
	ServiceName string
}

// Admin is the [admin] table: a separate listener for pprof and runtime
// statistics, never the registry's.
type Admin struct {
	// BindAddress is host:port of the admin listener; "" or "off" disables
	// it. The default (127.0.0.1:5001) is best effort: if it cannot be
	// bound, berth logs a warning and runs without it.
	BindAddress string
	// AllowNonLoopback permits a BindAddress that is not a loopback address:
	// pprof exposes memory contents (tokens in flight among them).
	AllowNonLoopback bool
}

// Defaults of [tracing] and [admin].
const (
	DefaultTracingSampleRatio = 1.0
	DefaultTracingServiceName = "berth"
	DefaultAdminAddress       = "127.0.0.1:5001"
)

// AdminEnabled reports whether the admin listener is on.
func (c *Config) AdminEnabled() bool {
	return c.Admin.BindAddress != "" && c.Admin.BindAddress != "off"
}

// AdminExplicit reports whether admin.bind_address was written in the file:
// then failing to bind it stops startup (the default address is best
// effort).
func (c *Config) AdminExplicit() bool {
	return c.lines.has("admin.bind_address")
}

type rawTracing struct {
	Enabled     any `toml:"enabled"`
	Endpoint    any `toml:"endpoint"`
	Insecure    any `toml:"insecure"`
	CAFile      any `toml:"certificate_authority_file"`
	HeadersFile any `toml:"headers_file"`
	SampleRatio any `toml:"sample_ratio"`
	ServiceName any `toml:"service_name"`
}

type rawAdmin struct {
	BindAddress      any `toml:"bind_address"`
	AllowNonLoopback any `toml:"allow_non_loopback"`
}

var tracingKnown = []string{"tracing", "tracing.enabled", "tracing.endpoint", "tracing.insecure",
	"tracing.certificate_authority_file", "tracing.headers_file", "tracing.sample_ratio", "tracing.service_name",
	"admin", "admin.bind_address", "admin.allow_non_loopback"}

func (d *decoder) decodeTracing(r *rawTracing, a *rawAdmin, c *Config) {
	if r != nil {
		t := &c.Tracing
		d.boolean("tracing.enabled", r.Enabled, &t.Enabled)
		d.str("tracing.endpoint", r.Endpoint, &t.Endpoint)
		d.boolean("tracing.insecure", r.Insecure, &t.Insecure)
		d.str("tracing.certificate_authority_file", r.CAFile, &t.CAFile)
		d.str("tracing.headers_file", r.HeadersFile, &t.HeadersFile)
		d.number("tracing.sample_ratio", r.SampleRatio, &t.SampleRatio)
		d.str("tracing.service_name", r.ServiceName, &t.ServiceName)
	}
	if a != nil {
		d.str("admin.bind_address", a.BindAddress, &c.Admin.BindAddress)
		d.boolean("admin.allow_non_loopback", a.AllowNonLoopback, &c.Admin.AllowNonLoopback)
	}
}

// number decodes a float or an integer.
func (d *decoder) number(key string, v any, dst *float64) {
	d.seen(key, kindFloat, *dst)
	switch v := v.(type) {
	case nil:
	case float64:
		*dst = v
	case int64:
		*dst = float64(v)
	default:
		d.bad(key, "must be a number, got %s", describe(v))
	}
}

func (c *Config) validateTracing(bad func(key, format string, args ...any)) {
	t := c.Tracing
	if r := t.SampleRatio; math.IsNaN(r) || r < 0 || r > 1 {
		bad("tracing.sample_ratio", "must be between 0 and 1, got %v", r)
	}
	if t.Enabled {
		if t.ServiceName == "" {
			bad("tracing.service_name", "must not be empty")
		}
		switch u, err := url.Parse(t.Endpoint); {
		case t.Endpoint == "":
			bad("tracing.endpoint", "is required when tracing is enabled (the collector's OTLP/HTTP URL, such as \"https://otel-collector:4318\")")
		case err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https"):
			bad("tracing.endpoint", "%q is not an http:// or https:// URL", t.Endpoint)
		case u.User != nil:
			bad("tracing.endpoint", "must not hold credentials: put them in tracing.headers_file")
		case u.Scheme == "http" && !t.Insecure:
			bad("tracing.endpoint", "is http://: spans would travel unencrypted; use https:// or set tracing.insecure = true")
		case u.Scheme == "http" && t.CAFile != "":
			bad("tracing.certificate_authority_file", "applies to an https:// endpoint only")
		}
	}
	if f := t.CAFile; f != "" {
		if b, err := os.ReadFile(f); err != nil {
			bad("tracing.certificate_authority_file", "cannot be read: %v", err)
		} else if _, err := CertPool(b); err != nil {
			bad("tracing.certificate_authority_file", "%s: %v", f, err)
		}
	}
	if f := t.HeadersFile; f != "" {
		if _, err := ReadHeadersFile(f); err != nil {
			bad("tracing.headers_file", "%v", err)
		}
	}
}

// ReadHeadersFile reads "Name: value" lines (blank lines and lines starting
// with # skipped). Errors name the line, never its value: it holds secrets.
func ReadHeadersFile(path string) (http.Header, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot be read: %v", err)
	}
	h := http.Header{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !ok || name == "" || !validHeaderName(name) {
			return nil, fmt.Errorf("%s line %d: not a \"Name: value\" header line", path, n)
		}
		if strings.ContainsAny(value, "\r\n\x00") {
			return nil, fmt.Errorf("%s line %d: invalid header value", path, n)
		}
		h.Add(textproto.CanonicalMIMEHeaderKey(name), value)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return h, nil
}

func validHeaderName(s string) bool {
	for _, r := range s {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune(`()<>@,;:\"/[]?={}`, r) {
			return false
		}
	}
	return true
}

func (c *Config) validateAdmin(bad func(key, format string, args ...any)) {
	if !c.AdminEnabled() {
		return
	}
	a := c.Admin.BindAddress
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		bad("admin.bind_address", "%q is not a host:port address (or \"off\"): %v", a, err)
		return
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		bad("admin.bind_address", "%q has an invalid port", a)
		return
	}
	// The default address yields to a registry on port 5001 (the listener
	// is then skipped at startup); one written in the file does not.
	if n != 0 && n == c.Server.Port && c.AdminExplicit() {
		bad("admin.bind_address", "port %d is the registry's (server.port): the admin listener is never served there", n)
	}
	if !c.Admin.AllowNonLoopback && !loopbackHost(host) {
		bad("admin.bind_address", "%q is not a loopback address: pprof exposes memory contents; bind 127.0.0.1 or ::1, or set admin.allow_non_loopback = true", a)
	}
}

// loopbackHost reports whether host names the loopback interface only.
func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
