package config

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// file mirrors the document. Leaves are `any` so that the strict decoder only
// reports unknown keys and structural mismatches; value types are checked
// here, key by key, so that every bad value is reported, not just the first.
type file struct {
	Server *struct {
		BindAddress       any `toml:"bind_address"`
		Port              any `toml:"port"`
		ReadHeaderTimeout any `toml:"read_header_timeout"`
		IdleTimeout       any `toml:"idle_timeout"`
		ShutdownTimeout   any `toml:"shutdown_timeout"`
		TrustedProxies    any `toml:"trusted_proxies"`
		TLS               *struct {
			CertificateBundle any `toml:"server_certificate_bundle"`
			PrivateKey        any `toml:"server_private_key"`
		} `toml:"tls"`
	} `toml:"server"`
	BlobStore *struct {
		FS *struct {
			RootDir any `toml:"root_dir"`
		} `toml:"fs"`
		S3 *rawS3 `toml:"s3"`
	} `toml:"blob_store"`
	Limits *struct {
		MaxManifestSize any `toml:"max_manifest_size"`
		MaxBlobSize     any `toml:"max_blob_size"`
	} `toml:"limits"`
	Manifests *struct {
		AllowSparse any `toml:"allow_sparse"`
	} `toml:"manifests"`
	Uploads *struct {
		Expiry        any `toml:"expiry"`
		PurgeInterval any `toml:"purge_interval"`
	} `toml:"uploads"`
	Log *struct {
		Level  any `toml:"level"`
		Format any `toml:"format"`
	} `toml:"log"`
	Metrics *struct {
		Enabled any `toml:"enabled"`
		Address any `toml:"address"`
	} `toml:"metrics"`
	UI *struct {
		Enabled any `toml:"enabled"`
		Name    any `toml:"name"`
	} `toml:"ui"`

	Auth       *rawAuth              `toml:"auth"`
	Global     *rawGlobalTable       `toml:"global"`
	Repository map[string]*rawGlobal `toml:"repository"`
	Cache      *rawCache             `toml:"cache"`
	GC         *rawGC                `toml:"gc"`
	Tracing    *rawTracing           `toml:"tracing"`
	Admin      *rawAdmin             `toml:"admin"`
}

// known lists every key berth accepts, for "did you mean" hints.
var known = []string{
	"server", "server.bind_address", "server.port", "server.read_header_timeout",
	"server.idle_timeout", "server.shutdown_timeout", "server.trusted_proxies", "server.tls",
	"server.tls.server_certificate_bundle", "server.tls.server_private_key",
	"blob_store", "blob_store.fs", "blob_store.fs.root_dir",
	"limits", "limits.max_manifest_size", "limits.max_blob_size",
	"manifests", "manifests.allow_sparse",
	"uploads", "uploads.expiry", "uploads.purge_interval",
	"log", "log.level", "log.format",
	"metrics", "metrics.enabled", "metrics.address",
	"ui", "ui.enabled", "ui.name",
}

// Parse decodes a TOML document (name is used in messages, usually the file
// path), applies defaults for absent keys and validates the result. Any
// problem — a syntax error, unknown keys, values of the wrong type, invalid
// values — makes it return nil and an *Errors listing every problem found,
// each with its key path and line.
func Parse(data []byte, name string) (*Config, error) {
	return parse(data, name, nil)
}

