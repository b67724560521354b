package registry_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/berth-registry/berth/internal/registry"

	"github.com/opencontainers/go-digest"
)

func TestTagsList(t *testing.T) {
	// setup is each subtest's registry: one image in r tagged a to e.
	setup := func(t *testing.T) *env {
		e := newEnv(t)
		img := e.pushImage("r", "a", nil)
		for _, tag := range []string{"e", "c", "b", "d"} {
			e.expect(putManifest(e, "r", tag, mtManifest, img.manifest), 201, "")
		}
		return e
	}
	all := []string{"a", "b", "c", "d", "e"}
	cases := []struct {
		query string
		want  []string
		link  string
	}{
		{"", all, ""},
		{"?n=2", []string{"a", "b"}, `</v2/r/tags/list?last=b&n=2>; rel="next"`},
		{"?n=2&last=b", []string{"c", "d"}, `</v2/r/tags/list?last=d&n=2>; rel="next"`},
		{"?n=2&last=d", []string{"e"}, ""},
		{"?n=5", all, ""},
		{"?n=0", []string{}, ""},
		{"?last=c", []string{"d", "e"}, ""},
		{"?last=zzz", []string{}, ""},
	}
	for _, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			e := setup(t)
			r := e.do(req{method: "GET", path: "/v2/r/tags/list" + c.query})
			e.expect(r, 200, "")
			var tl struct {
				Name string   `json:"name"`
				Tags []string `json:"tags"`
			}
			if err := json.Unmarshal(r.body, &tl); err != nil {
				t.Fatal(err)
			}
			if tl.Name != "r" || !slices.Equal(tl.Tags, c.want) || tl.Tags == nil {
				t.Fatalf("got %s, want %v", r.body, c.want)
			}
			if r.hdr.Get("Link") != c.link {
				t.Fatalf("Link %q, want %q", r.hdr.Get("Link"), c.link)
			}
		})
	}
	e := setup(t)
	e.expect(e.do(req{method: "GET", path: "/v2/unknown/tags/list"}), 404, "NAME_UNKNOWN")
	e.expect(e.do(req{method: "GET", path: "/v2/r/tags/list?n=-1"}), 400, "")
	e.expect(e.do(req{method: "GET", path: "/v2/r/tags/list?n=abc"}), 400, "")
}

func TestCatalog(t *testing.T) {
	e := newEnv(t)
	var names []string
	for i := range 5 {
		n := fmt.Sprintf("ns/repo%d", i)
		e.pushImage(n, "v", nil)
		names = append(names, n)
	}
	var got []string
	path := "/v2/_catalog?n=2"
	for pages := 0; path != ""; pages++ {
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		r := e.do(req{method: "GET", path: path})
		e.expect(r, 200, "")
		var c struct {
			Repositories []string `json:"repositories"`
		}
		if err := json.Unmarshal(r.body, &c); err != nil {
			t.Fatal(err)
		}
		got = append(got, c.Repositories...)
		path = ""
		if l := r.hdr.Get("Link"); l != "" {
			path = l[1 : len(l)-len(`>; rel="next"`)]
		}
	}
	if !slices.Equal(got, names) {
		t.Fatalf("catalog %v, want %v", got, names)
	}
}

