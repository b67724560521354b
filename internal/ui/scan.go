package ui

import (
	"bytes"
	"encoding/json"
	"errors"
	"html/template"
	"slices"
	"strings"
)

// A manifest may be a few MiB of JSON holding tens of thousands of layers,
// index children or annotations. The manifest page shows one page of each
// list and the raw JSON up to a bound, and the manifest is read without
// building the lists: scanManifest walks the bytes, keeps the requested
// window of each list and counts the rest. A page's memory is then the
// manifest's bytes plus a bounded amount, whatever the manifest holds.
const (
	// manifestListPage is how many layers, index children, annotations,
	// configuration labels or referrers of one kind a manifest page shows.
	manifestListPage = 100
	// maxRawHTML bounds the highlighted raw JSON on a manifest page.
	maxRawHTML = 256 << 10
	// maxPlatforms bounds the platforms a summary names.
	maxPlatforms = 16
)

// window is the rows [Off, Off+N) of a list.
type window struct{ Off, N int }

func (w window) has(i int) bool { return i >= w.Off && i < w.Off+w.N }

// listPage is one window of a list and what the list holds in all.
type listPage[T any] struct {
	Count   int   // items in the list
	Total   int64 // sum of their sizes (descriptors)
	Largest int64 // largest size (descriptors)
	Off     int   // index of Items[0]
	Items   []T
}

type annotation struct{ Key, Value string }

// manifestScan is what the UI reads of a manifest.
type manifestScan struct {
	MediaType     string
	ArtifactType  string
	Config        *descriptor
	Subject       *descriptor
	IsIndex       bool // a "manifests" array
	Layers        listPage[descriptor]
	Children      listPage[descriptor]
	Annotations   listPage[annotation]
	Platforms     []string // of the children, at most maxPlatforms
	MorePlatforms bool
}

var errShape = errors.New("ui: unexpected manifest shape")

