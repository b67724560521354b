package ui

import (
	"encoding/json"
	"html/template"
	"slices"
	"strings"

	"github.com/berth-registry/berth/internal/oci"
	"github.com/berth-registry/berth/internal/oci/rawjson"
)

// A manifest may be a few MiB of JSON holding tens of thousands of layers,
// index children or annotations. The manifest page shows one page of each
// list and the raw JSON up to a bound, and the manifest is read without
// building the lists (oci.ScanManifest keeps the requested window of each
// list and counts the rest). A page's memory is then the manifest's bytes
// plus a bounded amount, whatever the manifest holds.
const (
	// manifestListPage is how many layers, index children, annotations,
	// configuration labels or referrers of one kind a manifest page shows.
	manifestListPage = 100
	// maxRawHTML bounds the highlighted raw JSON on a manifest page.
	maxRawHTML = 256 << 10
)

// shownAnnotations are the descriptor annotations the UI shows.
var shownAnnotations = []string{"org.opencontainers.image.title", "vnd.docker.reference.type", "org.opencontainers.image.created"}

// labelList is an object of strings (image configuration labels): the first
// manifestListPage in key order when they fit, else in document order, and
// how many there are.
type labelList struct {
	Count int
	Items []oci.Annotation
}

func (l *labelList) UnmarshalJSON(b []byte) error {
	*l = labelList{}
	if rawjson.IsNull(b) {
		return nil
	}
	var p oci.ListPage[oci.Annotation]
	if err := oci.ScanAnnotations(b, oci.Window{Off: 0, N: manifestListPage}, &p); err != nil {
		return err
	}
	l.Count, l.Items = p.Count, p.Items
	if l.Count <= manifestListPage {
		slices.SortFunc(l.Items, func(a, b oci.Annotation) int { return strings.Compare(a.Key, b.Key) })
	}
	return nil
}

// counted is the length of a JSON array, whose elements are not kept.
type counted int

func (c *counted) UnmarshalJSON(b []byte) error {
	*c = 0
	if rawjson.IsNull(b) {
		return nil
	}
	return rawjson.Elements(b, func([]byte) error { *c++; return nil })
}

// highlightJSON pretty-prints JSON (as json.Indent with two spaces) and
// wraps its tokens in spans (classes k: key, s: string, n: number, b:
// true/false/null). Everything is escaped. It stops once the output reaches
// limit bytes, and then says so.
func highlightJSON(data []byte, limit int) (template.HTML, bool) {
	var out strings.Builder
	if !json.Valid(data) {
		s := data[:min(len(data), limit/2)]
		out.WriteString(template.HTMLEscapeString(string(s)))
		return template.HTML(out.String()), len(s) < len(data)
	}
	depth := 0
	newline := func() {
		out.WriteByte('\n')
		for range max(depth, 0) {
			out.WriteString("  ")
		}
	}
	span := func(class string, tok []byte) {
		out.WriteString(`<span class="j` + class + `">`)
		out.WriteString(template.HTMLEscapeString(string(tok)))
		out.WriteString(`</span>`)
	}
	for i := 0; i < len(data); {
		if out.Len() >= limit {
			return template.HTML(out.String()), true
		}
		switch c := data[i]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '{' || c == '[':
			out.WriteByte(c)
			if j := rawjson.SkipWS(data, i+1); j < len(data) && (data[j] == '}' || data[j] == ']') {
				out.WriteByte(data[j])
				i = j + 1
				continue
			}
			depth++
			newline()
			i++
		case c == '}' || c == ']':
			depth--
			newline()
			out.WriteByte(c)
			i++
		case c == ',':
			out.WriteByte(',')
			newline()
			i++
		case c == ':':
			out.WriteString(": ")
			i++
		case c == '"':
			j := rawjson.EndString(data, i)
			class := "s"
			if k := rawjson.SkipWS(data, j); k < len(data) && data[k] == ':' {
				class = "k"
			}
			span(class, data[i:j])
			i = j
		default:
			j := rawjson.EndValue(data, i)
			class := "n"
			if c == 't' || c == 'f' || c == 'n' {
				class = "b"
			}
			span(class, data[i:max(j, i+1)])
			i = max(j, i+1)
		}
	}
	return template.HTML(out.String()), false
}
