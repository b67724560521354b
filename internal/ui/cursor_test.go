package ui

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/berth-registry/berth/internal/storage"
)

var nextLinkRE = regexp.MustCompile(`<a href="([^"]+)" rel="next"`)

// TestRepositoryCursorHidesNames: anonymous users may list public/* only;
// many hidden team-b/* repositories make the list stop at its scan budget.
// Following the pages shows every public repository and never a team-b
// name, and a hand-made cursor tells nothing about hidden names.
func TestRepositoryCursorHidesNames(t *testing.T) {
	e := newEnv(t, false)
	e.ui.scanBudget = 20
	m := benchManifest("x")
	ctx := context.Background()
	put := func(repo string) {
		if err := e.store.PutManifest(ctx, repo, storage.PutManifestRequest{Manifest: m, Tags: []string{"v1"}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range []string{"public/a", "public/b", "public/c"} {
		put(r)
	}
	for i := range 100 {
		put(fmt.Sprintf("team-b/h%04d", i))
	}
	put("zz-public-after/x") // hidden too: public/ is a prefix rule

	b := e.browser()
	var seen []string
	path := "/"
	for pages := 0; path != ""; pages++ {
		if pages > 20 {
			t.Fatal("the pages do not end")
		}
		p := b.get(path)
		if p.status != http.StatusOK {
			t.Fatalf("GET %s: status %d\n%s", path, p.status, p.body)
		}
		p.lacks(t, "team-b", "h00", "zz-public")
		for _, r := range []string{"public/a", "public/b", "public/c"} {
			if strings.Contains(p.body, ">"+r+"<") {
				seen = append(seen, r)
			}
		}
		path = ""
		if m := nextLinkRE.FindStringSubmatch(p.body); m != nil {
			path = html.UnescapeString(m[1])
		}
	}
	if strings.Join(seen, " ") != "public/a public/b public/c" {
		t.Fatalf("listed %v", seen)
	}

	// A cursor naming a hidden repository is refused the same way whether it
	// exists or not; a tampered opaque cursor too.
	exists := b.get("/?after=team-b/h0042")
	missing := b.get("/?after=team-b/h9999")
	// (The pages differ only where they repeat their own address.)
	same := strings.ReplaceAll(exists.body, "h0042", "hNNNN") == strings.ReplaceAll(missing.body, "h9999", "hNNNN")
	if exists.status != http.StatusBadRequest || missing.status != exists.status || !same {
		t.Fatalf("hidden cursors: existing %d, missing %d; bodies equal: %v\n%s", exists.status, missing.status,
			same, exists.body)
	}
	for _, c := range []string{"AAAA", "not base64!", strings.Repeat("A", 80), e.ui.sealCursor("team-b/h0042") + "A"} {
		if p := b.get("/?cursor=" + c); p.status != http.StatusBadRequest {
			t.Fatalf("cursor %q: status %d", c, p.status)
		}
	}
	// A visible name is a fine cursor.
	b.get("/?after=public/a").has(t, ">public/b<")
}
