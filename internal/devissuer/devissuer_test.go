package devissuer

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

func get(t *testing.T, c *http.Client, url string, hdr ...string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func jwks(t *testing.T, i *Issuer) jose.JSONWebKeySet {
	t.Helper()
	code, body := get(t, i.Client(), i.JWKSURL())
	if code != 200 {
		t.Fatalf("jwks: %d", code)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		t.Fatal(err)
	}
	return set
}

func claimsOf(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(b, &m)
	return m
}

func TestDiscoveryTLSPathAndVerify(t *testing.T) {
	iss, err := New(Options{KeyType: EC, TLS: true, Path: "/gitlab"})
	if err != nil {
		t.Fatal(err)
	}
	defer iss.Close()
	if !strings.HasPrefix(iss.URL(), "https://127.0.0.1:") || !strings.HasSuffix(iss.URL(), "/gitlab") {
		t.Fatalf("URL = %s", iss.URL())
	}
	if len(iss.CAPEM()) == 0 {
		t.Fatal("no CA")
	}
	code, body := get(t, iss.Client(), iss.URL()+"/.well-known/openid-configuration")
	var doc map[string]any
	json.Unmarshal(body, &doc)
	if code != 200 || doc["issuer"] != iss.URL() || doc["jwks_uri"] != iss.JWKSURL() {
		t.Fatalf("discovery %d %v", code, doc)
	}
	set := jwks(t, iss)
	if len(set.Keys) != 1 || set.Keys[0].KeyID != iss.KeyID() || set.Keys[0].Algorithm != "ES256" {
		t.Fatalf("jwks %+v", set.Keys)
	}
	tok := iss.Mint(map[string]any{"sub": "s", "nbf": Omit})
	jws, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jws.Verify(&set.Keys[0]); err != nil {
		t.Fatal(err)
	}
	c := claimsOf(t, tok)
	if c["iss"] != iss.URL() || c["sub"] != "s" || c["exp"] == nil || c["nbf"] != nil {
		t.Fatalf("claims %v", c)
	}
	if iss.DiscoveryFetches() != 1 || iss.JWKSFetches() != 1 {
		t.Fatalf("counters %d %d", iss.DiscoveryFetches(), iss.JWKSFetches())
	}
	iss.SetDown(true)
	if code, _ := get(t, iss.Client(), iss.JWKSURL()); code != http.StatusServiceUnavailable {
		t.Fatalf("down: %d", code)
	}
}

func TestRotateAndHostileMints(t *testing.T) {
	iss, err := New(Options{}) // RSA
	if err != nil {
		t.Fatal(err)
	}
	defer iss.Close()
	first := iss.KeyID()
	if err := iss.Rotate(false); err != nil {
		t.Fatal(err)
	}
	if n := len(jwks(t, iss).Keys); n != 2 {
		t.Fatalf("after rotate: %d keys", n)
	}
	if _, err := iss.MintWith(nil, nil, MintOptions{KeyID: first}); err != nil {
		t.Fatal("old key should still sign:", err)
	}
	if err := iss.Rotate(true); err != nil {
		t.Fatal(err)
	}
	if n := len(jwks(t, iss).Keys); n != 1 {
		t.Fatalf("after rotate(drop): %d keys", n)
	}
	if _, err := iss.MintWith(nil, nil, MintOptions{KeyID: first}); err == nil {
		t.Fatal("dropped key still signs")
	}

	none, _ := iss.MintWith(nil, nil, MintOptions{Sign: SignNone})
	hdr, _ := base64.RawURLEncoding.DecodeString(strings.Split(none, ".")[0])
	if !strings.HasSuffix(none, ".") || !strings.Contains(string(hdr), `"alg":"none"`) {
		t.Fatalf("alg none token %q", none)
	}
	hs, _ := iss.MintWith(nil, nil, MintOptions{Sign: SignHMACPublicKey})
	if _, err := jose.ParseSignedCompact(hs, []jose.SignatureAlgorithm{jose.HS256}); err != nil {
		t.Fatal(err)
	}
	good := iss.Mint(nil)
	bad, _ := iss.MintWith(nil, nil, MintOptions{Sign: SignCorrupt})
	key := jwks(t, iss).Keys[0]
	for tok, ok := range map[string]bool{good: true, bad: false} {
		jws, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.RS256})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := jws.Verify(&key); (err == nil) != ok {
			t.Fatalf("verify ok=%v err=%v", ok, err)
		}
	}
}

func TestGitHubTokenEndpoint(t *testing.T) {
	iss, err := New(Options{KeyType: EC, GitHubClaims: map[string]any{"repository": "acme/app", "environment": "prod", "ref_protected": Omit}})
	if err != nil {
		t.Fatal(err)
	}
	defer iss.Close()
	u, tok := iss.GitHubTokenRequest()
	if code, _ := get(t, iss.Client(), u+"&audience=berth", "Authorization", "bearer wrong"); code != http.StatusUnauthorized {
		t.Fatalf("bad request token: %d", code)
	}
	code, body := get(t, iss.Client(), u+"&audience=berth", "Authorization", "Bearer "+tok)
	var resp struct{ Value string }
	json.Unmarshal(body, &resp)
	if code != 200 || resp.Value == "" {
		t.Fatalf("%d %s", code, body)
	}
	c := claimsOf(t, resp.Value)
	if c["aud"] != "berth" || c["repository"] != "acme/app" || c["environment"] != "prod" || c["iss"] != iss.URL() ||
		c["repository_owner"] != "octo-org" || c["ref_protected"] != nil {
		t.Fatalf("claims %v", c)
	}
	_, body = get(t, iss.Client(), u, "Authorization", "Bearer "+tok)
	json.Unmarshal(body, &resp)
	if aud := claimsOf(t, resp.Value)["aud"]; aud != "https://github.com/octo-org" {
		t.Fatalf("default aud %v", aud)
	}
}
