package token

import (
	"context"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func FuzzParseScope(f *testing.F) {
	for _, s := range []string{
		"repository:a/b:pull,push", "repository:localhost:5000/a:pull", "registry:catalog:*",
		"repository(plugin):a:pull repository:a:push", "a:b:c:d", "::", "repository:a:", "x:y:z,z,,",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseScope(s)
		if err != nil {
			return
		}
		for _, a := range got {
			if a.Type == "" || a.Name == "" || len(a.Actions) == 0 {
				t.Fatalf("ParseScope(%q) has an empty part: %+v", s, a)
			}
			if strings.ContainsAny(a.Name, " \t\n") || !utf8.ValidString(a.Name) {
				t.Fatalf("name %q", a.Name)
			}
		}
		// Formatting and re-parsing is the identity.
		again, err := ParseScope(scopeString(got))
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("round trip of %q: %+v vs %+v (%v)", s, got, again, err)
		}
	})
}

// FuzzTokenRequest throws arbitrary queries, bodies and credentials at the
// handler: it must never panic and never answer 500.
func FuzzTokenRequest(f *testing.F) {
	seeds := []struct {
		post                     bool
		path, query, ctype, body string
		user, pass               string
	}{
		{false, "/token", "service=berth&scope=repository:alice/app:pull&offline_token=true", "", "", "alice", testPassword},
		{false, "/token", "scope=repository:public/x:pull", "", "", "", ""},
		{false, "/token", "service=x&scope=%zz", "", "", "alice", "x"},
		{true, "/token", "", "application/x-www-form-urlencoded", "grant_type=password&username=alice&password=" + testPassword + "&access_type=offline", "", ""},
		{true, "/token", "", "application/x-www-form-urlencoded", "grant_type=refresh_token&refresh_token=berth_rt_aaaaaaaaaaaaaaaaaaaa_" + strings.Repeat("b", 52), "", ""},
		{true, "/token", "", "application/x-www-form-urlencoded", "grant_type=urn:ietf:params:oauth:grant-type:token-exchange&subject_token=" + testIDToken + "&subject_token_type=urn:ietf:params:oauth:token-type:id_token&requested_token_type=urn:berth:token-type:session", "", ""},
		{true, "/token", "", "application/x-www-form-urlencoded", "grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=huge&scope=repository:org/app:pull", "", ""},
		{true, "/token/revoke", "", "application/x-www-form-urlencoded; charset=utf-8", "token=berth_st_x", "", ""},
		{true, "/token", "", "multipart/form-data; boundary=x", "--x--", "", ""},
		{true, "/token", "", "application/x-www-form-urlencoded", "%", "", ""},
	}
	for _, s := range seeds {
		f.Add(s.post, s.path, s.query, s.ctype, s.body, s.user, s.pass)
	}
	fx := newFixture(f, nil) // one service for all inputs
	f.Fuzz(func(t *testing.T, post bool, path, query, ctype, body, user, pass string) {
		method := http.MethodGet
		if post {
			method = http.MethodPost
		}
		req := httptest.NewRequestWithContext(context.Background(), method, "/token", strings.NewReader(body))
		if strings.HasSuffix(path, "/revoke") {
			req.URL.Path = "/token/revoke"
		}
		req.URL.RawQuery = query
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		if user != "" || pass != "" {
			req.SetBasicAuth(user, pass)
		}
		rec := httptest.NewRecorder()
		fx.svc.ServeHTTP(rec, req)
		if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("%s %s?%s: %d %s", method, req.URL.Path, query, rec.Code, rec.Body)
		}
		if rec.Code == http.StatusServiceUnavailable && user != "down" && !strings.Contains(body, "down") && !strings.Contains(query, "down") {
			t.Fatalf("unexpected 503: %s", rec.Body)
		}
	})
}