func TestReferrers(t *testing.T) {
	e := newEnv(t)
	subject := e.pushImage("r", "v1", nil)
	subjDesc := map[string]any{"mediaType": mtManifest, "digest": subject.digest.String(), "size": len(subject.manifest)}
	empty := []byte("{}")
	e.pushBlob("r", empty)
	sig := randomBytes(t, 64)
	e.pushBlob("r", sig)
	artifact := func(at string, ann string) []byte {
		b, _ := json.Marshal(map[string]any{
			"schemaVersion": 2, "mediaType": mtManifest, "artifactType": at,
			"config":      map[string]any{"mediaType": "application/vnd.oci.empty.v1+json", "digest": digest.FromBytes(empty).String(), "size": 2},
			"layers":      []any{map[string]any{"mediaType": "application/octet-stream", "digest": digest.FromBytes(sig).String(), "size": len(sig)}},
			"subject":     subjDesc,
			"annotations": map[string]string{"n": ann},
		})
		return b
	}
	a1 := artifact("application/vnd.example.sig", "1")
	a2 := artifact("application/vnd.example.sbom", "2")
	for _, a := range [][]byte{a1, a2} {
		r := putManifest(e, "r", digest.FromBytes(a).String(), mtManifest, a)
		e.expect(r, 201, "")
		if r.hdr.Get("OCI-Subject") != subject.digest.String() {
			t.Fatalf("OCI-Subject %q", r.hdr.Get("OCI-Subject"))
		}
	}
	// A referrer whose subject does not exist (yet) is accepted.
	missingSubj := artifact("application/vnd.example.sig", "3")
	missingSubj = []byte(strings.Replace(string(missingSubj), subject.digest.String(), digest.FromString("absent").String(), 1))
	e.expect(putManifest(e, "r", digest.FromBytes(missingSubj).String(), mtManifest, missingSubj), 201, "")

	type idx struct {
		SchemaVersion int    `json:"schemaVersion"`
		MediaType     string `json:"mediaType"`
		Manifests     []struct {
			MediaType    string            `json:"mediaType"`
			Digest       string            `json:"digest"`
			Size         int               `json:"size"`
			ArtifactType string            `json:"artifactType"`
			Annotations  map[string]string `json:"annotations"`
		} `json:"manifests"`
	}
	get := func(q string) (idx, http.Header) {
		r := e.do(req{method: "GET", path: "/v2/r/referrers/" + subject.digest.String() + q})
		e.expect(r, 200, "")
		if r.hdr.Get("Content-Type") != mtIndex {
			t.Fatalf("Content-Type %q", r.hdr.Get("Content-Type"))
		}
		var x idx
		if err := json.Unmarshal(r.body, &x); err != nil {
			t.Fatal(err)
		}
		return x, r.hdr
	}
	x, h := get("")
	if len(x.Manifests) != 2 || x.SchemaVersion != 2 || x.MediaType != mtIndex || h.Get("OCI-Filters-Applied") != "" {
		t.Fatalf("referrers %+v", x)
	}
	for _, m := range x.Manifests {
		if m.Size == 0 || m.MediaType != mtManifest || m.ArtifactType == "" || m.Annotations["n"] == "" {
			t.Fatalf("descriptor %+v", m)
		}
	}
	x, h = get("?artifactType=application/vnd.example.sbom")
	if len(x.Manifests) != 1 || x.Manifests[0].Digest != digest.FromBytes(a2).String() || h.Get("OCI-Filters-Applied") != "artifactType" {
		t.Fatalf("filtered %+v %v", x, h)
	}
	// unknown subject and unknown repository: empty index
	r := e.do(req{method: "GET", path: "/v2/nope/referrers/" + subject.digest.String()})
	e.expect(r, 200, "")
	e.expect(e.do(req{method: "GET", path: "/v2/r/referrers/sha256:bad"}), 400, "DIGEST_INVALID")
	// deleting a referrer removes it from the list
	e.expect(e.do(req{method: "DELETE", path: "/v2/r/manifests/" + digest.FromBytes(a1).String()}), 202, "")
	x, _ = get("")
	if len(x.Manifests) != 1 {
		t.Fatalf("after delete %+v", x)
	}
}

func TestCatalogFiltered(t *testing.T) {
	e := newEnv(t, func(o *registry.Options) {
		o.CanList = func(_ context.Context, repo string) bool { return strings.HasPrefix(repo, "pub/") }
	})
	for _, n := range []string{"a", "pub/a", "pub/b", "z", "pub/c"} {
		e.pushImage(n, "v", nil)
	}
	r := e.do(req{method: "GET", path: "/v2/_catalog?n=2"})
	e.expect(r, 200, "")
	if !strings.Contains(string(r.body), `["pub/a","pub/b"]`) || r.hdr.Get("Link") == "" {
		t.Fatalf("page 1 %s %v", r.body, r.hdr.Get("Link"))
	}
	r = e.do(req{method: "GET", path: "/v2/_catalog?n=2&last=pub/b"})
	if !strings.Contains(string(r.body), `["pub/c"]`) || r.hdr.Get("Link") != "" {
		t.Fatalf("page 2 %s %v", r.body, r.hdr.Get("Link"))
	}
}
