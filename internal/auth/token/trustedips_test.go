package token

import (
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// TestTrustedIPsEveryExchange: an ID token of a provider with
// token_trusted_ips is refused, on every grant that takes one, from a client
// address outside the list (counted as a refused credential), and the access
// tokens issued from inside it carry the list.
func TestTrustedIPsEveryExchange(t *testing.T) {
	const trusted, untrusted = "10.1.2.3", "192.0.2.9"
	list := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	form := func(v url.Values) url.Values {
		v.Set("service", "berth")
		v.Set("scope", "repository:org/app:pull")
		return v
	}
	exchange := func(want string) url.Values {
		v := form(url.Values{"grant_type": {GrantTokenExchange}, "subject_token": {testIDToken}, "subject_token_type": {TokenTypeIDToken}})
		if want != "" {
			v.Set("requested_token_type", want)
		}
		return v
	}
	for _, tc := range []struct {
		name    string
		req     func(f *fixture, ip string) *http.Request
		refused int  // status from an untrusted address
		access  bool // a trusted answer is an access token
	}{
		{name: "docker GET with Basic provider:ID token", refused: http.StatusUnauthorized, access: true,
			req: func(f *fixture, ip string) *http.Request {
				r, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/token?service=berth&scope=repository:org/app:pull", nil)
				r.SetBasicAuth("github", testIDToken)
				return r
			}},
		{name: "OAuth2 password grant with the ID token", refused: http.StatusBadRequest, access: true,
			req: func(f *fixture, ip string) *http.Request {
				return postReq(f, form(url.Values{"grant_type": {GrantPassword}, "username": {"github"}, "password": {testIDToken}}))
			}},
		{name: "RFC 8693 exchange for an access token", refused: http.StatusBadRequest, access: true,
			req: func(f *fixture, ip string) *http.Request { return postReq(f, exchange("")) }},
		{name: "RFC 8693 exchange for a session token", refused: http.StatusBadRequest,
			req: func(f *fixture, ip string) *http.Request { return postReq(f, exchange(TokenTypeSession)) }},
		{name: "jwt-bearer grant", refused: http.StatusBadRequest, access: true,
			req: func(f *fixture, ip string) *http.Request {
				return postReq(f, form(url.Values{"grant_type": {GrantJWTBearer}, "assertion": {testIDToken}}))
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lim := &countingLimiter{n: map[string]int{}, max: 100}
			f := newFixture(t, func(f *fixture) {
				f.limits.TrustedIPs = list
				f.opts.Limiter = lim
				// The address the server resolved (peer, or forwarded by a trusted proxy).
				f.opts.ClientIP = func(r *http.Request) string { return r.Header.Get("X-Test-Client") }
			})
			send := func(ip string) response {
				r := tc.req(f, ip)
				r.Header.Set("X-Test-Client", ip)
				return f.do(r)
			}

			ok := send(trusted)
			wantStatus(t, ok, http.StatusOK)
			if tc.access {
				id := f.verify(ok.str("access_token"))
				if !slices.Equal(id.TrustedIPs, list) {
					t.Errorf("access token carries trusted IPs %v, want %v", id.TrustedIPs, list)
				}
			}
			if lim.count(trusted) != 0 {
				t.Errorf("a trusted exchange counted as a refusal")
			}

			bad := send(untrusted)
			wantStatus(t, bad, tc.refused)
			if d := bad.str("error_description"); d != "client address not in the provider's token_trusted_ips" {
				t.Errorf("error_description %q", d)
			}
			if bad.str("access_token") != "" {
				t.Error("a token was issued to an untrusted address")
			}
			if n := lim.count(untrusted); n != 1 {
				t.Errorf("refusals counted for the untrusted address: %d, want 1", n)
			}
			if !strings.Contains(f.logs.String(), "token_trusted_ips") {
				t.Errorf("the refusal's reason is not logged:\n%s", f.logs.String())
			}
		})
	}
}

func postReq(f *fixture, v url.Values) *http.Request {
	r, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/token", strings.NewReader(v.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return r
}