// parse is Parse; note, when not nil, is told of every key the decoder
// looks at (schema.go).
func parse(data []byte, name string, note noteFunc) (*Config, error) {
	errs := &Errors{File: name}

	// A generic pass first: it catches syntax errors and finds tables given
	// as values, whatever shape they have.
	var doc map[string]any
	if err := toml.Unmarshal(data, &doc); err != nil {
		addDecodeError(errs, nil, err)
		return nil, errs.err()
	}
	lines := indexLines(data)

	// A table given as a value (server = 5) would stop the strict decoder at
	// the first one; report each here and decode the rest without them.
	src := data
	if pruneNonTables(errs, lines, doc, nil) {
		var err error
		if src, err = toml.Marshal(doc); err != nil {
			errs.add("", 0, "%v", err)
			return nil, errs.err()
		}
	}
	var f file
	dec := toml.NewDecoder(bytes.NewReader(src)).DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		addDecodeError(errs, lines, err)
	}

	c := Default()
	c.file, c.lines = name, lines
	c.typeErr = map[string]bool{}
	d := &decoder{errs: errs, lines: lines, typeErr: c.typeErr, note: note}
	if s := f.Server; s != nil {
		d.str("server.bind_address", s.BindAddress, &c.Server.BindAddress)
		d.integer("server.port", s.Port, &c.Server.Port)
		d.duration("server.read_header_timeout", s.ReadHeaderTimeout, &c.Server.ReadHeaderTimeout)
		d.duration("server.idle_timeout", s.IdleTimeout, &c.Server.IdleTimeout)
		d.duration("server.shutdown_timeout", s.ShutdownTimeout, &c.Server.ShutdownTimeout)
		var proxies []string
		d.strList("server.trusted_proxies", s.TrustedProxies, &proxies)
		for _, p := range proxies {
			pfx, err := parsePrefix(p)
			if err != nil {
				d.bad("server.trusted_proxies", "%q is not an IP address or CIDR", p)
				continue
			}
			c.Server.TrustedProxies = append(c.Server.TrustedProxies, pfx)
		}
		if t := s.TLS; t != nil {
			c.Server.TLS = &TLS{}
			d.str("server.tls.server_certificate_bundle", t.CertificateBundle, &c.Server.TLS.CertificateBundle)
			d.str("server.tls.server_private_key", t.PrivateKey, &c.Server.TLS.PrivateKey)
		}
	}
	if b := f.BlobStore; b != nil && b.FS != nil {
		d.str("blob_store.fs.root_dir", b.FS.RootDir, &c.BlobStore.FS.RootDir)
	}
	if b := f.BlobStore; b != nil {
		d.decodeS3(b.S3, c)
	}
	if l := f.Limits; l != nil {
		d.size("limits.max_manifest_size", l.MaxManifestSize, &c.Limits.MaxManifestSize)
		d.size("limits.max_blob_size", l.MaxBlobSize, &c.Limits.MaxBlobSize)
	}
	if m := f.Manifests; m != nil {
		d.boolean("manifests.allow_sparse", m.AllowSparse, &c.Manifests.AllowSparse)
	}
	if u := f.Uploads; u != nil {
		d.duration("uploads.expiry", u.Expiry, &c.Uploads.Expiry)
		d.duration("uploads.purge_interval", u.PurgeInterval, &c.Uploads.PurgeInterval)
	}
	if l := f.Log; l != nil {
		d.str("log.level", l.Level, &c.Log.Level)
		d.str("log.format", l.Format, &c.Log.Format)
	}
	if m := f.Metrics; m != nil {
		d.boolean("metrics.enabled", m.Enabled, &c.Metrics.Enabled)
		d.str("metrics.address", m.Address, &c.Metrics.Address)
	}
	if u := f.UI; u != nil {
		d.boolean("ui.enabled", u.Enabled, &c.UI.Enabled)
		d.str("ui.name", u.Name, &c.UI.Name)
	}
	d.decodeCache(f.Cache, c)
	d.decodeGC(f.GC, c)
	d.decodeTracing(f.Tracing, f.Admin, c)
	d.decodeAuth(f.Auth, c)
	var g *rawGlobal
	if f.Global != nil {
		g = &rawGlobal{AccessPolicy: f.Global.AccessPolicy, ImmutableTags: f.Global.ImmutableTags,
			ImmutableTagsExclusions: f.Global.ImmutableTagsExclusions}
		d.decodeAngosGlobal(&f, c)
	}
	d.decodePolicies(g, f.Repository, c)

	// Validate only the keys that decoded: a key with the wrong type already
	// has its problem and keeps its (valid) default.
	c.validate(errs)
	if err := errs.err(); err != nil {
		return nil, err
	}
	return c, nil
}

// tables are the known keys whose value must be a table.
var tables = map[string][]string{
	"":           {"server", "blob_store", "limits", "manifests", "uploads", "log", "metrics", "ui", "auth", "global", "repository", "cache", "gc", "tracing", "admin"},
	"cache":      {"redis"},
	"global":     {"access_policy"},
	"auth":       {"token", "oidc", "identity", "rate_limit"},
	"server":     {"tls"},
	"blob_store": {"fs", "s3"},
}

// pruneNonTables reports and deletes known tables that are given another type
// of value, and returns whether it deleted any.
func pruneNonTables(errs *Errors, lines lineIndex, doc map[string]any, path []string) bool {
	pruned := false
	for _, name := range tables[strings.Join(path, ".")] {
		v, ok := doc[name]
		if !ok {
			continue
		}
		p := append(append([]string(nil), path...), name)
		if m, isTable := v.(map[string]any); isTable {
			pruned = pruneNonTables(errs, lines, m, p) || pruned
			continue
		}
		key := formatKey(p)
		errs.add(key, lines.line(key), "must be a table, got %s", describe(v))
		delete(doc, name)
		pruned = true
	}
	return pruned
}

