package access

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/berth-registry/berth/internal/auth"
	"github.com/berth-registry/berth/internal/registry"
	"github.com/berth-registry/berth/internal/testutil"
)

// jsonClaimsTokens verifies "berth_at_json" as a registry access token
// does: its OIDC claims decoded from JSON, numbers as float64.
type jsonClaimsTokens struct{ fakeTokens }

func (jsonClaimsTokens) VerifyAccessToken(_ context.Context, raw string) (*auth.Identity, error) {
	if raw != "berth_at_json" {
		return nil, auth.ErrInvalidCredentials
	}
	var claims map[string]any
	if err := json.Unmarshal([]byte(`{"iss":"https://issuer.example","exp":1767225600,"run_attempt":2,"ratio":0.5,"nested":{"id":42},"list":[7,1.25]}`), &claims); err != nil {
		return nil, err
	}
	return &auth.Identity{ID: "oidc:gh:x", Username: "x", OIDC: &auth.OIDC{ProviderName: "gh", Claims: claims},
		Access: []auth.Access{{Type: "repository", Name: "a", Actions: []string{"pull"}}}}, nil
}

// The debug line of an OIDC identity prints numeric claims as integers (it
// printed exp:1.7672256e+09), in text and JSON logs, and the identity's
// claims stay as decoded (policies see the same values).
func TestOIDCIdentityLogIntegers(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			var buf testutil.Buffer
			opts := &slog.HandlerOptions{Level: slog.LevelDebug}
			h := slog.Handler(slog.NewTextHandler(&buf, opts))
			if format == "json" {
				h = slog.NewJSONHandler(&buf, opts)
			}
			a := &Authenticator{Tokens: jsonClaimsTokens{}, TokenService: "berth"}
			g := NewGate(&State{Authn: a, Policy: authenticatedOnly(t)}, slog.New(h))
			r := httptest.NewRequest("GET", "/v2/a/manifests/v1", nil)
			r.Header.Set("Authorization", "Bearer berth_at_json")
			ctx, err := g.Authorize(r.Context(), r, registry.Route{Action: registry.ActionGetManifest, Repo: "a", Reference: "v1"})
			if err != nil {
				t.Fatal(err)
			}
			log := buf.String()
			want := []string{"exp:1767225600", "run_attempt:2", "ratio:0.5", "nested:map[id:42]", "list:[7 1.25]"}
			if format == "json" {
				want = []string{`"exp":1767225600`, `"run_attempt":2`, `"ratio":0.5`, `"nested":{"id":42}`, `"list":[7,1.25]`}
			}
			for _, w := range want {
				if !strings.Contains(log, w) {
					t.Errorf("log lacks %s:\n%s", w, log)
				}
			}
			if strings.Contains(log, "e+09") {
				t.Errorf("a float in the log:\n%s", log)
			}
			if exp := auth.FromContext(ctx).OIDC.Claims["exp"]; exp != float64(1767225600) {
				t.Errorf("the identity's exp claim is %T %v, want it unchanged (float64)", exp, exp)
			}
		})
	}
}
