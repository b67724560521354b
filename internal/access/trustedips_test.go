package access

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/berth-registry/berth/internal/auth"
	"github.com/berth-registry/berth/internal/auth/token"
	"github.com/berth-registry/berth/internal/registry"
)

// TestTrustedIPsOnV2: the ID tokens of a provider with token_trusted_ips, and
// the registry access tokens issued for its identities, are refused on /v2
// from a client address outside the list (the TCP peer, or the forwarded
// client behind a trusted proxy), also when the same credential was
// remembered from a trusted address; each refusal is counted.
func TestTrustedIPsOnV2(t *testing.T) {
	const trusted, untrusted, proxy = "203.0.113.7", "192.0.2.9", "10.0.0.1"
	list := []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}
	svc := trustedIPsTokenService(t, list)
	accessToken := mintAccessToken(t, svc, trusted)

	for _, via := range []string{"peer", "trusted proxy"} {
		for _, tc := range []struct {
			name, header string
			restricted   bool
		}{
			{"Bearer ID token", "Bearer idtoken-gh", true},
			{"Basic provider:ID token", basic("gh", "idtoken-gh"), true},
			{"Bearer registry access token", "Bearer " + accessToken, true},
			{"ID token of a provider without a list", "Bearer idtoken-gl", false},
		} {
			t.Run(via+"/"+tc.name, func(t *testing.T) {
				failures := &LocalFailures{}
				a := &Authenticator{OIDC: expiringOIDC{}, Tokens: svc, TokenService: "berth",
					TrustedIPs: map[string][]netip.Prefix{"gh": list},
					Limiter:    &Limiter{Counter: failures, Max: 100, Window: time.Hour}}
				g := NewGate(&State{Authn: a, Policy: authenticatedOnly(t)}, nil)
				try := func(ip string) error {
					var err error
					h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						_, err = g.Authorize(r.Context(), r, registry.Route{Action: registry.ActionGetManifest, Repo: "a", Reference: "v1"})
					})
					r := httptest.NewRequest("GET", "/v2/a/manifests/v1", nil)
					r.Header.Set("Authorization", tc.header)
					r.RemoteAddr = ip + ":1"
					if via == "trusted proxy" {
						r.RemoteAddr = proxy + ":1"
						r.Header.Set("X-Forwarded-For", ip)
					}
					Proxies{netip.MustParsePrefix("10.0.0.0/8")}.Handler(h).ServeHTTP(httptest.NewRecorder(), r)
					return err
				}
				count := func(ip string) int {
					n, _, _ := failures.AddFailures(context.Background(), ip, 0, time.Hour)
					return n
				}
				// Untrusted first (checked), trusted (remembered), untrusted
				// again (the remembered credential).
				for i, ip := range []string{untrusted, trusted, untrusted} {
					err := try(ip)
					if ip == trusted || !tc.restricted {
						if err != nil {
							t.Fatalf("request %d from %s: %v", i+1, ip, err)
						}
						continue
					}
					var e *registry.Error
					if !errors.Is(err, auth.ErrUntrustedAddress) || !errors.As(err, &e) || e.Code != registry.CodeUnauthorized ||
						e.Message != "client address not in the provider's token_trusted_ips" {
						t.Fatalf("request %d from %s: %v, want 401 for the untrusted address", i+1, ip, err)
					}
				}
				want := 0
				if tc.restricted {
					want = 2
				}
				if n := count(untrusted); n != want {
					t.Errorf("refusals counted for %s: %d, want %d", untrusted, n, want)
				}
				if n := count(trusted); n != 0 {
					t.Errorf("refusals counted for %s: %d", trusted, n)
				}
			})
		}
	}
}

// TestTrustedIPsTokenServiceBasic: the docker token GET (and the password
// grant) authenticate through Authenticator.Basic, which refuses a provider
// login from an untrusted address.
func TestTrustedIPsTokenServiceBasic(t *testing.T) {
	list := []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}
	a := &Authenticator{OIDC: fakeOIDC{}, TrustedIPs: map[string][]netip.Prefix{"gh": list}}
	if _, err := a.Basic(context.Background(), "gh", "idtoken-gh", "203.0.113.7"); err != nil {
		t.Fatalf("trusted: %v", err)
	}
	if _, err := a.Basic(context.Background(), "gh", "idtoken-gh", "192.0.2.9"); !errors.Is(err, auth.ErrUntrustedAddress) || !errors.Is(err, auth.ErrInvalidCredentials) {
		t.Fatalf("untrusted: %v", err)
	}
}

// expiringOIDC is fakeOIDC with ID tokens valid for an hour, so the
// Authenticator remembers them.
type expiringOIDC struct{ fakeOIDC }

func (o expiringOIDC) Verify(ctx context.Context, raw string) (*auth.Identity, error) {
	id, err := o.fakeOIDC.Verify(ctx, raw)
	if err == nil {
		id.Expires = time.Now().Add(time.Hour)
	}
	return id, err
}

func (o expiringOIDC) VerifyFor(ctx context.Context, provider, raw string) (*auth.Identity, error) {
	id, err := o.fakeOIDC.VerifyFor(ctx, provider, raw)
	if err == nil {
		id.Expires = time.Now().Add(time.Hour)
	}
	return id, err
}

// trustedIPsTokenService is a real token service whose ID tokens (fakeOIDC)
// come from a provider restricted to list.
func trustedIPsTokenService(t *testing.T, list []netip.Prefix) *token.Service {
	t.Helper()
	dir := t.TempDir()
	svc, err := token.New(token.Options{
		Service: "berth", KeyFile: dir + "/key.pem", StateDir: dir + "/state", ClientIP: ClientIP,
		VerifyIDToken: fakeOIDC{}.Verify,
		Grant:         func(_ context.Context, _ *auth.Identity, req []auth.Access) []auth.Access { return req },
		LimitsFor: func(id *auth.Identity) token.Limits {
			if id.OIDC != nil && id.OIDC.ProviderName == "gh" {
				return token.Limits{TrustedIPs: list}
			}
			return token.Limits{}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// mintAccessToken exchanges a gh ID token (jwt-bearer) from ip.
func mintAccessToken(t *testing.T, svc *token.Service, ip string) string {
	t.Helper()
	form := url.Values{"grant_type": {token.GrantJWTBearer}, "assertion": {"idtoken-gh"}, "service": {"berth"},
		"scope": {"repository:a:pull"}}
	r := httptest.NewRequest("POST", "/token", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.RemoteAddr = ip + ":1"
	w := httptest.NewRecorder()
	svc.ServeHTTP(w, r)
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || w.Code != 200 || body.AccessToken == "" {
		t.Fatalf("minting an access token: %d %s", w.Code, w.Body)
	}
	return body.AccessToken
}