// addDecodeError turns go-toml errors into problems with key paths and lines.
// When lines is not nil, keys are located in the original document (the
// decoded one may be a re-encoded copy).
func addDecodeError(errs *Errors, lines lineIndex, err error) {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		for i := range strict.Errors {
			e := &strict.Errors[i]
			line, _ := e.Position()
			key := formatKey(e.Key())
			if lines != nil {
				key, line = lines.locate(e.Key(), line)
			}
			what := "key"
			if strings.HasSuffix(e.Error(), "missing table") {
				what = "table"
			}
			errs.add(key, line, "%s", unknownKeyMessage(what, key))
		}
		return
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		line, _ := de.Position()
		key := formatKey(de.Key())
		if lines != nil {
			key, line = lines.locate(de.Key(), line)
		}
		errs.add(key, line, "%s", strings.TrimPrefix(de.Error(), "toml: "))
		return
	}
	errs.add("", 0, "%s", strings.TrimPrefix(err.Error(), "toml: "))
}

func unknownKeyMessage(what, key string) string {
	best, bestDist := "", 3 // suggest only close matches
	for _, k := range slices.Concat(known, s3Known, cacheKnown, authKnown, policyKnown, gcKnown, tracingKnown, angosKnown) {
		if d := editDistance(key, k); d < bestDist {
			best, bestDist = k, d
		}
	}
	// Keys inside a named table ([auth.oidc.<name>], [auth.identity.<id>],
	// [repository."<key>"]): compare the part after the name.
	for prefix, leaves := range namedTableKeys {
		rest, ok := strings.CutPrefix(key, prefix)
		if !ok || best != "" {
			continue
		}
		_, leaf, found := cutName(rest)
		if !found {
			continue
		}
		for _, l := range leaves {
			if d := editDistance(leaf, l); d < bestDist {
				best, bestDist = strings.TrimSuffix(key, leaf)+l, d
			}
		}
	}
	if best != "" {
		return fmt.Sprintf("unknown %s (did you mean %s?)", what, best)
	}
	return "unknown " + what
}

// namedTableKeys lists the keys of tables whose name the user chooses.
var namedTableKeys = map[string][]string{
	"auth.oidc.": {"provider", "issuer", "jwks_uri", "audiences", "algorithms", "clock_skew", "max_token_age",
		"certificate_authority", "certificate_authority_file", "jwks_refresh_interval", "required_claims",
		"token_ttl", "token_max_ttl", "token_max_uses", "token_trusted_ips", "claim_mapping",
		"required_audience", "clock_skew_tolerance", "allowed_algorithms",
		"claim_mapping.variables", "claim_mapping.validations", "claim_mapping.username", "claim_mapping.groups"},
	"auth.identity.": {"username", "password"},
	"repository.":    {"access_policy", "access_policy.default_allow", "access_policy.default", "access_policy.rules", "immutable_tags", "immutable_tags_exclusions"},
}

