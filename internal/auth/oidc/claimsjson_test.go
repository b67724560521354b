package oidc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
)

// decodeClaimsStd is what decodeClaims must equal: encoding/json with
// UseNumber, numbers made int64 or float64, nothing after the object.
func decodeClaimsStd(payload []byte) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(payload))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("not a JSON object")
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, fmt.Errorf("data after the JSON object")
	}
	for k, v := range m {
		m[k] = stdNumbers(v)
	}
	return m, nil
}

func stdNumbers(v any) any {
	switch t := v.(type) {
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return i
		}
		f, _ := t.Float64()
		return f
	case map[string]any:
		for k, e := range t {
			t[k] = stdNumbers(e)
		}
	case []any:
		for i, e := range t {
			t[i] = stdNumbers(e)
		}
	}
	return v
}

var claimsSeeds = []string{
	`{}`, ` { } `, `{"a":1}`, `{"a":1,"a":"last"}`, `{"iss":"https://x","aud":["a","b"],"exp":1750000300,"ratio":0.5}`,
	`{"n":-0,"f":-0.0,"e":1e2,"E":1E-2,"p":1e+2,"big":9223372036854775808,"min":-9223372036854775808,"inf":1e999,"z":0.0}`,
	`{"s":"\"\\\/\b\f\n\r\t\u0041\u00e9\u20ac\ud83d\ude00"}`, `{"lone":"\ud800","pair_bad":"\ud800\u0041","low":"\udc00x"}`,
	"{\"bad\":\"\xff\xfe\",\"ok\":\"\xc3\xa9\xef\xbf\xbd\",\"surr\":\"\xed\xa0\x80\"}", `{"nested":{"a":[1,[2,{"b":null}],true,false]},"empty":[],"eo":{}}`,
	`{"kubernetes.io":{"namespace":"flux","serviceaccount":{"name":"source","uid":"u-1"}}}`,
	// refusals
	``, ` `, `null`, `[]`, `"s"`, `1`, `{`, `}`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{,}`, `{"a":1}x`, `{"a":1}{}`, `{"a":01}`,
	`{"a":1.}`, `{"a":.5}`, `{"a":-}`, `{"a":1e}`, `{"a":+1}`, `{"a":tru}`, `{"a":truex}`, `{"a":nul}`, `{a:1}`, `{'a':1}`,
	"{\"a\":\"\x01\"}", `{"a":"\x"}`, `{"a":"\u00"}`, `{"a":"\uZZZZ"}`, `{"a":"\'"}`, `{"a":"unterminated}`, `{"a":[1,2}`, `{"a":[1 2]}`,
	"\ufeff{}", `{"a":NaN}`, `{"a":Infinity}`, "{\"a\":1}\x00", "{\"a\"\t:\n1\r}",
	`{"a":` + strings.Repeat("[", maxJSONDepth-1) + strings.Repeat("]", maxJSONDepth-1) + `}`,
	`{"a":` + strings.Repeat("[", maxJSONDepth) + strings.Repeat("]", maxJSONDepth) + `}`,
}

func TestDecodeClaimsMatchesEncodingJSON(t *testing.T) {
	for _, s := range claimsSeeds {
		compareDecoders(t, []byte(s))
	}
	got, err := decodeClaims([]byte(`{"i":2,"f":0.5,"s":"x","l":[1]}`))
	if err != nil || got["i"] != int64(2) || got["f"] != 0.5 || got["s"] != "x" || got["l"].([]any)[0] != int64(1) {
		t.Fatalf("%v %#v", err, got)
	}
}

// FuzzDecodeClaims checks decodeClaims against encoding/json.
func FuzzDecodeClaims(f *testing.F) {
	for _, s := range claimsSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		if len(payload) > MaxTokenSize {
			return
		}
		compareDecoders(t, payload)
	})
}

func compareDecoders(t *testing.T, payload []byte) {
	t.Helper()
	got, err := decodeClaims(payload)
	want, wantErr := decodeClaimsStd(payload)
	if (err == nil) != (wantErr == nil) {
		t.Fatalf("%q: decodeClaims err %v, encoding/json err %v", trunc(payload), err, wantErr)
	}
	if err == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("%q:\n got %#v\nwant %#v", trunc(payload), got, want)
	}
}

func trunc(b []byte) []byte {
	if len(b) > 200 {
		return b[:200]
	}
	return b
}

// BenchmarkDecodeClaims compares decodeClaims with encoding/json on the
// payload of a GitHub Actions token.
func BenchmarkDecodeClaims(b *testing.B) {
	_, raw, _ := benchSetup(b, -1)
	t, err := parseUnverified(raw)
	if err != nil {
		b.Fatal(err)
	}
	payload := t.jws.UnsafePayloadWithoutVerification()
	for _, d := range []struct {
		name   string
		decode func([]byte) (map[string]any, error)
	}{{"decodeClaims", decodeClaims}, {"encoding-json", decodeClaimsStd}} {
		b.Run(d.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := d.decode(payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
