package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// The key tree below is what `berth config schema` and `berth config
// example` print. It is not a list kept by hand: the tables and keys are the
// toml tags of file (the strict decoder's own definition), and each key's
// type and default are what the decoder does with it, learnt by running the
// decoder (parse) on probe documents and noting which of its value readers
// (decoder.str, .duration, .size, ...) it calls for the key and what the
// destination held before. A key added to file and decoded with those
// readers appears in both outputs with its type and default.

// valueKind is how the decoder reads a key's value.
type valueKind int

const (
	kindString   valueKind = iota + 1 // decoder.str
	kindBool                          // decoder.boolean
	kindInt                           // decoder.integer (32-bit range)
	kindDuration                      // decoder.duration: a Go duration string
	kindSeconds                       // decoder.seconds: a duration string or integer seconds (Angos)
	kindSize                          // decoder.size: bytes, or a string with a unit
	kindStrings                       // decoder.strList
	kindFloat                         // decoder.number: a float or an integer
)

// noteFunc is told of every key the decoder reads: its formatted path, how
// it reads it, and the destination's value before (the default).
type noteFunc func(key string, kind valueKind, def any)

// Placeholder names of the tables whose names the user chooses, as the
// reference (docs/configuration.md) writes them, by their path; and the
// name the probes and the example give such a table.
var namedTablePlaceholders = map[string]string{
	"auth.oidc": "<name>", "auth.identity": "<id>", "repository": `"<key>"`,
}

const probeName = "example"

// keyNode is a table or a key of the configuration.
type keyNode struct {
	name     string   // the TOML key (a placeholder for a named table's entry)
	path     []string // the path with probeName for named tables
	docPath  []string // the path with placeholders, as the reference writes it
	key      string   // the decoder's name for it: formatted path, "[0]" for array elements
	children []*keyNode

	table bool // a table (struct or named-table entry)
	named bool // a table of tables whose names the user chooses
	array bool // an array of tables (claim_mapping.variables)

	kind        valueKind // leaves: 0 when the decoder never read it in the probes
	def         any       // leaves: the default, when not conditional
	conditional bool      // leaves decoded only when set (Angos's aliases, ...)
	optional    bool      // tables whose mere presence changes the configuration or needs keys
}

func (n *keyNode) leaf() bool { return !n.table && !n.named && !n.array }

// docTable is the reference's name of the node's table: its docPath without
// the last part, joined with dots.
func (n *keyNode) docTable() string { return strings.Join(n.docPath[:len(n.docPath)-1], ".") }

// keyTree builds the tree of every table and key the strict decoder knows,
// with each key's kind and default.
func keyTree() *keyNode {
	root := &keyNode{table: true}
	buildTree(root, reflect.TypeFor[file]())
	probeKinds(root)
	probeOptional(root)
	return root
}

func buildTree(n *keyNode, t reflect.Type) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if name == "" || name == "-" {
			continue
		}
		c := &keyNode{
			name:    name,
			path:    append(slices.Clone(n.path), name),
			docPath: append(slices.Clone(n.docPath), name),
		}
		if n.array {
			c.key = n.key + "[0]." + formatKey([]string{name})
		} else {
			c.key = formatKey(c.path)
		}
		n.children = append(n.children, c)
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch {
		case ft.Kind() == reflect.Struct:
			c.table = true
			buildTree(c, ft)
		case ft.Kind() == reflect.Map && ft.Elem().Kind() != reflect.Interface:
			c.named = true
			e := &keyNode{
				name:     namedTablePlaceholders[strings.Join(c.docPath, ".")],
				path:     append(slices.Clone(c.path), probeName),
				table:    true,
				optional: true,
			}
			e.docPath = append(slices.Clone(c.docPath), e.name)
			e.key = formatKey(e.path)
			c.children = []*keyNode{e}
			buildTree(e, ft.Elem())
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			c.array = true
			buildTree(c, ft.Elem())
		}
	}
}

