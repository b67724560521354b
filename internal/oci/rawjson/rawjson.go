// Package rawjson reads JSON without decoding it: it walks the members of an
// object and the elements of an array of JSON that json.Valid (or
// json.Unmarshal, which hands an Unmarshaler a valid value) accepted, and
// allocates nothing. Package oci's streaming manifest scan and the web UI's
// JSON views are built on it.
package rawjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
)

// ErrShape is the error for a value of an unexpected JSON type.
var ErrShape = errors.New("unexpected manifest shape")

// ParseInt reads a JSON integer.
func ParseInt(v []byte) (int64, bool) {
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

// IsNull reports whether v is the JSON null.
func IsNull(v []byte) bool { return string(v) == "null" }

// SkipWS is the index of the first non-space byte of b from i.
func SkipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// EndString is the index after the string starting at b[i] ('"').
func EndString(b []byte, i int) int {
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

// EndValue is the index after the value starting at b[i].
func EndValue(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return EndString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = EndString(b, i)
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

// Elements calls fn with each element of the array v.
func Elements(v []byte, fn func(e []byte) error) error {
	i := SkipWS(v, 0)
	if i >= len(v) || v[i] != '[' {
		return ErrShape
	}
	i = SkipWS(v, i+1)
	if i < len(v) && v[i] == ']' {
		return nil
	}
	for i < len(v) {
		j := EndValue(v, i)
		if err := fn(v[i:j]); err != nil {
			return err
		}
		i = SkipWS(v, j)
		if i >= len(v) || v[i] != ',' {
			break
		}
		i = SkipWS(v, i+1)
	}
	return nil
}

// Members calls fn with each key (a JSON string, quoted) and value of the
// object v.
func Members(v []byte, fn func(key, val []byte) error) error {
	i := SkipWS(v, 0)
	if i >= len(v) || v[i] != '{' {
		return ErrShape
	}
	i = SkipWS(v, i+1)
	if i < len(v) && v[i] == '}' {
		return nil
	}
	for i < len(v) && v[i] == '"' {
		k := EndString(v, i)
		key := v[i:k]
		i = SkipWS(v, k)
		if i >= len(v) || v[i] != ':' {
			return ErrShape
		}
		i = SkipWS(v, i+1)
		j := EndValue(v, i)
		if err := fn(key, v[i:j]); err != nil {
			return err
		}
		i = SkipWS(v, j)
		if i >= len(v) || v[i] != ',' {
			break
		}
		i = SkipWS(v, i+1)
	}
	return nil
}

// KeyIs: the quoted JSON string key names the struct field name, as
// encoding/json matches it.
func KeyIs(key []byte, name string) bool {
	s := key[1 : len(key)-1]
	if bytes.IndexByte(s, '\\') < 0 {
		return len(s) == len(name) && strings.EqualFold(string(s), name)
	}
	var k string
	return json.Unmarshal(key, &k) == nil && strings.EqualFold(k, name)
}

// KeyExact: the quoted JSON string key is name.
func KeyExact(key []byte, name string) bool {
	s := key[1 : len(key)-1]
	if bytes.IndexByte(s, '\\') < 0 {
		return string(s) == name
	}
	var k string
	return json.Unmarshal(key, &k) == nil && k == name
}
