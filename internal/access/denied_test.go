package access

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/berth-registry/berth/internal/auth"
	"github.com/berth-registry/berth/internal/policy"
	"github.com/berth-registry/berth/internal/registry"
)

// deniedTokens verifies "berth_at_denied": pull on a and b granted; push on
// a, pull on c and the catalog asked for and refused.
type deniedTokens struct{}

func (deniedTokens) IsBerthToken(raw string) bool { return strings.HasPrefix(raw, "berth_") }
func (deniedTokens) VerifyAccessToken(_ context.Context, raw string) (*auth.Identity, error) {
	if raw != "berth_at_denied" {
		return nil, auth.ErrInvalidCredentials
	}
	return &auth.Identity{ID: "user:alice", Username: "alice",
		Access: []auth.Access{{Type: "repository", Name: "a", Actions: []string{"pull"}}, {Type: "repository", Name: "b", Actions: []string{"pull"}}},
		Denied: []auth.Access{{Type: "repository", Name: "a", Actions: []string{"push"}}, {Type: "repository", Name: "c", Actions: []string{"pull"}},
			{Type: "registry", Name: "catalog", Actions: []string{"*"}}},
	}, nil
}
func (deniedTokens) VerifySessionToken(context.Context, string, string) (*auth.Identity, error) {
	return nil, auth.ErrInvalidCredentials
}

// TestTokenRefusedScopeIs403: what a client asked the token service for and
// the policies refused is answered 403 DENIED with the policies' wording;
// what it never asked for stays 401 insufficient_scope, so it comes back for
// a wider token.
func TestTokenRefusedScopeIs403(t *testing.T) {
	pullOnly, err := policy.Compile(policy.Config{Global: &policy.Source{Rules: []string{
		`request.operation == "list-catalog" || (request.action == "pull" && request.repository != "c")`}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		policy *policy.Engine
		rt     registry.Route
		code   registry.Code
		want   string // in the message (403) or the challenge (401)
	}{
		{"refused push", pullOnly, registry.Route{Action: registry.ActionStartUpload, Repo: "a"}, registry.CodeDenied, "alice may not push a"},
		{"refused push of a manifest", pullOnly, registry.Route{Action: registry.ActionPutManifest, Repo: "a", Reference: "v1"}, registry.CodeDenied, "alice may not push a"},
		{"refused pull", pullOnly, registry.Route{Action: registry.ActionGetManifest, Repo: "c", Reference: "v1"}, registry.CodeDenied, "alice may not pull c"},
		{"mount from a refused source", pullOnly, registry.Route{Action: registry.ActionMountBlob, Repo: "a", From: "c"}, registry.CodeDenied, "alice may not push a"},
		{"never asked: delete", pullOnly, registry.Route{Action: registry.ActionDeleteManifest, Repo: "a", Reference: "v1"}, registry.CodeUnauthorized, `error="insufficient_scope"`},
		{"never asked: push to b", pullOnly, registry.Route{Action: registry.ActionStartUpload, Repo: "b"}, registry.CodeUnauthorized, `error="insufficient_scope"`},
		{"never asked: another repository", pullOnly, registry.Route{Action: registry.ActionGetManifest, Repo: "d"}, registry.CodeUnauthorized, `scope="repository:d:pull"`},
		{"refused, allowed since", authenticatedOnly(t), registry.Route{Action: registry.ActionStartUpload, Repo: "a"}, registry.CodeUnauthorized, `error="insufficient_scope"`},
		{"granted", pullOnly, registry.Route{Action: registry.ActionGetManifest, Repo: "a", Reference: "v1"}, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewGate(&State{Authn: &Authenticator{Tokens: deniedTokens{}, TokenService: "berth"}, Policy: tc.policy}, nil)
			r := httptest.NewRequest("POST", "/v2/", nil)
			r.Header.Set("Authorization", "Bearer berth_at_denied")
			_, err := g.Authorize(r.Context(), r, tc.rt)
			if tc.code == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var re *registry.Error
			if !errors.As(err, &re) || re.Code != tc.code {
				t.Fatalf("err %v, want %s", err, tc.code)
			}
			got := re.Message
			if tc.code == registry.CodeUnauthorized {
				got = re.Header.Get("WWW-Authenticate")
			}
			if !strings.Contains(got, tc.want) {
				t.Fatalf("%q lacks %q", got, tc.want)
			}
		})
	}
}