// walk calls fn for n and every node below it, parents first.
func (n *keyNode) walk(fn func(*keyNode)) {
	fn(n)
	for _, c := range n.children {
		c.walk(fn)
	}
}

// skeleton is a document with every table of the tree present and no key
// set; set, when not nil, is set to v.
func (n *keyNode) skeleton(set *keyNode, v any) map[string]any {
	out := map[string]any{}
	for _, c := range n.children {
		switch {
		case c.named:
			out[c.name] = map[string]any{probeName: c.children[0].skeleton(set, v)}
		case c.table:
			out[c.name] = c.skeleton(set, v)
		case c.array:
			out[c.name] = []any{c.skeleton(set, v)}
		case c == set:
			out[c.name] = v
		}
	}
	return out
}

// probeKinds learns each key's kind and default from the decoder: once with
// every table present and no key set (the decoder reads every key it always
// reads, keeping the default), then, for each key not read, with that key set
// (the decoder reads Angos's aliases, and a repository's immutable_tags, only
// when they are set).
func probeKinds(root *keyNode) {
	byKey := map[string]*keyNode{}
	root.walk(func(n *keyNode) {
		if n.leaf() {
			byKey[n.key] = n
		}
	})
	run := func(doc map[string]any, conditional bool) {
		data, err := toml.Marshal(doc)
		if err != nil {
			panic(fmt.Sprintf("config: probe document: %v", err)) // maps of strings: cannot fail
		}
		_, _ = parse(data, "probe", func(key string, kind valueKind, def any) {
			n := byKey[key]
			if n == nil || n.kind != 0 {
				return // the first reader wins: seconds calls duration
			}
			n.kind, n.conditional = kind, conditional
			if !conditional {
				n.def = def
			}
		})
	}
	run(root.skeleton(nil, nil), false)
	for _, n := range byKey {
		for _, v := range []any{"x", int64(1), true, []any{"x"}} {
			if n.kind != 0 {
				break
			}
			run(root.skeleton(n, v), true)
		}
	}
}

// probeOptional marks the tables whose presence alone makes a configuration
// different from the defaults or invalid: [server.tls], [blob_store.s3],
// [cache.redis], the access policies, every named table. The example shows
// them commented out.
func probeOptional(root *keyNode) {
	def := withoutSource(Default())
	root.walk(func(n *keyNode) {
		if !n.table || n == root || n.optional {
			return
		}
		doc := "[" + formatKey(n.path) + "]\n"
		c, err := Parse([]byte(doc), "probe")
		n.optional = err != nil || !reflect.DeepEqual(withoutSource(c), def)
	})
}

// withoutSource is c without its source information, to compare by value.
func withoutSource(c *Config) Config {
	v := *c
	v.file, v.lines, v.typeErr = "", nil, nil
	return v
}

// enums are the fixed sets validation accepts for some keys, by their path
// in the reference (TestSchemaEnums checks each against the decoder).
func enums() map[string][]string {
	presets := sortedKeys(providerPresets)
	return map[string][]string{
		"log.level":                                LogLevels(),
		"log.format":                               {"text", "json"},
		"auth.oidc.<name>.provider":                presets,
		"auth.oidc.<name>.algorithms":              OIDCAlgorithms(),
		"auth.oidc.<name>.allowed_algorithms":      OIDCAlgorithms(),
		"global.access_policy.default":             {"allow", "deny"},
		`repository."<key>".access_policy.default`: {"allow", "deny"},
	}
}

// durationPattern matches what time.ParseDuration accepts.
const durationPattern = `^[-+]?(0|(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$`

// sizePattern matches the strings ParseSize accepts.
func sizePattern() string {
	units := sortedKeys(sizeUnits)
	return `^\s*[0-9]+\s*(` + strings.Join(units, "|") + `)?\s*$`
}

