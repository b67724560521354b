package config

import (
	"encoding/json"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"
)

func referenceDoc(t *testing.T) []byte {
	t.Helper()
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// docKeys are the paths of every key the strict decoder accepts, walked from
// file's toml tags by docs_test.go's walker (independent of schema.go's),
// with the named tables' placeholders.
func docKeys(t *testing.T) []string {
	var keys [][]string
	walkKeys(reflect.TypeFor[file](), nil, &keys)
	if len(keys) < 50 {
		t.Fatalf("found only %d keys: the walk is broken", len(keys))
	}
	var out []string
	for _, k := range keys {
		out = append(out, strings.Join(k, "."))
	}
	slices.Sort(out)
	return out
}

// schemaLeaves walks a JSON Schema the way a validator does (properties,
// additionalProperties of named tables, items of arrays of tables) and
// returns the path of every key that is not a table, with the placeholders
// of the reference for the named tables, and the schema of each.
func schemaLeaves(t *testing.T, s map[string]any, path []string, out map[string]map[string]any) {
	props, _ := s["properties"].(map[string]any)
	if props == nil {
		t.Fatalf("%s: a table without properties", strings.Join(path, "."))
	}
	if s["additionalProperties"] != false {
		t.Errorf("%s: additionalProperties is %v, want false: the decoder is strict", strings.Join(path, "."), s["additionalProperties"])
	}
	for name, v := range props {
		p := append(slices.Clone(path), name)
		c := v.(map[string]any)
		switch {
		case c["properties"] != nil:
			schemaLeaves(t, c, p, out)
		case c["type"] == "object":
			entry, ok := c["additionalProperties"].(map[string]any)
			if !ok {
				t.Fatalf("%s: a named table without an entry schema", strings.Join(p, "."))
			}
			schemaLeaves(t, entry, append(p, namedTablePlaceholders[strings.Join(p, ".")]), out)
		default:
			out[strings.Join(p, ".")] = c
		}
	}
}

// TestSchemaCoversEveryKey: the schema has exactly the keys the strict
// decoder knows, each with a type (the decoder was seen reading it), and
// rejects unknown keys in every table.
func TestSchemaCoversEveryKey(t *testing.T) {
	data, err := Schema(referenceDoc(t))
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	if s["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
		t.Errorf("$schema %v", s["$schema"])
	}
	leaves := map[string]map[string]any{}
	schemaLeaves(t, s, nil, leaves)
	var got []string
	for k, v := range leaves {
		got = append(got, k)
		if v["type"] == nil && v["anyOf"] == nil {
			t.Errorf("%s: no type: the probes never saw the decoder read it (%v)", k, v)
		}
		if v["description"] == nil {
			t.Errorf("%s: no description from docs/configuration.md", k)
		}
	}
	slices.Sort(got)
	if want := docKeys(t); !slices.Equal(got, want) {
		t.Errorf("schema keys:\n%s\nwant the decoder's:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// A few types and defaults, as the decoder reads them.
	for key, want := range map[string]string{
		"server.port":                              `"maximum":2147483647,"minimum":-2147483648,"type":"integer"`,
		"server.read_header_timeout":               `"pattern"`,
		"limits.max_manifest_size":                 `"default":"4MiB"`,
		"auth.oidc.<name>.jwks_refresh_interval":   `"default":"1h"`,
		"auth.oidc.<name>.clock_skew_tolerance":    `{"minimum":0,"type":"integer"}`,
		"auth.oidc.<name>.algorithms":              `"items":{"enum":["ES256",`,
		"auth.oidc.<name>.claim_mapping.variables": `"items":{"additionalProperties":false,"properties":{"expression":{"default":"","type":"string"},"name":`,
		"log.level":                          `"enum":["debug","info","warn","error"]`,
		"cache.redis.key_prefix":             `"default":"berth:"`,
		"auth.oidc.<name>.required_audience": `"type":"string"`,
	} {
		b, _ := json.Marshal(leaves[key])
		if !strings.Contains(string(b), want) {
			t.Errorf("%s: %s lacks %s", key, b, want)
		}
	}
	if b, _ := json.Marshal(leaves["auth.oidc.<name>.required_audience"]); strings.Contains(string(b), `"default"`) {
		t.Errorf("an alias has no default of its own: %s", b)
	}
}

// TestSchemaEnums: the schema's fixed sets are the ones validation accepts:
// every member loads, a non-member is a problem at that key.
func TestSchemaEnums(t *testing.T) {
	for path, values := range enums() {
		keyPath := strings.ReplaceAll(strings.ReplaceAll(path, "<name>", "x"), `"<key>"`, "x")
		i := strings.LastIndexByte(keyPath, '.')
		table, leaf := keyPath[:i], keyPath[i+1:]
		isList := slices.Contains([]string{"algorithms", "allowed_algorithms"}, leaf)
		doc := func(v string) string {
			val := tomlString(v)
			if isList {
				val = "[" + val + "]"
			}
			return "[" + table + "]\n" + leaf + " = " + val + "\n"
		}
		problemAt := func(v string) bool {
			_, err := Parse([]byte(doc(v)), "c.toml")
			for _, p := range problems(t, err) {
				if p.Key == keyPath {
					return true
				}
			}
			return false
		}
		for _, v := range values {
			if problemAt(v) {
				t.Errorf("%s: %q is in the schema's enum but refused", path, v)
			}
		}
		if !problemAt("not-a-member") {
			t.Errorf("%s: a value outside the schema's enum is accepted", path)
		}
	}
}

// TestSchemaPatterns: the duration and size patterns accept what the decoder
// accepts.
func TestSchemaPatterns(t *testing.T) {
	dur := regexp.MustCompile(durationPattern)
	for _, s := range []string{"0", "0s", "10s", "1h30m", "1.5h", "-1s", "+2m", "100ms", "3µs", "3us", ".5s", "1h0m0s", "", "s", "10", "1d", "1 h", "1h 30m", "x"} {
		_, err := time.ParseDuration(s)
		if dur.MatchString(s) != (err == nil) {
			t.Errorf("duration %q: pattern %v, time.ParseDuration error %v", s, dur.MatchString(s), err)
		}
	}
	size := regexp.MustCompile(sizePattern())
	for _, s := range []string{"4MiB", "512 KB", "1048576", " 1 B ", "0", "1TiB", "1.5MiB", "4mib", "MiB", "", "-1", "4 MiBs"} {
		_, err := ParseSize(s)
		if size.MatchString(s) != (err == nil) {
			t.Errorf("size %q: pattern %v, ParseSize error %v", s, size.MatchString(s), err)
		}
	}
}

// TestExampleIsTheDefaults: the example loads, strictly, as the defaults.
func TestExampleIsTheDefaults(t *testing.T) {
	ex := Example(referenceDoc(t))
	c, err := Parse(ex, "example.toml")
	if err != nil {
		t.Fatalf("the example does not load:\n%v\n%s", err, ex)
	}
	got, want := withoutSource(c), withoutSource(Default())
	nilEmpty(reflect.ValueOf(&got).Elem())
	if !reflect.DeepEqual(got, want) {
		t.Errorf("the example loads as\n%+v\nwant the defaults\n%+v", got, want)
	}
}

// nilEmpty makes the empty slices under v nil: the example writes lists as [].
func nilEmpty(v reflect.Value) {
	switch v.Kind() {
	case reflect.Slice:
		if v.Len() == 0 && v.CanSet() {
			v.Set(reflect.Zero(v.Type()))
		}
		for i := range v.Len() {
			nilEmpty(v.Index(i))
		}
	case reflect.Pointer:
		if !v.IsNil() {
			nilEmpty(v.Elem())
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Field(i).CanSet() {
				nilEmpty(v.Field(i))
			}
		}
	}
}

// TestExampleHasEveryKey: every key the decoder knows is in the example, set
// or commented out, after a comment line; uncommented, every line is a key
// the decoder knows.
func TestExampleHasEveryKey(t *testing.T) {
	ex := string(Example(referenceDoc(t)))
	lines := strings.Split(ex, "\n")
	var uncommented []string
	for i, l := range lines {
		if strings.HasPrefix(l, "#[") || (strings.HasPrefix(l, "#") && !strings.HasPrefix(l, "# ") && l != "#") {
			l = l[1:]
		}
		if !strings.HasPrefix(l, "#") && strings.Contains(l, " = ") && (i == 0 || !strings.HasPrefix(lines[i-1], "# ")) {
			t.Errorf("line %d %q has no comment line before it", i+1, l)
		}
		uncommented = append(uncommented, l)
	}
	var doc map[string]any
	if err := toml.Unmarshal([]byte(strings.Join(uncommented, "\n")), &doc); err != nil {
		t.Fatalf("uncommented, the example is not TOML: %v", err)
	}
	var got []string
	var walk func(m map[string]any, path []string)
	walk = func(m map[string]any, path []string) {
		for k, v := range m {
			p := append(slices.Clone(path), k)
			if ph, ok := namedTablePlaceholders[strings.Join(path, ".")]; ok && k == probeName {
				p[len(p)-1] = ph
			}
			if sub, ok := v.(map[string]any); ok {
				walk(sub, p)
				continue
			}
			got = append(got, strings.Join(p, "."))
		}
	}
	walk(doc, nil)
	slices.Sort(got)
	if want := docKeys(t); !slices.Equal(got, want) {
		t.Errorf("example keys:\n%s\nwant the decoder's:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestEffectiveLogLevel(t *testing.T) {
	for _, tc := range []struct{ file, env, want string }{
		{"info", "", "INFO"},
		{"warn", "debug", "DEBUG"},
		{"debug", "ERROR", "ERROR"},
		{"error", " warn ", "WARN"},
	} {
		got, err := Log{Level: tc.file}.EffectiveLogLevel(tc.env)
		if err != nil || got.String() != tc.want {
			t.Errorf("[log] level %q, %s=%q: %v, %v; want %s", tc.file, LogLevelEnv, tc.env, got, err, tc.want)
		}
	}
	_, err := Log{Level: "info"}.EffectiveLogLevel("verbose")
	if err == nil || err.Error() != `BERTH_LOG_LEVEL="verbose" is not one of debug, info, warn, error` {
		t.Errorf("error %v", err)
	}
}
