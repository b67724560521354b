package policy

import (
	"context"
	"fmt"
	"testing"
)

func BenchmarkDecide20Rules(b *testing.B) {
	rules := make([]string, 0, 20)
	for i := range 19 {
		rules = append(rules, fmt.Sprintf(`identity.oidc != null && identity.oidc.claims["repository"] == "myorg/repo%d" && request.action == "push"`, i))
	}
	rules = append(rules, `identity.oidc != null && identity.oidc.provider_name == "github-actions" && identity.oidc.claims["ref"] == "refs/heads/main" && identity.oidc.claims["repository"].matches("^myorg/(api|web|worker)$")`)
	e, err := Compile(Config{Repositories: map[string]*Source{"production": {Rules: rules}}})
	if err != nil {
		b.Fatal(err)
	}
	in := Input{
		Identity: &Identity{ID: "oidc:github-actions:x", Username: "x", ClientIP: "10.1.2.3", OIDC: &OIDC{ProviderName: "github-actions",
			Claims: map[string]any{"repository": "myorg/api", "ref": "refs/heads/main", "actor": "someone", "sub": "repo:myorg/api:ref:refs/heads/main"}}},
		Request: Request{Action: "push", Operation: "put-manifest", Repository: "production/api", Reference: "v1"},
	}
	ctx := context.Background()
	if d := e.Decide(ctx, in); !d.Allowed || d.Rule != 19 {
		b.Fatalf("got %+v", d)
	}
	b.ReportAllocs()
	for b.Loop() {
		e.Decide(ctx, in)
	}
}

// The seed's Complete Example: one rule for production.
func BenchmarkDecideCompleteExample(b *testing.B) {
	e := mustCompile(b, completeExample(false))
	in := Input{Identity: gha(ghaClaims()), Request: push("production/api")}
	ctx := context.Background()
	if d := e.Decide(ctx, in); !d.Allowed {
		b.Fatalf("got %+v", d)
	}
	b.ReportAllocs()
	for b.Loop() {
		e.Decide(ctx, in)
	}
}
