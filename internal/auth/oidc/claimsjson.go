package oidc

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// maxJSONDepth is encoding/json's nesting limit.
const maxJSONDepth = 10000

var errJSONDepth = errors.New("exceeded max depth")

// decodeClaims decodes a JWT payload: a JSON object whose integers become
// int64 and other numbers float64, so that CEL compares
// claims.run_attempt == 2.
//
// The result is exactly what encoding/json gives (a Decoder with UseNumber,
// then json.Number made int64 when Int64 succeeds, else float64, and nothing
// but white space after the object): the same values, the same refusals;
// FuzzDecodeClaims compares the two. It exists because encoding/json's
// reflection costs about as much as a third of an RSA-2048 signature check on
// a GitHub Actions token, and decoding the claims is on every first
// verification. Strings without escapes share one copy of the payload.
func decodeClaims(payload []byte) (map[string]any, error) {
	d := claimsDecoder{s: string(payload)}
	d.space()
	if d.i >= len(d.s) || d.s[d.i] != '{' {
		return nil, fmt.Errorf("not a JSON object")
	}
	m, err := d.object(1, topLevelHint(d.s))
	if err != nil {
		return nil, err
	}
	d.space()
	if d.i != len(d.s) {
		return nil, fmt.Errorf("data after the JSON object")
	}
	return m, nil
}

type claimsDecoder struct {
	s string
	i int
}

func (d *claimsDecoder) errorf(format string, args ...any) error {
	return fmt.Errorf("json at offset %d: %s", d.i, fmt.Sprintf(format, args...))
}