// scanManifest reads data (a JSON object) keeping the given windows of its
// layers, manifests and annotations. Keys match as encoding/json matches
// them (case-insensitively; a repeated key: the last one).
func scanManifest(data []byte, layers, children, annotations window) (*manifestScan, error) {
	if !json.Valid(data) {
		return nil, errors.New("ui: manifest is not valid JSON")
	}
	s := &manifestScan{}
	err := members(data, func(key, v []byte) error {
		switch {
		case keyIs(key, "mediaType"):
			return json.Unmarshal(v, &s.MediaType)
		case keyIs(key, "artifactType"):
			return json.Unmarshal(v, &s.ArtifactType)
		case keyIs(key, "config"):
			s.Config = nil
			return json.Unmarshal(v, &s.Config)
		case keyIs(key, "subject"):
			s.Subject = nil
			return json.Unmarshal(v, &s.Subject)
		case keyIs(key, "layers"):
			s.Layers = listPage[descriptor]{}
			return scanDescriptors(v, layers, &s.Layers, nil)
		case keyIs(key, "manifests"):
			s.Children, s.Platforms, s.MorePlatforms = listPage[descriptor]{}, nil, false
			s.IsIndex = !isNull(v)
			return scanDescriptors(v, children, &s.Children, s)
		case keyIs(key, "annotations"):
			s.Annotations = listPage[annotation]{}
			return scanAnnotations(v, annotations, &s.Annotations)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// scanDescriptors reads an array of descriptors: every size, the window in
// full (annotations: the ones shown only), and with idx the platforms.
func scanDescriptors(v []byte, w window, out *listPage[descriptor], idx *manifestScan) error {
	if isNull(v) {
		return nil
	}
	out.Off = w.Off
	return elements(v, func(e []byte) error {
		i := out.Count
		out.Count++
		var size int64
		var plat []byte
		if w.has(i) {
			var d descriptor
			if err := json.Unmarshal(e, &d); err != nil {
				return err
			}
			out.Items = append(out.Items, d)
			size = d.Size
		} else {
			err := members(e, func(k, v []byte) error {
				switch {
				case keyIs(k, "size"):
					n, ok := parseInt(v)
					if !ok {
						return errShape
					}
					size = n
				case idx != nil && keyIs(k, "platform"):
					plat = v
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		out.Total += size
		out.Largest = max(out.Largest, size)
		if idx != nil {
			if w.has(i) {
				idx.addPlatform(out.Items[len(out.Items)-1].Platform.String())
			} else if plat != nil && !isNull(plat) {
				if err := idx.addRawPlatform(plat); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

func (s *manifestScan) addPlatform(p string) {
	if p == "" || p == "unknown/unknown" || slices.Contains(s.Platforms, p) {
		return
	}
	if len(s.Platforms) >= maxPlatforms {
		s.MorePlatforms = true
		return
	}
	s.Platforms = append(s.Platforms, p)
}

// addRawPlatform adds a platform object (JSON) as addPlatform does,
// allocating only for a new platform.
func (s *manifestScan) addRawPlatform(v []byte) error {
	var os, arch, variant []byte
	var slow bool
	err := members(v, func(k, val []byte) error {
		var dst *[]byte
		switch {
		case keyIs(k, "os"):
			dst = &os
		case keyIs(k, "architecture"):
			dst = &arch
		case keyIs(k, "variant"):
			dst = &variant
		default:
			return nil
		}
		if val[0] != '"' {
			return errShape
		}
		if bytes.IndexByte(val, '\\') >= 0 {
			slow = true
		}
		*dst = val[1 : len(val)-1]
		return nil
	})
	if err != nil {
		return err
	}
	if slow {
		var p platform
		if err := json.Unmarshal(v, &p); err != nil {
			return err
		}
		s.addPlatform(p.String())
		return nil
	}
	if len(os) == 0 && len(arch) == 0 {
		return nil
	}
	var buf [128]byte
	b := append(append(append(buf[:0], os...), '/'), arch...)
	if len(variant) > 0 {
		b = append(append(b, '/'), variant...)
	}
	if string(b) == "unknown/unknown" || slices.ContainsFunc(s.Platforms, func(p string) bool { return p == string(b) }) {
		return nil
	}
	s.addPlatform(string(b))
	return nil
}

// parseInt reads a JSON integer.
func parseInt(v []byte) (int64, bool) {
	neg := len(v) > 0 && v[0] == '-'
	if neg {
		v = v[1:]
	}
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

// scanAnnotations reads an object of strings, keeping the window.
func scanAnnotations(v []byte, w window, out *listPage[annotation]) error {
	if isNull(v) {
		return nil
	}
	out.Off = w.Off
	return members(v, func(k, val []byte) error {
		if val[0] != '"' {
			return errShape
		}
		if w.has(out.Count) {
			var a annotation
			if err := json.Unmarshal(k, &a.Key); err != nil {
				return err
			}
			if err := json.Unmarshal(val, &a.Value); err != nil {
				return err
			}
			out.Items = append(out.Items, a)
		}
		out.Count++
		return nil
	})
}

// shownAnnotations are the descriptor annotations the UI shows.
var shownAnnotations = []string{"org.opencontainers.image.title", "vnd.docker.reference.type", "org.opencontainers.image.created"}

// pickedAnnotations are a descriptor's annotations; decoded from JSON, only
// the shown ones are kept.
type pickedAnnotations map[string]string

func (p *pickedAnnotations) UnmarshalJSON(b []byte) error {
	if isNull(b) {
		return nil
	}
	return members(b, func(k, v []byte) error {
		for _, name := range shownAnnotations {
			if keyExact(k, name) {
				var s string
				if err := json.Unmarshal(v, &s); err != nil {
					return err
				}
				if *p == nil {
					*p = pickedAnnotations{}
				}
				(*p)[name] = s
			}
		}
		return nil
	})
}

// labelList is an object of strings (image configuration labels): the first
// manifestListPage in key order when they fit, else in document order, and
// how many there are.
type labelList struct {
	Count int
	Items []annotation
}

func (l *labelList) UnmarshalJSON(b []byte) error {
	*l = labelList{}
	if isNull(b) {
		return nil
	}
	var p listPage[annotation]
	if err := scanAnnotations(b, window{0, manifestListPage}, &p); err != nil {
		return err
	}
	l.Count, l.Items = p.Count, p.Items
	if l.Count <= manifestListPage {
		slices.SortFunc(l.Items, func(a, b annotation) int { return strings.Compare(a.Key, b.Key) })
	}
	return nil
}

// counted is the length of a JSON array, whose elements are not kept.
type counted int

func (c *counted) UnmarshalJSON(b []byte) error {
	*c = 0
	if isNull(b) {
		return nil
	}
	return elements(b, func([]byte) error { *c++; return nil })
}

// The walkers below read JSON that json.Valid (or json.Unmarshal, which
// hands an Unmarshaler a valid value) accepted. They allocate nothing.

func isNull(v []byte) bool { return string(v) == "null" }

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// endString is the index after the string starting at b[i] ('"').
func endString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// endValue is the index after the value starting at b[i].
func endValue(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return endString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = endString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	default:
		for i < len(b) && !strings.ContainsRune(",}] \t\r\n", rune(b[i])) {
			i++
		}
		return i
	}
}

// elements calls fn with each element of the array v.
func elements(v []byte, fn func(e []byte) error) error {
	i := skipWS(v, 0)
	if i >= len(v) || v[i] != '[' {
		return errShape
	}
	i = skipWS(v, i+1)
	if i < len(v) && v[i] == ']' {
		return nil
	}
	for i < len(v) {
		j := endValue(v, i)
		if err := fn(v[i:j]); err != nil {
			return err
		}
		i = skipWS(v, j)
		if i >= len(v) || v[i] != ',' {
			break
		}
		i = skipWS(v, i+1)
	}
	return nil
}

// members calls fn with each key (a JSON string, quoted) and value of the
// object v.
func members(v []byte, fn func(key, val []byte) error) error {
	i := skipWS(v, 0)
	if i >= len(v) || v[i] != '{' {
		return errShape
	}
	i = skipWS(v, i+1)
	if i < len(v) && v[i] == '}' {
		return nil
	}
	for i < len(v) && v[i] == '"' {
		k := endString(v, i)
		key := v[i:k]
		i = skipWS(v, k)
		if i >= len(v) || v[i] != ':' {
			return errShape
		}
		i = skipWS(v, i+1)
		j := endValue(v, i)
		if err := fn(key, v[i:j]); err != nil {
			return err
		}
		i = skipWS(v, j)
		if i >= len(v) || v[i] != ',' {
			break
		}
		i = skipWS(v, i+1)
	}
	return nil
}

// keyIs: the quoted JSON string key names the struct field name, as
// encoding/json matches it.
func keyIs(key []byte, name string) bool {
	s := key[1 : len(key)-1]
	if bytes.IndexByte(s, '\\') < 0 {
		return len(s) == len(name) && strings.EqualFold(string(s), name)
	}
	var k string
	return json.Unmarshal(key, &k) == nil && strings.EqualFold(k, name)
}

// keyExact: the quoted JSON string key is name.
func keyExact(key []byte, name string) bool {
	s := key[1 : len(key)-1]
	if bytes.IndexByte(s, '\\') < 0 {
		return string(s) == name
	}
	var k string
	return json.Unmarshal(key, &k) == nil && k == name
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
			if j := skipWS(data, i+1); j < len(data) && (data[j] == '}' || data[j] == ']') {
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
			j := endString(data, i)
			class := "s"
			if k := skipWS(data, j); k < len(data) && data[k] == ':' {
				class = "k"
			}
			span(class, data[i:j])
			i = j
		default:
			j := endValue(data, i)
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
