package config

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

// TestEveryKeyDocumented walks every key the strict decoder accepts (the
// toml tags of the file struct) and checks docs/configuration.md has a row
// "| `key` |" for it in the section headed by its table, e.g.
// "### `[auth.token]`". Tables whose names the user picks appear in the
// headers with a placeholder: `[auth.oidc.<name>]`, `[auth.identity.<id>]`,
// `[repository."<key>"]`.
func TestEveryKeyDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	sections := docSections(string(doc))
	var keys [][]string
	walkKeys(reflect.TypeFor[file](), nil, &keys)
	if len(keys) < 50 {
		t.Fatalf("found only %d keys: the walk is broken", len(keys))
	}
	for _, k := range keys {
		table, leaf := strings.Join(k[:len(k)-1], "."), k[len(k)-1]
		rows, ok := sections[table]
		if !ok {
			t.Errorf("%s.%s: docs/configuration.md has no section headed `[%s]`", table, leaf, table)
			continue
		}
		if !rows[leaf] {
			t.Errorf("%s.%s: the `[%s]` section of docs/configuration.md has no row for `%s`", table, leaf, table, leaf)
		}
	}
}

// placeholders name the tables whose names the user chooses, by their path.
var placeholders = map[string]string{
	"auth.oidc": "<name>", "auth.identity": "<id>", "repository": `"<key>"`,
}

// walkKeys appends the path of every leaf key of the struct type t.
func walkKeys(t reflect.Type, path []string, out *[][]string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if name == "" || name == "-" {
			continue
		}
		p := append(append([]string(nil), path...), name)
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch {
		case ft.Kind() == reflect.Struct:
			walkKeys(ft, p, out)
		case ft.Kind() == reflect.Map && ft.Elem().Kind() != reflect.Interface:
			walkKeys(ft.Elem(), append(p, placeholders[strings.Join(p, ".")]), out)
		default: // a value, or an array of inline tables documented as one row
			*out = append(*out, p)
		}
	}
}

// docSections maps each "`[table]`" header of the document to the keys of
// the table rows ("| `key` | ...") under it, up to the next header.
func docSections(doc string) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	var cur map[string]bool
	inCode := false
	for _, line := range strings.Split(doc, "\n") {
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
					cur = map[string]bool{}
					out[name] = cur
				}
			}
			continue
		}
		if cur != nil && strings.HasPrefix(line, "| `") {
			if key, _, ok := strings.Cut(strings.TrimPrefix(line, "| `"), "`"); ok {
				cur[key] = true
			}
		}
	}
	return out
}
