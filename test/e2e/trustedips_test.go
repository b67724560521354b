package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestAuthTrustedIPsEveryPath: with token_trusted_ips set on a provider, a
// real berth behind a trusted proxy refuses that provider's ID token from an
// address outside the list on every login and exchange and on /v2, and
// refuses there the registry access tokens issued for it; from inside the
// list all of them work.
func TestAuthTrustedIPsEveryPath(t *testing.T) {
	iss := newIssuer(t)
	p := startBerthServer(t, t.TempDir(), `trusted_proxies = ["127.0.0.1"]`, fmt.Sprintf(`
[auth.oidc.ci]
provider = "generic"
issuer = %q
audiences = ["berth"]
token_trusted_ips = ["203.0.113.0/24"]
[global.access_policy]
rules = ['identity.id != "anonymous"']
`, iss.URL()))
	const trusted, untrusted = "203.0.113.7", "192.0.2.9"
	idTok := ciToken(iss, 30*time.Minute)
	do := func(ip, method, path string, form url.Values, hdr map[string]string) (*http.Response, []byte) {
		t.Helper()
		h := map[string]string{"X-Forwarded-For": ip}
		for k, v := range hdr {
			h[k] = v
		}
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
			h["Content-Type"] = "application/x-www-form-urlencoded"
		}
		return doReq(t, method, p.url(path), body, h)
	}
	post := func(kv ...string) url.Values {
		f := url.Values{"service": {"berth"}, "scope": {"repository:a/b:pull"}}
		for i := 0; i+1 < len(kv); i += 2 {
			f.Set(kv[i], kv[i+1])
		}
		return f
	}
	// An access token issued from the trusted address.
	res, body := do(trusted, "GET", "/token?service=berth&scope=repository:a/b:pull", nil, polBasic("ci", idTok))
	wantStatus(t, "access token from a trusted address", res, body, http.StatusOK)
	var tok struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(body, &tok); err != nil || tok.Token == "" {
		t.Fatalf("token answer %s", body)
	}
	const exchange, jwtBearer, idType = "urn:ietf:params:oauth:grant-type:token-exchange",
		"urn:ietf:params:oauth:grant-type:jwt-bearer", "urn:ietf:params:oauth:token-type:id_token"
	for _, c := range []struct {
		name, method, path string
		form               url.Values
		hdr                map[string]string
		refused            int
	}{
		{"docker token GET with a provider login", "GET", "/token?service=berth&scope=repository:a/b:pull", nil, polBasic("ci", idTok), 401},
		{"password grant with the ID token", "POST", "/token", post("grant_type", "password", "username", "ci", "password", idTok), nil, 400},
		{"RFC 8693 token exchange", "POST", "/token", post("grant_type", exchange, "subject_token", idTok, "subject_token_type", idType), nil, 400},
		{"jwt-bearer grant", "POST", "/token", post("grant_type", jwtBearer, "assertion", idTok), nil, 400},
		{"/v2 with Bearer ID token", "GET", "/v2/", nil, map[string]string{"Authorization": "Bearer " + idTok}, 401},
		{"/v2 with Basic provider:ID token", "GET", "/v2/", nil, polBasic("ci", idTok), 401},
		{"/v2 with the access token", "GET", "/v2/", nil, map[string]string{"Authorization": "Bearer " + tok.Token}, 401},
	} {
		t.Run(c.name, func(t *testing.T) {
			res, body := do(trusted, c.method, c.path, c.form, c.hdr)
			wantStatus(t, "from "+trusted, res, body, http.StatusOK)
			res, body = do(untrusted, c.method, c.path, c.form, c.hdr)
			wantStatus(t, "from "+untrusted, res, body, c.refused)
			if !strings.Contains(string(body), "client address not in the provider's token_trusted_ips") {
				t.Errorf("from %s: body %s does not say why", untrusted, body)
			}
		})
	}
}