func (d *claimsDecoder) space() {
	for d.i < len(d.s) {
		switch d.s[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// value decodes the value at d.i; depth counts the enclosing objects and
// arrays.
func (d *claimsDecoder) value(depth int) (any, error) {
	d.space()
	if d.i >= len(d.s) {
		return nil, d.errorf("unexpected end of input")
	}
	switch c := d.s[d.i]; {
	case c == '{':
		m, err := d.object(depth+1, 0)
		if err != nil {
			return nil, err
		}
		return m, nil
	case c == '[':
		return d.array(depth + 1)
	case c == '"':
		return d.string()
	case c == '-' || '0' <= c && c <= '9':
		return d.number()
	case c == 't':
		return true, d.literal("true")
	case c == 'f':
		return false, d.literal("false")
	case c == 'n':
		return nil, d.literal("null")
	default:
		return nil, d.errorf("invalid character %q looking for beginning of value", c)
	}
}

func (d *claimsDecoder) literal(lit string) error {
	if len(d.s)-d.i < len(lit) || d.s[d.i:d.i+len(lit)] != lit {
		return d.errorf("invalid literal, want %s", lit)
	}
	d.i += len(lit)
	return nil
}

// topLevelHint guesses how many names the payload's object has, to size its
// map at once: one more than its commas, however nested, within reason.
func topLevelHint(s string) int {
	return min(strings.Count(s, ",")+1, 64)
}

// object decodes the object at d.i ('{'), sizing its map for hint names. A
// repeated name keeps its last value, like encoding/json.
func (d *claimsDecoder) object(depth, hint int) (map[string]any, error) {
	if depth > maxJSONDepth {
		return nil, errJSONDepth
	}
	d.i++
	m := make(map[string]any, hint)
	d.space()
	if d.i < len(d.s) && d.s[d.i] == '}' {
		d.i++
		return m, nil
	}
	for {
		d.space()
		if d.i >= len(d.s) || d.s[d.i] != '"' {
			return nil, d.errorf("want an object key")
		}
		k, err := d.string()
		if err != nil {
			return nil, err
		}
		d.space()
		if d.i >= len(d.s) || d.s[d.i] != ':' {
			return nil, d.errorf("want ':' after an object key")
		}
		d.i++
		v, err := d.value(depth)
		if err != nil {
			return nil, err
		}
		m[k] = v
		d.space()
		if d.i >= len(d.s) {
			return nil, d.errorf("unexpected end of input")
		}
		switch d.s[d.i] {
		case ',':
			d.i++
		case '}':
			d.i++
			return m, nil
		default:
			return nil, d.errorf("want ',' or '}' after an object value")
		}
	}
}

// array decodes the array at d.i ('['); an empty array is an empty, non-nil
// slice, like encoding/json.
func (d *claimsDecoder) array(depth int) ([]any, error) {
	if depth > maxJSONDepth {
		return nil, errJSONDepth
	}
	d.i++
	a := []any{}
	d.space()
	if d.i < len(d.s) && d.s[d.i] == ']' {
		d.i++
		return a, nil
	}
	for {
		v, err := d.value(depth)
		if err != nil {
			return nil, err
		}
		a = append(a, v)
		d.space()
		if d.i >= len(d.s) {
			return nil, d.errorf("unexpected end of input")
		}
		switch d.s[d.i] {
		case ',':
			d.i++
		case ']':
			d.i++
			return a, nil
		default:
			return nil, d.errorf("want ',' or ']' after an array element")
		}
	}
}

// number decodes the number at d.i (JSON grammar: -?(0|[1-9][0-9]*)
// (.[0-9]+)?([eE][+-]?[0-9]+)?) as json.Number's Int64, else its Float64
// (±Inf when out of range, as json.Number.Float64 then returns).
func (d *claimsDecoder) number() (any, error) {
	start := d.i
	if d.s[d.i] == '-' {
		d.i++
	}
	switch {
	case d.i < len(d.s) && d.s[d.i] == '0':
		d.i++
	case d.i < len(d.s) && '1' <= d.s[d.i] && d.s[d.i] <= '9':
		d.digits()
	default:
		return nil, d.errorf("invalid number")
	}
	if d.i < len(d.s) && d.s[d.i] == '.' {
		d.i++
		if d.digits() == 0 {
			return nil, d.errorf("invalid number: no digit after the decimal point")
		}
	}
	if d.i < len(d.s) && (d.s[d.i] == 'e' || d.s[d.i] == 'E') {
		d.i++
		if d.i < len(d.s) && (d.s[d.i] == '+' || d.s[d.i] == '-') {
			d.i++
		}
		if d.digits() == 0 {
			return nil, d.errorf("invalid number: no digit in the exponent")
		}
	}
	lit := d.s[start:d.i]
	if n, err := strconv.ParseInt(lit, 10, 64); err == nil {
		return n, nil
	}
	f, _ := strconv.ParseFloat(lit, 64)
	return f, nil
}

func (d *claimsDecoder) digits() int {
	start := d.i
	for d.i < len(d.s) && '0' <= d.s[d.i] && d.s[d.i] <= '9' {
		d.i++
	}
	return d.i - start
}

// string decodes the string at d.i ('"') as encoding/json does: the escapes
// of RFC 8259, surrogate pairs joined, a lone surrogate and every byte of
// invalid UTF-8 replaced by U+FFFD, control characters refused.
func (d *claimsDecoder) string() (string, error) {
	d.i++
	start := d.i
	for d.i < len(d.s) {
		c := d.s[d.i]
		if c == '"' {
			d.i++
			return d.s[start : d.i-1], nil
		}
		if c == '\\' || c < ' ' {
			break
		}
		if c < utf8.RuneSelf {
			d.i++
			continue
		}
		r, size := utf8.DecodeRuneInString(d.s[d.i:])
		if r == utf8.RuneError && size == 1 {
			break
		}
		d.i += size
	}
	b := make([]byte, d.i-start, d.i-start+16)
	copy(b, d.s[start:d.i])
	for d.i < len(d.s) {
		switch c := d.s[d.i]; {
		case c == '"':
			d.i++
			return string(b), nil
		case c < ' ':
			return "", d.errorf("invalid character %q in string literal", c)
		case c == '\\':
			if d.i+1 >= len(d.s) {
				return "", d.errorf("unexpected end of input")
			}
			switch e := d.s[d.i+1]; e {
			case '"', '\\', '/':
				b = append(b, e)
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				r := hex4(d.s[d.i:])
				if r < 0 {
					return "", d.errorf("invalid \\u escape")
				}
				d.i += 6
				if utf16.IsSurrogate(r) {
					if dec := utf16.DecodeRune(r, hex4(d.s[d.i:])); dec != unicode.ReplacementChar {
						d.i += 6 // a valid pair
						r = dec
					} else {
						r = unicode.ReplacementChar
					}
				}
				b = utf8.AppendRune(b, r)
				continue
			default:
				return "", d.errorf("invalid escape %q in string literal", e)
			}
			d.i += 2
		case c < utf8.RuneSelf:
			b = append(b, c)
			d.i++
		default:
			r, size := utf8.DecodeRuneInString(d.s[d.i:])
			b = utf8.AppendRune(b, r)
			d.i += size
		}
	}
	return "", d.errorf("unexpected end of input in string literal")
}

// hex4 reads the \uXXXX escape at the start of s, or returns -1.
func hex4(s string) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range []byte(s[2:6]) {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}
