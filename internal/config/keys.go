package config

import (
	"strings"

	"github.com/berth-registry/berth/internal/tomlkey"

	"github.com/pelletier/go-toml/v2/unstable"
)

// formatKey renders a key path the way a user would write it in TOML.
func formatKey(parts []string) string { return tomlkey.Format(parts...) }

// lineIndex maps formatted key paths to the line where they first appear.
// go-toml reports lines for syntax and strict-mode errors only; this light
// pass over the document gives every other problem (a bad value, a missing
// companion key) a line too.
type lineIndex map[string]int

// indexLines walks the document's expressions. Tables record their header
// line; keys record the line of the key; implicitly created parent tables
// (dotted keys, nested headers) take the line where they are first mentioned.
// A document that does not parse yields what was indexed before the error.
func indexLines(data []byte) lineIndex {
	idx := lineIndex{}
	var p unstable.Parser
	p.Reset(data)
	var table []string
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			table = keyParts(e)
			idx.record(&p, nil, e.Key())
		case unstable.KeyValue:
			idx.keyValue(&p, table, e)
		}
	}
	return idx
}

func (idx lineIndex) keyValue(p *unstable.Parser, prefix []string, kv *unstable.Node) {
	full := idx.record(p, prefix, kv.Key())
	if v := kv.Value(); v.Kind == unstable.InlineTable {
		it := v.Children()
		for it.Next() {
			if c := it.Node(); c.Kind == unstable.KeyValue {
				idx.keyValue(p, full, c)
			}
		}
	}
}

// record adds prefix+key and each intermediate path, at the line of the part
// that introduces it, and returns the full path.
func (idx lineIndex) record(p *unstable.Parser, prefix []string, key unstable.Iterator) []string {
	path := append([]string(nil), prefix...)
	for key.Next() {
		n := key.Node()
		path = append(path, string(n.Data))
		k := formatKey(path)
		if _, ok := idx[k]; !ok {
			idx[k] = p.Shape(n.Raw).Start.Line
		}
	}
	return path
}

func keyParts(n *unstable.Node) []string {
	var parts []string
	it := n.Key()
	for it.Next() {
		parts = append(parts, string(it.Node().Data))
	}
	return parts
}

// line returns the line of key, or of its closest ancestor present in the
// document (a missing key is reported at its table's header), or 0.
func (idx lineIndex) line(key string) int {
	for key != "" {
		if l, ok := idx[key]; ok {
			return l
		}
		i := strings.LastIndexByte(key, '.')
		if i < 0 {
			break
		}
		key = key[:i]
	}
	return 0
}

// has reports whether the document mentions key.
func (idx lineIndex) has(key string) bool {
	_, ok := idx[key]
	return ok
}

// locate finds the full path and line of a key go-toml reported. go-toml's
// key for an entry of an inline table lacks the table's path
// (ui = {nme = 1} is reported as "nme"); the index knows the full path.
// An indexed key takes the index's line (the decoded document may be a
// re-encoded copy whose lines differ); otherwise key and line are returned as
// reported.
func (idx lineIndex) locate(key []string, line int) (string, int) {
	k := formatKey(key)
	if l, ok := idx[k]; ok {
		return k, l
	}
	if line > 0 {
		suffix := "." + k
		for full, l := range idx {
			if l == line && strings.HasSuffix(full, suffix) {
				return full, line
			}
		}
	}
	return k, line
}
