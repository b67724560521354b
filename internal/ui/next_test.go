package ui

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"testing"
)

var nextFieldRE = regexp.MustCompile(`name="next" value="([^"]*)"`)

// TestSignInNextStaysOnSite: every form of next that a browser would turn
// into another site (or that hides something a browser strips or rewrites)
// becomes "/", both in the sign-in form and in the Location after a
// successful sign-in; a path on this site is kept.
func TestSignInNextStaysOnSite(t *testing.T) {
	e := newEnv(t, false)
	cases := []struct {
		query string // as sent in GET /-/signin?next=<query>
		want  string
	}{
		{"/%09/evil.example", "/"},             // tab: browsers drop it, leaving //evil.example
		{"/%20/evil.example", "/"},             // space
		{"/%0D%0A/evil.example", "/"},          // CR LF
		{"/%0A/evil.example", "/"},             // LF
		{"/%0D/evil.example", "/"},             // CR
		{"/%00/evil.example", "/"},             // NUL
		{"/%7F/evil.example", "/"},             // DEL
		{"/%0B/evil.example", "/"},             // vertical tab
		{"/%0C/evil.example", "/"},             // form feed
		{"/%C2%A0/evil.example", "/"},          // no-break space
		{"/%E3%80%80/evil.example", "/"},       // ideographic space
		{"%09//evil.example", "/"},             // leading tab
		{"//evil.example", "/"},                // protocol-relative
		{"%2F%2Fevil.example", "/"},            // the same, encoded once
		{"/%2F%2Fevil.example", "/"},           // "///evil.example"
		{"/%252F%252Fevil.example", "/"},       // "/%2F%2Fevil.example": an encoded authority
		{"/%5Cevil.example", "/"},              // "/\evil.example": browsers read \ as /
		{"%5C%5Cevil.example", "/"},            // "\\evil.example"
		{"/%5C/evil.example", "/"},             // "/\/evil.example"
		{"/r/x%5C..%5C..%5Cevil", "/"},         // a backslash anywhere
		{"/%2509/evil.example", "/"},           // "/%09/evil.example": an encoded control character
		{"/%250A/evil.example", "/"},           // "/%0A/evil.example"
		{"/%255C/evil.example", "/"},           // "/%5C/evil.example": an encoded backslash
		{"https://evil.example/", "/"},         // a scheme
		{"https:/evil.example/", "/"},          // a scheme, one slash
		{"javascript:alert(1)", "/"},           // a scheme
		{"/x@evil.example", "/x@evil.example"}, // a path: no authority
		{"evil.example", "/"},                  // relative
		{"./evil", "/"},                        // relative
		{"/-/signin", "/"},                     // the sign-in page itself
		{"/%", "/"},                            // a broken escape
		{"/r/public/app", "/r/public/app"},
		{"/r/public/app%3Fview%3Dmanifests", "/r/public/app?view=manifests"},
		{"/%3Fq%3Dapp%26after%3Dpublic%2Fa", "/?q=app&after=public/a"},
	}
	for _, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			se := *e
			se.t = t
			b := se.browser()
			p := b.get("/-/signin?next=" + c.query)
			m := nextFieldRE.FindStringSubmatch(p.body)
			if m == nil {
				t.Fatalf("no next field:\n%s", p.body)
			}
			if got := html.UnescapeString(m[1]); got != c.want {
				t.Errorf("form next = %q, want %q", got, c.want)
			}
			// The form value as a browser would send it back (a raw value,
			// not one the form made safe), then a successful sign-in.
			raw, err := url.QueryUnescape(c.query)
			if err != nil {
				raw = c.query
			}
			p = b.post("/-/signin", url.Values{"csrf": {b.csrf("/-/signin")}, "username": {"alice"},
				"password": {"alice-password"}, "next": {raw}})
			if p.status != http.StatusSeeOther {
				t.Fatalf("sign-in: status %d\n%s", p.status, p.body)
			}
			if got := p.header.Get("Location"); got != c.want {
				t.Errorf("Location = %q, want %q", got, c.want)
			}
		})
	}
}

// TestSafeNextBytes: safeNext never returns a value with a byte a browser
// strips or rewrites, or one that does not start with a single "/".
func TestSafeNextBytes(t *testing.T) {
	for c := 0; c < 256; c++ {
		for _, s := range []string{"/" + string(rune(c)) + "/evil.example", "/" + string([]byte{byte(c)}) + "/evil.example",
			"/" + url.PathEscape(string([]byte{byte(c)})) + "/evil.example"} {
			got := safeNext(s)
			if got == "/" {
				continue
			}
			if got != s {
				t.Errorf("safeNext(%q) = %q: rewritten", s, got)
			}
			for i := 0; i < len(got); i++ {
				if got[i] <= ' ' || got[i] >= 0x7f || got[i] == '\\' {
					t.Errorf("safeNext(%q) = %q: byte %#x kept", s, got, got[i])
				}
			}
			if len(got) > 1 && (got[1] == '/' || got[1] == '\\') {
				t.Errorf("safeNext(%q) = %q: an authority", s, got)
			}
		}
	}
}
