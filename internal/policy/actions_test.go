package policy

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/berth-registry/berth/internal/registry"
)

// op is a request for operation in repo, with its access kind.
func op(operation string) Request {
	return Request{Action: string(registry.Action(operation).Kind()), Operation: operation, Repository: "myorg/api", Method: "GET"}
}

// TestAngosActionNames: rules comparing request.action with Angos's action
// names (request.action is the fine action in Angos, the access kind in
// berth) allow exactly the requests they name. Before the rewrite they
// compiled and never matched, so every request below that wants allowed
// was denied.
func TestAngosActionNames(t *testing.T) {
	admin := &Identity{ID: "user:admin", Username: "admin"}
	main := gha(ghaClaims())
	for _, c := range []struct {
		rule    string
		id      *Identity
		allowed []string // operations allowed; every other one is denied
	}{
		{`request.action == 'get-manifest'`, nil, []string{"get-manifest"}},
		{`'get-manifest' == request.action`, nil, []string{"get-manifest"}},
		// Angos's anonymous read, cel-expressions.md.
		{`request.action in ['get-manifest', 'get-blob']`, nil, []string{"get-blob", "get-manifest"}},
		{`request.action in ['get-manifest', 'get-blob', 'list-tags']`, nil, []string{"get-blob", "get-manifest", "list-tags"}},
		// Angos's main-branch push example.
		{`identity.oidc != null &&
  identity.oidc.claims['ref'] == 'refs/heads/main' &&
  request.action.startsWith('put-')`, main, []string{"put-manifest"}},
		{`identity.username == 'admin' && request.action == 'delete-manifest'`, admin, []string{"delete-manifest"}},
		{`request.action != 'delete-manifest'`, admin, without(Operations, "delete-manifest")},
		{`!(request.action in ['delete-manifest', 'delete-blob'])`, admin, without(Operations, "delete-manifest", "delete-blob")},
		// Angos's names for the upload steps.
		{`request.action in ['start-upload', 'update-upload', 'complete-upload']`, admin, []string{"finish-upload", "patch-upload", "start-upload"}},
		{`request.action.endsWith('-manifest')`, admin, []string{"delete-manifest", "get-manifest", "put-manifest"}},
		{`request.action.contains('upload')`, admin, []string{"cancel-upload", "finish-upload", "get-upload", "patch-upload", "start-upload"}},
		{`request.action.matches('^(get|put)-manifest$')`, admin, []string{"get-manifest", "put-manifest"}},
		{`matches(request.action, '^complete-')`, admin, []string{"finish-upload"}},
		{`request.action.startsWith('get-')`, admin, []string{"get-blob", "get-manifest", "get-referrers", "get-upload"}},
		// Kinds and action names in one list.
		{`request.action in ['pull', 'put-manifest']`, admin, []string{"get-blob", "get-manifest", "get-referrers", "list-catalog", "list-tags", "put-manifest"}},
		// Inside a macro (the comparison is also in the macro's source record).
		{`['a'].exists(x, request.action == 'get-manifest' && x == 'a')`, admin, []string{"get-manifest"}},
		{`identity.oidc != null && identity.oidc.claims[?'ref'].orValue('') == 'refs/heads/main' && request.action == 'put-manifest'`, main, []string{"put-manifest"}},
		// berth's own vocabulary is unchanged.
		{`request.action == 'pull'`, admin, []string{"get-blob", "get-manifest", "get-referrers", "list-catalog", "list-tags"}},
		{`request.action.startsWith('pu')`, admin, without(Operations, "delete-manifest", "delete-blob")},
		{`request.operation == 'patch-upload'`, admin, []string{"patch-upload"}},
	} {
		e := mustCompile(t, Config{Global: &Source{Rules: []string{c.rule}}})
		var got []string
		for _, o := range Operations {
			d := decide(t, e, Input{Identity: c.id, Request: op(o)})
			if d.Allowed {
				got = append(got, o)
			}
		}
		slices.Sort(c.allowed)
		slices.Sort(got)
		if !slices.Equal(got, c.allowed) {
			t.Errorf("%s\nallows %q\nwant    %q", c.rule, got, c.allowed)
		}
		// Explain shows the rule as written.
		ex := e.Explain(context.Background(), Input{Identity: c.id, Request: op("get-manifest")})
		if r := ex.Policies[0].Rules[0]; r.Expr != c.rule {
			t.Errorf("Explain shows %q, want the rule as written %q", r.Expr, c.rule)
		}
	}
}

func without(all []string, drop ...string) []string {
	var out []string
	for _, s := range all {
		if !slices.Contains(drop, s) {
			out = append(out, s)
		}
	}
	return out
}