// Schema returns a JSON Schema (draft 2020-12) of the configuration file,
// generated from the strict decoder's definitions. reference is
// docs/configuration.md, whose key rows give the descriptions (nil: none).
func Schema(reference []byte) ([]byte, error) {
	root := keyTree()
	ref := parseReference(reference)
	s := object{
		{"$schema", "https://json-schema.org/draft/2020-12/schema"},
		{"title", "berth configuration (berth.toml)"},
		{"description", "Generated by `berth config schema`; reference: docs/configuration.md."},
	}
	s = append(s, tableSchema(root, ref)...)
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func tableSchema(n *keyNode, ref reference) object {
	props := object{}
	for _, c := range n.children {
		props = append(props, member{c.name, nodeSchema(c, ref)})
	}
	return object{{"type", "object"}, {"properties", props}, {"additionalProperties", false}}
}

func nodeSchema(n *keyNode, ref reference) object {
	switch {
	case n.named:
		return object{{"type", "object"}, {"additionalProperties", tableSchema(n.children[0], ref)}}
	case n.table:
		return tableSchema(n, ref)
	case n.array:
		s := object{{"type", "array"}, {"items", tableSchema(n, ref)}}
		if row, ok := ref.row(n); ok {
			s = append(object{{"description", row.meaning}}, s...)
		}
		return s
	}
	var s object
	if row, ok := ref.row(n); ok {
		s = append(s, member{"description", row.meaning})
	}
	enum := enums()[strings.Join(n.docPath, ".")]
	str := object{{"type", "string"}}
	if enum != nil {
		str = append(str, member{"enum", enum})
	}
	duration := object{{"type", "string"}, {"pattern", durationPattern}}
	switch n.kind {
	case kindString:
		s = append(s, str...)
	case kindBool:
		s = append(s, member{"type", "boolean"})
	case kindInt:
		s = append(s, object{{"type", "integer"}, {"minimum", -1 << 31}, {"maximum", 1<<31 - 1}}...)
	case kindDuration:
		s = append(s, duration...)
	case kindSeconds:
		s = append(s, member{"anyOf", []any{duration, object{{"type", "integer"}, {"minimum", 0}}}})
	case kindSize:
		s = append(s, member{"anyOf", []any{
			object{{"type", "integer"}, {"minimum", 0}},
			object{{"type", "string"}, {"pattern", sizePattern()}},
		}})
	case kindStrings:
		s = append(s, object{{"type", "array"}, {"items", str}}...)
	case kindFloat:
		s = append(s, member{"type", "number"})
	}
	if n.kind != 0 && !n.conditional {
		s = append(s, member{"default", jsonValue(n.kind, n.def)})
	}
	return s
}

// jsonValue is a default as the file writes it.
func jsonValue(kind valueKind, v any) any {
	switch kind {
	case kindDuration, kindSeconds:
		d, _ := v.(time.Duration)
		return formatDuration(d)
	case kindSize:
		n, _ := v.(int64)
		if s := formatSize(n); s != "" {
			return s
		}
		return n
	case kindStrings:
		l, _ := v.([]string)
		if l == nil {
			l = []string{}
		}
		return l
	}
	return v
}

// formatDuration writes d as the reference does: "1h", "90s", "1h30m", "0s".
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// formatSize writes a whole number of KiB, MiB, GiB or TiB with its unit,
// or "" for other sizes (written as a number of bytes).
func formatSize(n int64) string {
	for _, u := range []string{"TiB", "GiB", "MiB", "KiB"} {
		if m := sizeUnits[u]; n > 0 && n%m == 0 {
			return fmt.Sprintf("%d%s", n/m, u)
		}
	}
	return ""
}

// object is a JSON object that keeps its members' order.
type object []member

type member struct {
	k string
	v any
}

// MarshalJSON writes the members in order.
func (o object) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(m.k)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(m.v); err != nil {
			return nil, err
		}
		b.Truncate(b.Len() - 1) // Encode's newline
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}
