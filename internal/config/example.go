package config

import (
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// reference holds the key rows of docs/configuration.md: for each table as
// the reference heads it ("server.tls", "auth.oidc.<name>"), its keys' rows.
type reference map[string]map[string]refRow

// refRow is one "| `key` | type | default | meaning |" row, markdown removed.
type refRow struct {
	typ, def, meaning string
}

func (r reference) row(n *keyNode) (refRow, bool) {
	row, ok := r[n.docTable()][n.name]
	return row, ok
}

// parseReference reads the tables of the reference: a heading naming
// "`[table]`" starts a table's section, up to the next heading, and each row
// starting with "| `key` |" in it describes a key (TestEveryKeyDocumented
// checks every key has one).
func parseReference(doc []byte) reference {
	out := reference{}
	var cur map[string]refRow
	inCode := false
	for _, line := range strings.Split(string(doc), "\n") {
		if strings.HasPrefix(line, "```") {
			inCode = !inCode
			continue
		}
		if inCode {
			continue
		}
		if strings.HasPrefix(line, "#") {
			cur = nil
			if _, rest, ok := strings.Cut(line, "`["); ok {
				if name, _, ok := strings.Cut(rest, "]`"); ok {
					cur = map[string]refRow{}
					out[name] = cur
				}
			}
			continue
		}
		if cur == nil || !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := splitRow(line)
		if len(cells) < 4 {
			continue
		}
		key := strings.Trim(cells[0], "`")
		cur[key] = refRow{typ: plain(cells[1]), def: plain(cells[2]), meaning: plain(strings.Join(cells[3:], " | "))}
	}
	return out
}

// splitRow splits a markdown table row into its trimmed cells; a | inside
// backticks does not split.
func splitRow(line string) []string {
	line = strings.TrimSpace(line)
	line = strings.TrimPrefix(strings.TrimSuffix(line, "|"), "|")
	var cells []string
	var b strings.Builder
	code := false
	for _, r := range line {
		switch {
		case r == '`':
			code = !code
		case r == '|' && !code:
			cells = append(cells, strings.TrimSpace(b.String()))
			b.Reset()
			continue
		}
		b.WriteRune(r)
	}
	return append(cells, strings.TrimSpace(b.String()))
}

var (
	mdLink   = regexp.MustCompile(`\[([^\]]*)\]\([^)]*\)`)
	mdStrong = regexp.MustCompile(`\*\*([^*]*)\*\*`)
)

// plain removes the markdown of a cell: links keep their text, emphasis
// and backticks go.
func plain(s string) string {
	s = mdLink.ReplaceAllString(s, "$1")
	s = mdStrong.ReplaceAllString(s, "$1")
	s = strings.ReplaceAll(s, "`", "")
	s = strings.ReplaceAll(s, `\|`, "|")
	return strings.TrimSpace(s)
}

// firstSentence is s up to its first ". " (or all of s).
func firstSentence(s string) string {
	for i := 0; i+1 < len(s); i++ {
		if s[i] == '.' && s[i+1] == ' ' && !strings.HasSuffix(s[:i], "e.g") && !strings.HasSuffix(s[:i], "i.e") {
			return s[:i+1]
		}
	}
	return s
}

// Example returns a configuration file with every key berth knows, set to
// its default, each after a one-line comment from reference
// (docs/configuration.md). Tables that change the configuration by their
// mere presence ([server.tls], [blob_store.s3], [cache.redis], OIDC
// providers, static users, access policies, repositories) and Angos's alias
// keys are commented out: uncomment what you need. As printed, the file
// loads as the defaults.
func Example(referenceDoc []byte) []byte {
	root := keyTree()
	ref := parseReference(referenceDoc)
	var b strings.Builder
	b.WriteString(`# berth configuration: every key with its default (berth config example).
# Reference: docs/configuration.md. Lines starting with "#" and no space are
# settings or tables you can uncomment; as printed, this file is the defaults.
# For editors: berth config schema > berth.schema.json, then put
# "#:schema ./berth.schema.json" on the first line.
`)
	for _, c := range root.children {
		writeExample(&b, c, ref, false)
	}
	return []byte(b.String())
}

func writeExample(b *strings.Builder, n *keyNode, ref reference, commented bool) {
	if n.named {
		writeExample(b, n.children[0], ref, true)
		return
	}
	commented = commented || n.optional
	var leaves, tables []*keyNode
	for _, c := range n.children {
		if c.leaf() || c.array {
			leaves = append(leaves, c)
		} else {
			tables = append(tables, c)
		}
	}
	if len(leaves) > 0 {
		b.WriteString("\n")
		if commented {
			b.WriteString("#")
		}
		b.WriteString("[" + formatKey(n.path) + "]\n")
		for _, c := range leaves {
			writeKey(b, c, ref, commented || c.conditional)
		}
	}
	for _, c := range tables {
		writeExample(b, c, ref, commented)
	}
}

func writeKey(b *strings.Builder, n *keyNode, ref reference, commented bool) {
	value := "[]" // arrays of tables
	if !n.array {
		var def any
		if !n.conditional {
			def = n.def
		}
		value = tomlValue(n.kind, def)
	}
	if row, ok := ref.row(n); ok {
		for _, l := range wrap(firstSentence(row.meaning), 98) {
			b.WriteString("# " + l + "\n")
		}
		if d := row.def; d != "" && d != "—" && !sameDefault(n.kind, d, value) {
			for _, l := range wrap("Default: "+d, 98) {
				b.WriteString("# " + l + "\n")
			}
		}
	}
	if commented {
		b.WriteString("#")
	}
	b.WriteString(n.name + " = " + value + "\n")
}

// tomlValue writes a default (the zero value of its kind when def is nil)
// as TOML.
func tomlValue(kind valueKind, def any) string {
	switch v := jsonValue(kind, def).(type) {
	case nil:
		switch kind {
		case kindBool:
			return "false"
		case kindInt, kindSize, kindSeconds, kindFloat:
			return "0"
		}
		return `""`
	case string:
		return tomlString(v)
	case []string:
		q := make([]string, len(v))
		for i, s := range v {
			q[i] = tomlString(s)
		}
		return "[" + strings.Join(q, ", ") + "]"
	default:
		return fmt.Sprint(v)
	}
}

// tomlString writes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// sameDefault reports whether the reference's default cell is a TOML value
// meaning the same as value, the default the example prints for a key of
// kind: then the example does not repeat it.
func sameDefault(kind valueKind, cell, value string) bool {
	var a, b map[string]any
	if toml.Unmarshal([]byte("v = "+cell), &a) != nil || toml.Unmarshal([]byte("v = "+value), &b) != nil {
		return false
	}
	x, y := a["v"], b["v"]
	switch kind {
	case kindDuration, kindSeconds:
		xs, _ := x.(string)
		ys, _ := y.(string)
		dx, err1 := time.ParseDuration(xs)
		dy, err2 := time.ParseDuration(ys)
		return err1 == nil && err2 == nil && dx == dy
	case kindSize:
		return sizeOf(x) == sizeOf(y) && sizeOf(x) >= 0
	}
	return reflect.DeepEqual(x, y)
}

func sizeOf(v any) int64 {
	switch v := v.(type) {
	case int64:
		return v
	case string:
		if n, err := ParseSize(v); err == nil {
			return n
		}
	}
	return -1
}

// wrap splits s into lines of at most width bytes, at spaces.
func wrap(s string, width int) []string {
	var lines []string
	for len(s) > width {
		i := strings.LastIndexByte(s[:width], ' ')
		if i <= 0 {
			break
		}
		lines = append(lines, s[:i])
		s = s[i+1:]
	}
	return append(lines, s)
}