// TestNeverMatchingActionRefused: a rule comparing request.action (or
// request.operation) with a value it never takes is refused at load, at
// the literal, with the valid values listed. Before, these compiled and
// silently denied.
func TestNeverMatchingActionRefused(t *testing.T) {
	for _, c := range []struct {
		rule, value string
		col         int
	}{
		{`request.action == 'healthz'`, `"healthz"`, 19},
		{`request.action == ''`, `""`, 19},
		{`request.action != 'pul'`, `"pul"`, 19},
		{`'get-api-version' == request.action`, `"get-api-version"`, 1},
		{`request.action in ['pull', 'list-jobs']`, `"list-jobs"`, 28},
		{`request.action.startsWith('post-')`, `"post-"`, 27},
		{`request.action.endsWith('-job')`, `"-job"`, 25},
		{`request.action.contains('ui-')`, `"ui-"`, 25},
		{`request.action.matches('^metrics$')`, `"^metrics$"`, 24},
		{`matches(request.action, '^zz')`, `"^zz"`, 25},
		{"identity.username == 'a' &&\n  request.action == 'get-token'", `"get-token"`, 21},
		{`request.operation == 'pull'`, `"pull"`, 22},
		{`request.operation.startsWith('update-')`, `"update-"`, 30},
		{`request.operation in ['get-manifest', 'ping']`, `"ping"`, 39},
		{`identity.groups.exists(g, request.action == 'get-tags' && g == 'x')`, `"get-tags"`, 45},
	} {
		_, err := Compile(Config{Global: &Source{Rules: []string{"true", c.rule}}})
		var ce *CompileError
		if !errors.As(err, &ce) || len(ce.Problems) != 1 {
			t.Errorf("%s: err = %v, want one problem", c.rule, err)
			continue
		}
		p := ce.Problems[0]
		if p.Rule != 1 || p.Column != c.col || !strings.Contains(p.Message, c.value) || !strings.Contains(p.Message, "can never be true") {
			t.Errorf("%s: problem %+v, want rule 1, column %d, naming %s", c.rule, p, c.col, c.value)
		}
		for _, valid := range Operations {
			if !strings.Contains(p.Message, `"`+valid+`"`) {
				t.Errorf("%s: message does not list %s: %s", c.rule, valid, p.Message)
			}
		}
		if strings.Contains(c.rule, "request.action") {
			for _, valid := range append(slices.Clone(Kinds), "update-upload", "complete-upload") {
				if !strings.Contains(p.Message, `"`+valid+`"`) {
					t.Errorf("%s: message does not list %s: %s", c.rule, valid, p.Message)
				}
			}
		}
	}

	// An action name in a list that is not all literals cannot be rewritten.
	_, err := Compile(Config{Global: &Source{Rules: []string{`request.action in ['get-manifest', identity.username]`}}})
	if err == nil || !strings.Contains(err.Error(), "compare request.operation with action names") {
		t.Errorf("mixed list: err = %v", err)
	}
	// Several problems are all reported.
	_, err = Compile(Config{Global: &Source{Rules: []string{`request.action == 'x' || request.action == 'y'`}}})
	if !errors.As(err, new(*CompileError)) || strings.Count(err.Error(), "can never be true") != 2 {
		t.Errorf("two bad literals: %v", err)
	}
}

// TestOperationsAreRegistryActions: Operations and Kinds are the actions
// and kinds the gate passes to policies: every registry action but ping,
// which never reaches a policy.
func TestOperationsAreRegistryActions(t *testing.T) {
	all := []registry.Action{
		registry.ActionGetBlob, registry.ActionDeleteBlob, registry.ActionStartUpload, registry.ActionMountBlob,
		registry.ActionGetUpload, registry.ActionPatchUpload, registry.ActionFinishUpload, registry.ActionCancelUpload,
		registry.ActionGetManifest, registry.ActionPutManifest, registry.ActionDeleteManifest, registry.ActionListTags,
		registry.ActionGetReferrers, registry.ActionListCatalog,
	}
	var ops, kinds []string
	for _, a := range all {
		ops = append(ops, string(a))
		kinds = append(kinds, string(a.Kind()))
	}
	slices.Sort(ops)
	got := slices.Sorted(slices.Values(Operations))
	if !slices.Equal(got, ops) {
		t.Errorf("Operations = %q, want %q", got, ops)
	}
	slices.Sort(kinds)
	if k := slices.Compact(kinds); !slices.Equal(k, slices.Sorted(slices.Values(Kinds))) {
		t.Errorf("Kinds = %q, want %q", Kinds, k)
	}
	if registry.ActionPing.Kind() != registry.KindNone {
		t.Errorf("ping has a kind: request.action could be %q", registry.ActionPing.Kind())
	}
}
