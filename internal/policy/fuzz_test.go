package policy

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// FuzzCompileRule: arbitrary rule text never panics, at compile time nor
// when a compiled rule is evaluated, and a failing rule never allows.
func FuzzCompileRule(f *testing.F) {
	for _, s := range []string{
		seed.global, seed.myapp, seed.releases, seed.actors, seed.prodComplete,
		`identity.oidc.claims['missing'] == 'x'`,
		`identity.oidc.claims[?'x'].orValue('') == ''`,
		`ip_in_cidr(identity.client_ip, "10.0.0.0/8")`,
		`cidr("::/0").containsIP(identity.client_ip)`,
		`identity.groups.exists(g, g.matches("^a"))`,
		`request.tags.all(t, t.size() < 10) && request.namespace.split("/").size() > 1`,
		`(((((((((((true)))))))))))`,
		`1/0 == 1`,
		`"\xff"`,
		"identity.username == 'a' // comment",
		`[1,2,3].map(x, x * 2)[5] == 1`,
		`dyn(identity).nope`,
		`type(identity.oidc) == null_type`,
		`request.action.startsWith('put-') && identity.oidc != null`,
		`request.action in ['pull', 'get-manifest', 'update-upload']`,
		`['a'].exists(x, request.action != 'delete-manifest')`,
		`request.action.matches('^(get|put)-')`,
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	claims := map[string]any{"repository": "myorg/api", "ref": "refs/heads/main", "n": float64(1), "l": []any{"a", 1.0}, "m": map[string]any{"k": nil}}
	inputs := []Input{
		{},
		{Identity: gha(claims), Request: push("production/api")},
		{Identity: staticUser, Request: Request{Action: "pull", Tags: []string{"v1"}}},
	}
	f.Fuzz(func(t *testing.T, rule string, defaultAllow bool) {
		e, err := Compile(Config{Global: &Source{DefaultAllow: defaultAllow, Rules: []string{rule, "false"}}})
		if err != nil {
			var ce *CompileError
			if !errors.As(err, &ce) || len(ce.Problems) == 0 {
				t.Fatalf("err = %v, want *CompileError", err)
			}
			for _, p := range ce.Problems {
				if p.Key != "global.access_policy" || p.Rule != 0 || p.Message == "" {
					t.Fatalf("problem %+v", p)
				}
			}
			return
		}
		for _, in := range inputs {
			// Decide and Explain evaluate separately: a rule iterating
			// over a map may see another order, so they are not compared.
			d := e.Decide(context.Background(), in)
			if strings.Contains(d.Reason, "fail closed") && d.Allowed {
				t.Fatalf("a failing rule allowed: %+v", d)
			}
			ex := e.Explain(context.Background(), in)
			if len(ex.Policies) != 1 || len(ex.Policies[0].Rules) != 2 {
				t.Fatalf("Explain: %+v", ex)
			}
		}
	})
}
