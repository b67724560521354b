package access

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

func TestProxiesClientAndScheme(t *testing.T) {
	p := Proxies{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::1/128")}
	cases := []struct {
		name, peer, xff, xfp string
		tls                  bool
		ip, scheme           string
	}{
		{"no proxy header", "10.0.0.1:1", "", "", false, "10.0.0.1", "http"},
		{"trusted proxy", "10.0.0.1:1", "192.0.2.7", "https", false, "192.0.2.7", "https"},
		{"untrusted peer cannot spoof", "192.0.2.9:1", "192.0.2.7", "https", false, "192.0.2.9", "http"},
		{"untrusted peer over TLS", "192.0.2.9:1", "", "http", true, "192.0.2.9", "https"},
		{"chain: rightmost untrusted wins", "10.0.0.1:1", "203.0.113.66, 192.0.2.7, 10.0.0.2", "", false, "192.0.2.7", "http"},
		{"client-written garbage left of the real hop", "10.0.0.1:1", "evil, 192.0.2.7", "", false, "192.0.2.7", "http"},
		{"garbage appended: stop at the last good hop", "10.0.0.1:1", "192.0.2.7, nonsense", "", false, "10.0.0.1", "http"},
		{"all hops trusted", "10.0.0.1:1", "10.0.0.3, 10.0.0.2", "", false, "10.0.0.3", "http"},
		{"IPv6 with brackets and port", "[2001:db8::1]:443", "[2001:db8::7]:5555", "HTTPS", false, "2001:db8::7", "https"},
		{"odd proto ignored", "10.0.0.1:1", "192.0.2.7", "gopher", false, "192.0.2.7", "http"},
		{"IPv4-mapped peer", "[::ffff:10.0.0.1]:1", "192.0.2.7", "", false, "192.0.2.7", "http"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var ip, scheme string
			h := p.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ip, scheme = ClientIP(r), Scheme(r)
			}))
			r := httptest.NewRequest("GET", "/v2/", nil)
			r.RemoteAddr = c.peer
			if c.tls {
				r.TLS = &tls.ConnectionState{}
			}
			if c.xff != "" {
				r.Header.Set("X-Forwarded-For", c.xff)
			}
			if c.xfp != "" {
				r.Header.Set("X-Forwarded-Proto", c.xfp)
			}
			h.ServeHTTP(httptest.NewRecorder(), r)
			if ip != c.ip || scheme != c.scheme {
				t.Fatalf("ClientIP=%q Scheme=%q, want %q %q", ip, scheme, c.ip, c.scheme)
			}
		})
	}
	// Without trusted proxies the headers are never read.
	r := httptest.NewRequest("GET", "/v2/", nil)
	r.RemoteAddr = "10.0.0.1:1"
	r.Header.Set("X-Forwarded-For", "192.0.2.7")
	Proxies(nil).Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if got := ClientIP(r); got != "10.0.0.1" {
			t.Errorf("no proxies configured: ClientIP = %q", got)
		}
	})).ServeHTTP(httptest.NewRecorder(), r)
}

// Whatever a trusted proxy forwards, the client address is the peer or an
// address that appears in the header, and nothing panics.
func FuzzForwardedFor(f *testing.F) {
	f.Add("192.0.2.7", "https")
	f.Add("203.0.113.66, 192.0.2.7, 10.0.0.2", "http")
	f.Add("[2001:db8::7]:5555,,  ,evil", "HTTPS, http")
	f.Add("::ffff:10.0.0.9", "")
	p := Proxies{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")}
	f.Fuzz(func(t *testing.T, xff, xfp string) {
		r := httptest.NewRequest("GET", "/v2/", nil)
		r.RemoteAddr = "10.0.0.1:1"
		r.Header["X-Forwarded-For"] = []string{xff}
		r.Header["X-Forwarded-Proto"] = []string{xfp}
		var ip, scheme string
		p.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ip, scheme = ClientIP(r), Scheme(r)
		})).ServeHTTP(httptest.NewRecorder(), r)
		a, err := netip.ParseAddr(ip)
		if err != nil {
			t.Fatalf("client address %q is not an address", ip)
		}
		if ip != "10.0.0.1" && !strings.Contains(xff, strings.TrimPrefix(a.String(), "::ffff:")) {
			// An address not in the header would have come from nowhere;
			// IPv6 may be re-spelled (compressed), so compare parsed forms.
			found := false
			for _, h := range strings.Split(xff, ",") {
				if b, ok := addrOf(strings.TrimSpace(h)); ok && b == a {
					found = true
				}
			}
			if !found {
				t.Fatalf("client address %q is neither the peer nor in %q", ip, xff)
			}
		}
		if scheme != "http" && scheme != "https" {
			t.Fatalf("scheme %q", scheme)
		}
	})
}