// cutName splits `name.rest` or `"quoted.name".rest` after the table name.
func cutName(s string) (name, rest string, ok bool) {
	if strings.HasPrefix(s, `"`) {
		end := strings.Index(s[1:], `"`)
		if end < 0 || len(s) < end+3 || s[end+2] != '.' {
			return "", "", false
		}
		return s[:end+2], s[end+3:], true
	}
	return strings.Cut(s, ".")
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// decoder converts the loosely typed leaves of file into Config fields,
// recording a problem for each value of the wrong type.
type decoder struct {
	errs    *Errors
	lines   lineIndex
	typeErr map[string]bool
	note    noteFunc // nil except when schema.go probes the decoder
}

// seen tells d.note, if any, that key is decoded as kind, whose value
// before decoding (the default) is def.
func (d *decoder) seen(key string, kind valueKind, def any) {
	if d.note != nil {
		d.note(key, kind, def)
	}
}

func (d *decoder) bad(key, format string, args ...any) {
	d.typeErr[key] = true
	d.errs.add(key, d.lines.line(key), format, args...)
}

func (d *decoder) str(key string, v any, dst *string) {
	d.seen(key, kindString, *dst)
	switch v := v.(type) {
	case nil:
	case string:
		*dst = v
	default:
		d.bad(key, "must be a string, got %s", describe(v))
	}
}

func (d *decoder) boolean(key string, v any, dst *bool) {
	d.seen(key, kindBool, *dst)
	switch v := v.(type) {
	case nil:
	case bool:
		*dst = v
	default:
		d.bad(key, "must be true or false, got %s", describe(v))
	}
}

func (d *decoder) integer(key string, v any, dst *int) {
	d.seen(key, kindInt, *dst)
	switch v := v.(type) {
	case nil:
	case int64:
		if v < math.MinInt32 || v > math.MaxInt32 {
			d.bad(key, "%d is out of range", v)
			return
		}
		*dst = int(v)
	default:
		d.bad(key, "must be an integer, got %s", describe(v))
	}
}

func (d *decoder) duration(key string, v any, dst *time.Duration) {
	d.seen(key, kindDuration, *dst)
	switch v := v.(type) {
	case nil:
	case string:
		t, err := time.ParseDuration(v)
		if err != nil {
			d.bad(key, "%q is not a duration (use a Go duration such as \"30s\", \"10m\" or \"24h\")", v)
			return
		}
		*dst = t
	default:
		d.bad(key, "must be a duration string such as \"30s\", got %s", describe(v))
	}
}

// alias reports whether the value of a key under Angos's name (aliasKey,
// aliasVal) is to be decoded in place of berth's (key, val): when it is set
// and berth's is not. Both set is a problem naming both.
func (d *decoder) alias(key string, val any, aliasKey string, aliasVal any) bool {
	switch {
	case aliasVal == nil:
		return false
	case val != nil:
		d.bad(aliasKey, "is Angos's name for %s: set one of them, not both", key)
		return false
	}
	return true
}

// seconds decodes a duration given as a Go duration string or, as Angos
// writes it, an integer number of seconds.
func (d *decoder) seconds(key string, v any, dst *time.Duration) {
	d.seen(key, kindSeconds, *dst)
	n, ok := v.(int64)
	if !ok {
		d.duration(key, v, dst)
		return
	}
	if n < 0 || n > math.MaxInt64/int64(time.Second) {
		d.bad(key, "%d seconds is out of range", n)
		return
	}
	*dst = time.Duration(n) * time.Second
}

// keyAsWritten is aliasKey when the document sets a value under Angos's name
// aliasKey rather than berth's key, key otherwise: problems with the value
// name the key the user wrote.
func (c *Config) keyAsWritten(key, aliasKey string) string {
	if c.lines.has(aliasKey) && !c.lines.has(key) {
		return aliasKey
	}
	return key
}

func (d *decoder) size(key string, v any, dst *int64) {
	d.seen(key, kindSize, *dst)
	switch v := v.(type) {
	case nil:
	case int64:
		if v < 0 {
			d.bad(key, "must not be negative, got %d", v)
			return
		}
		*dst = v
	case string:
		n, err := ParseSize(v)
		if err != nil {
			d.bad(key, "%v", err)
			return
		}
		*dst = n
	default:
		d.bad(key, "must be a number of bytes or a size string such as \"4MiB\", got %s", describe(v))
	}
}

func describe(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("string %q", v)
	case int64:
		return fmt.Sprintf("integer %d", v)
	case float64:
		return fmt.Sprintf("float %v", v)
	case bool:
		return fmt.Sprintf("boolean %t", v)
	case map[string]any:
		return "a table"
	}
	switch reflect.ValueOf(v).Kind() {
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map:
		return "a table"
	}
	return "a date/time"
}

// sizeUnits are the units ParseSize accepts, decimal and binary.
var sizeUnits = map[string]int64{
	"B":   1,
	"KB":  1000,
	"KiB": 1 << 10,
	"MB":  1000 * 1000,
	"MiB": 1 << 20,
	"GB":  1000 * 1000 * 1000,
	"GiB": 1 << 30,
	"TB":  1000 * 1000 * 1000 * 1000,
	"TiB": 1 << 40,
}

// ParseSize parses a byte size: a whole number with an optional unit among
// B, KB, KiB, MB, MiB, GB, GiB, TB, TiB ("4MiB", "512 KB", "1048576").
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	num, unit := t[:i], strings.TrimSpace(t[i:])
	mult := int64(1)
	if unit != "" {
		m, ok := sizeUnits[unit]
		if !ok {
			return 0, fmt.Errorf("%q is not a size (use a whole number with an optional unit: B, KB, KiB, MB, MiB, GB, GiB, TB, TiB)", s)
		}
		mult = m
	}
	if num == "" {
		return 0, fmt.Errorf("%q is not a size (use a whole number with an optional unit: B, KB, KiB, MB, MiB, GB, GiB, TB, TiB)", s)
	}
	var n int64
	for _, c := range num {
		if n > (math.MaxInt64-int64(c-'0'))/10 {
			return 0, fmt.Errorf("%q is too large", s)
		}
		n = n*10 + int64(c-'0')
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n * mult, nil
}
