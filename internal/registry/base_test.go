package registry_test

import (
	"net/http"
	"testing"
)

func TestBaseAndRouting(t *testing.T) {
	e := newEnv(t)
	r := e.do(req{method: "GET", path: "/v2/"})
	e.expect(r, http.StatusOK, "")
	if got := r.hdr.Get("Docker-Distribution-API-Version"); got != "registry/2.0" {
		t.Fatalf("Docker-Distribution-API-Version %q", got)
	}
	cases := []struct {
		name   string
		method string
		path   string
		status int
		code   string
	}{
		{"ping HEAD", "HEAD", "/v2/", 200, ""},
		{"ping POST", "POST", "/v2/", 405, "UNSUPPORTED"},
		{"unknown endpoint", "GET", "/v2/foo/bar", 404, "NAME_UNKNOWN"},
		{"uppercase name", "GET", "/v2/Foo/tags/list", 400, "NAME_INVALID"},
		{"name with double dot (cleaned by the mux, then unknown)", "GET", "/v2/a/../b/tags/list", 404, "NAME_UNKNOWN"},
		{"encoded slash", "GET", "/v2/a%2Fb/tags/list", 400, "NAME_INVALID"},
		{"encoded dots", "GET", "/v2/%2e%2e/%2e%2e/tags/list", 400, "NAME_INVALID"},
		{"trailing separator", "GET", "/v2/a-/tags/list", 400, "NAME_INVALID"},
		{"name too long", "GET", "/v2/" + string(make([]byte, 0)) + longName() + "/tags/list", 400, "NAME_INVALID"},
		{"tags POST", "POST", "/v2/a/tags/list", 405, "UNSUPPORTED"},
		{"blob PUT", "PUT", "/v2/a/blobs/sha256:" + zeros64, 405, "UNSUPPORTED"},
		{"manifest PATCH", "PATCH", "/v2/a/manifests/latest", 405, "UNSUPPORTED"},
		{"uploads GET without id", "GET", "/v2/a/blobs/uploads/", 405, "UNSUPPORTED"},
		{"referrers DELETE", "DELETE", "/v2/a/referrers/sha256:" + zeros64, 405, "UNSUPPORTED"},
		{"catalog DELETE", "DELETE", "/v2/_catalog", 405, "UNSUPPORTED"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			e.expect(e.do(req{method: c.method, path: c.path}), c.status, c.code)
		})
	}
}

const zeros64 = "0000000000000000000000000000000000000000000000000000000000000000"

func longName() string {
	b := make([]byte, 0, 300)
	for len(b) < 260 {
		b = append(b, "abcdefghi/"...)
	}
	return string(b) + "z"
}

func TestNestedNames(t *testing.T) {
	for _, repo := range []string{"a", "a/b", "a/b/c", "x.y_z/p--q/r__s", "blobs/manifests/uploads"} {
		t.Run(repo, func(t *testing.T) {
			e := newEnv(t)
			img := e.pushImage(repo, "v1", nil)
			r := e.do(req{method: "GET", path: "/v2/" + repo + "/manifests/v1"})
			e.expect(r, 200, "")
			if string(r.body) != string(img.manifest) {
				t.Fatal("manifest bytes differ")
			}
		})
	}
}
