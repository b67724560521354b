package token

import (
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/berth-registry/berth/internal/auth"
)

// TestTokenRecordsRefusedScopes: the access token lists what was asked for
// and refused (actions the registry checks only), so the registry can tell
// "refused" (403) from "never asked" (401).
func TestTokenRecordsRefusedScopes(t *testing.T) {
	f := newFixture(t, nil)
	q := url.Values{"service": {"berth"}, "scope": {
		"repository:alice/app:pull,push",
		"repository:bob/x:pull,push,frobnicate",
		"repository:public/x:*",
		"registry:catalog:*",
	}}
	r := f.get(q.Encode(), "alice", testPassword)
	wantStatus(t, r, 200)
	id := f.verify(r.str("token"))
	want := []auth.Access{
		{Type: "repository", Name: "bob/x", Actions: []string{"pull", "push"}},
		{Type: "repository", Name: "public/x", Actions: []string{"push", "delete"}},
		{Type: "registry", Name: "catalog", Actions: []string{"*"}},
	}
	if !reflect.DeepEqual(id.Denied, want) {
		t.Errorf("denied %+v\nwant %+v", id.Denied, want)
	}
	// Everything granted: no denied claim at all.
	r = f.get("service=berth&scope=repository:alice/app:pull,push", "alice", testPassword)
	if id := f.verify(r.str("token")); id.Denied != nil || strings.Contains(r.raw, "denied") {
		t.Errorf("denied %+v with everything granted", id.Denied)
	}
	// So many refusals that the token would exceed its size cap: issued
	// without them (a hint, never a reason to refuse a token).
	var many []string
	for i := range 120 {
		many = append(many, fmt.Sprintf("repository:%s/%03d:pull,push", strings.Repeat("n", 60), i))
	}
	r = f.get(url.Values{"service": {"berth"}, "scope": {strings.Join(many, " ")}}.Encode(), "alice", testPassword)
	wantStatus(t, r, 200)
	if id := f.verify(r.str("token")); id.Denied != nil {
		t.Errorf("%d denied entries in a token over the size cap", len(id.Denied))
	}
}
