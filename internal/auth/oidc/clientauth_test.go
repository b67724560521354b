package oidc

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/berth-registry/berth/internal/auth"
	"github.com/berth-registry/berth/internal/devissuer"
)

// An issuer like an in-cluster API server: discovery and JWKS need a bearer
// token and a client certificate. The token file is read again when keys
// are fetched again, so a rotated (projected) token is used.
func TestIssuerRequiresBearerAndClientCert(t *testing.T) {
	iss := newIssuer(t, devissuer.Options{KeyType: devissuer.EC, TLS: true, RequireClientCert: true, BearerToken: "sa-token-1"})
	dir := t.TempDir()
	certPEM, keyPEM, err := iss.ClientCertificate()
	if err != nil {
		t.Fatal(err)
	}
	tokenFile, certFile, keyFile := filepath.Join(dir, "token"), filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	for f, b := range map[string][]byte{tokenFile: []byte("sa-token-1\n"), certFile: certPEM, keyFile: keyPEM} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pc := ProviderConfig{Name: "cluster", Preset: "kubernetes", Issuer: iss.URL(), Audiences: []string{"berth"},
		CACertPEM: iss.CAPEM(), BearerTokenFile: tokenFile, ClientCertFile: certFile, ClientKeyFile: keyFile}
	v := newVerifier(t, Options{UnknownKidCooldown: time.Nanosecond}, pc)
	ctx := context.Background()
	if _, err := v.Verify(ctx, iss.Mint(map[string]any{"aud": "berth", "sub": "a"})); err != nil {
		t.Fatal(err)
	}
	if iss.Unauthorized() != 0 || iss.JWKSFetches() != 1 {
		t.Fatalf("%d unauthorized, %d JWKS fetches", iss.Unauthorized(), iss.JWKSFetches())
	}
	// The token rotates; a new signing key makes the key set be fetched
	// again, with the new token.
	iss.SetBearerToken("sa-token-2")
	if err := os.WriteFile(tokenFile, []byte("sa-token-2"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := iss.Rotate(true); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, iss.Mint(map[string]any{"aud": "berth", "sub": "b"})); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	if iss.Unauthorized() != 0 || iss.JWKSFetches() != 2 {
		t.Fatalf("%d unauthorized, %d JWKS fetches", iss.Unauthorized(), iss.JWKSFetches())
	}

	// Without the token, or without the certificate: the issuer refuses.
	noToken := pc
	noToken.Name, noToken.BearerTokenFile = "no-token", ""
	_, err = newVerifier(t, Options{}, noToken).Verify(ctx, iss.Mint(map[string]any{"aud": "berth"}))
	if !errors.Is(err, auth.ErrUnavailable) || iss.Unauthorized() != 1 {
		t.Fatalf("without a token: %v, %d unauthorized", err, iss.Unauthorized())
	}
	noCert := pc
	noCert.Name, noCert.ClientCertFile, noCert.ClientKeyFile = "no-cert", "", ""
	fetches := iss.DiscoveryFetches()
	_, err = newVerifier(t, Options{}, noCert).Verify(ctx, iss.Mint(map[string]any{"aud": "berth"}))
	if !errors.Is(err, auth.ErrUnavailable) || iss.DiscoveryFetches() != fetches {
		t.Fatalf("without a client certificate: %v (the TLS handshake must fail)", err)
	}
}

// The bearer token goes to the issuer's origin and a configured jwks_uri's,
// never elsewhere: not to a discovered jwks_uri on another host, not after a
// redirect, not to the same host on another port or scheme.
func TestBearerTokenStaysWithItsHosts(t *testing.T) {
	got := map[string]string{}
	record := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got[name] = r.Header.Get("Authorization")
			if r.URL.Path == "/redirect" {
				http.Redirect(w, r, r.URL.Query().Get("to"), http.StatusFound)
			}
		})
	}
	issuer := httptest.NewServer(record("issuer"))
	defer issuer.Close()
	jwks := httptest.NewServer(record("jwks"))
	defer jwks.Close()
	other := httptest.NewServer(record("other"))
	defer other.Close()
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: newBearerTransport(http.DefaultTransport, tokenFile, issuer.URL+"/", jwks.URL+"/keys")}
	for _, u := range []string{issuer.URL + "/.well-known/openid-configuration", jwks.URL + "/keys", other.URL + "/keys",
		issuer.URL + "/redirect?to=" + other.URL + "/stolen"} {
		resp, err := c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	want := map[string]string{"issuer": "Bearer secret", "jwks": "Bearer secret", "other": ""}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s got Authorization %q, want %q", k, got[k], w)
		}
	}
}

func TestInCluster(t *testing.T) {
	env := func(host string) func(string) string {
		return func(k string) string {
			if k == "KUBERNETES_SERVICE_HOST" {
				return host
			}
			return ""
		}
	}
	all := func(string) bool { return true }
	cases := []struct {
		preset, issuer, host string
		exists               func(string) bool
		want                 string
	}{
		{"kubernetes", "https://kubernetes.default.svc.cluster.local", "10.96.0.1", all, ServiceAccountTokenFile},
		{"kubernetes", "https://kubernetes.default.svc", "10.96.0.1", all, ServiceAccountTokenFile},
		{"kubernetes", "https://10.96.0.1:443", "10.96.0.1", all, ServiceAccountTokenFile},
		{"kubernetes", "https://kubernetes.default.svc", "", all, ""},                                         // not in a cluster
		{"kubernetes", "https://oidc.eks.example.com/id/ABC", "10.96.0.1", all, ""},                           // an external issuer
		{"kubernetes", "http://kubernetes.default.svc", "10.96.0.1", all, ""},                                 // not https
		{"generic", "https://kubernetes.default.svc", "10.96.0.1", all, ""},                                   // not the preset
		{"kubernetes", "https://kubernetes.default.svc", "10.96.0.1", func(string) bool { return false }, ""}, // no token mounted
		{"kubernetes", "https://kubernetes.default.svc.evil.example", "10.96.0.1", all, ""},                   // another domain: set explicitly
		{"kubernetes", "https://[fd00::1]:6443", "fd00::1", all, ServiceAccountTokenFile},
	}
	for _, c := range cases {
		tok, _ := InCluster(c.preset, c.issuer, env(c.host), c.exists)
		if tok != c.want {
			t.Errorf("InCluster(%s, %s, host %q) = %q, want %q", c.preset, c.issuer, c.host, tok, c.want)
		}
	}
}
