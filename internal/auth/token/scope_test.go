package token

import (
	"reflect"
	"strings"
	"testing"

	"github.com/berth-registry/berth/internal/auth"
)

func TestParseScope(t *testing.T) {
	repo := func(name string, acts ...string) auth.Access {
		return auth.Access{Type: "repository", Name: name, Actions: acts}
	}
	for _, tc := range []struct {
		in   string
		want []auth.Access
	}{
		{"", []auth.Access{}},
		{"   ", []auth.Access{}},
		{"repository:a/b:pull,push", []auth.Access{repo("a/b", "pull", "push")}},
		{"repository:localhost:5000/a:pull", []auth.Access{repo("localhost:5000/a", "pull")}},
		{"repository:[::1]:5000/a/b:push,pull", []auth.Access{repo("[::1]:5000/a/b", "push", "pull")}},
		{"registry:catalog:*", []auth.Access{{Type: "registry", Name: "catalog", Actions: []string{"*"}}}},
		{"repository(plugin):a/b:pull", []auth.Access{{Type: "repository(plugin)", Name: "a/b", Actions: []string{"pull"}}}},
		{"repository:a:pull repository:b:push\trepository:a:push,pull", []auth.Access{repo("a", "pull", "push"), repo("b", "push")}},
		{"repository:a:pull,pull", []auth.Access{repo("a", "pull")}},
		{"repository:a::pull", []auth.Access{repo("a:", "pull")}},
	} {
		got, err := ParseScope(tc.in)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseScope(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{
		"repository", "repository:a", "repository:a:", "repository::pull", ":a:pull",
		"Repository:a:pull", "repository:a:pull,", "repository:a:PULL", "repo(x:a:pull", "repo():a:pull",
		"repository:a\x00b:pull", "repository:é:pull", "repository:a:pu ll:x" + strings.Repeat(",x", 20),
		"repository:" + strings.Repeat("a", maxScopeName+1) + ":pull",
		"repository:a:" + strings.Repeat("p,", maxScopeActions) + "p",
	} {
		if got, err := ParseScope(bad); err == nil {
			t.Errorf("ParseScope(%q) = %+v, want error", bad, got)
		}
	}
	var many []string
	for i := range maxScopes + 1 {
		many = append(many, "repository:r"+strings.Repeat("x", i)+":pull")
	}
	if _, err := ParseScope(strings.Join(many, " ")); err == nil {
		t.Error("too many scopes accepted")
	}
}

func TestIntersect(t *testing.T) {
	req := []auth.Access{
		{Type: "repository", Name: "a", Actions: []string{"pull", "push", "delete"}},
		{Type: "repository", Name: "b", Actions: []string{"pull"}},
		{Type: "registry", Name: "catalog", Actions: []string{"*"}},
		{Type: "repository", Name: "c", Actions: []string{"*"}},
	}
	granted := []auth.Access{
		{Type: "repository", Name: "a", Actions: []string{"push", "pull"}},
		{Type: "repository", Name: "b", Actions: []string{"*"}},
		{Type: "repository", Name: "c", Actions: []string{"pull", "push"}}, // "*" asked: what was granted
		{Type: "repository", Name: "z", Actions: []string{"*"}},            // not requested
		{Type: "registry", Name: "catalog", Actions: []string{"*"}},
	}
	want := []auth.Access{
		{Type: "repository", Name: "a", Actions: []string{"pull", "push"}},
		{Type: "repository", Name: "b", Actions: []string{"pull"}},
		{Type: "registry", Name: "catalog", Actions: []string{"*"}},
		{Type: "repository", Name: "c", Actions: []string{"pull", "push"}},
	}
	if got := intersect(req, granted); !reflect.DeepEqual(got, want) {
		t.Errorf("intersect = %+v", got)
	}
	if got := intersect(req, nil); got == nil || len(got) != 0 {
		t.Errorf("intersect(nil) = %#v", got)
	}
}
