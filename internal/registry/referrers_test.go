package registry_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/berth-registry/berth/internal/registry"
	"github.com/opencontainers/go-digest"
)

// referrerFixture is a subject image in repo "r" with the blobs an artifact
// manifest needs.
type referrerFixture struct {
	e       *env
	subject testImage
	empty   digest.Digest
	sig     []byte
}

func newReferrerFixture(e *env) *referrerFixture {
	e.t.Helper()
	f := &referrerFixture{e: e, subject: e.pushImage("r", "v1", nil), sig: []byte("signature")}
	f.empty = e.pushBlob("r", []byte("{}"))
	e.pushBlob("r", f.sig)
	return f
}

// artifact is a referrer of the subject with one annotation "n" of annSize
// bytes starting with id (so every artifact differs).
func (f *referrerFixture) artifact(artifactType, id string, annSize int) []byte {
	ann := id
	if pad := annSize - len(id); pad > 0 {
		ann += strings.Repeat("a", pad)
	}
	b, err := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": mtManifest, "artifactType": artifactType,
		"config":      map[string]any{"mediaType": "application/vnd.oci.empty.v1+json", "digest": f.empty.String(), "size": 2},
		"layers":      []any{map[string]any{"mediaType": "application/octet-stream", "digest": digest.FromBytes(f.sig).String(), "size": len(f.sig)}},
		"subject":     map[string]any{"mediaType": mtManifest, "digest": f.subject.digest.String(), "size": len(f.subject.manifest)},
		"annotations": map[string]string{"n": ann},
	})
	if err != nil {
		f.e.t.Fatal(err)
	}
	return b
}

// push stores an artifact and returns its digest.
func (f *referrerFixture) push(artifactType, id string, annSize int) digest.Digest {
	f.e.t.Helper()
	a := f.artifact(artifactType, id, annSize)
	d := digest.FromBytes(a)
	f.e.expect(putManifest(f.e, "r", d.String(), mtManifest, a), http.StatusCreated, "")
	return d
}

type referrersPage struct {
	SchemaVersion int    `json:"schemaVersion"`
	MediaType     string `json:"mediaType"`
	Manifests     []struct {
		MediaType    string            `json:"mediaType"`
		Digest       digest.Digest     `json:"digest"`
		Size         int               `json:"size"`
		ArtifactType string            `json:"artifactType"`
		Annotations  map[string]string `json:"annotations"`
	} `json:"manifests"`
}

// nextLink returns the target of a Link: <...>; rel="next" header, or "".
func nextLink(t *testing.T, h http.Header) string {
	t.Helper()
	l := h.Get("Link")
	if l == "" {
		return ""
	}
	target, rest, ok := strings.Cut(strings.TrimPrefix(l, "<"), ">")
	if !ok || !strings.HasPrefix(l, "<") || strings.TrimSpace(rest) != `; rel="next"` {
		t.Fatalf("malformed Link header %q", l)
	}
	return target
}

// walkReferrers follows the pages from path and returns them.
func walkReferrers(e *env, path string) ([]referrersPage, []http.Header) {
	e.t.Helper()
	var pages []referrersPage
	var hdrs []http.Header
	for path != "" {
		r := e.do(req{method: "GET", path: path})
		e.expect(r, http.StatusOK, "")
		if ct := r.hdr.Get("Content-Type"); ct != mtIndex {
			e.t.Fatalf("Content-Type %q", ct)
		}
		var p referrersPage
		if err := json.Unmarshal(r.body, &p); err != nil {
			e.t.Fatalf("page %s: %v: %.200s", path, err, r.body)
		}
		if p.SchemaVersion != 2 || p.MediaType != mtIndex || p.Manifests == nil {
			e.t.Fatalf("page %s is not an image index: %.200s", path, r.body)
		}
		pages = append(pages, p)
		hdrs = append(hdrs, r.hdr)
		path = nextLink(e.t, r.hdr)
		if len(pages) > 1000 {
			e.t.Fatal("the pages do not end")
		}
	}
	return pages, hdrs
}

// TestReferrersPagination: a referrers listing is paged by entry count and
// by bytes, the pages (followed through Link rel="next") list every referrer
// once in digest order, and an artifactType filter holds on every page.
func TestReferrersPagination(t *testing.T) {
	e := newEnv(t, func(o *registry.Options) {
		o.ReferrersPageEntries = 3
		o.ReferrersPageBytes = 4 << 10
	})
	f := newReferrerFixture(e)
	const sig, sbom = "application/vnd.example.sig", "application/vnd.example.sbom"
	var all, sigs []digest.Digest
	for i := range 8 {
		at := sbom
		if i%3 == 0 {
			at = sig
		}
		size := 100
		if i == 4 || i == 5 {
			size = 6 << 10 // over the byte bound alone: a page of its own
		}
		d := f.push(at, fmt.Sprint(i), size)
		all = append(all, d)
		if at == sig {
			sigs = append(sigs, d)
		}
	}
	slices.Sort(all)
	slices.Sort(sigs)
	base := "/v2/r/referrers/" + f.subject.digest.String()

	check := func(name, path string, want []digest.Digest, filtered bool) int {
		t.Helper()
		pages, hdrs := walkReferrers(e, path)
		var got []digest.Digest
		for i, p := range pages {
			if len(p.Manifests) == 0 || len(p.Manifests) > 3 {
				t.Fatalf("%s: page %d has %d entries", name, i, len(p.Manifests))
			}
			b, _ := json.Marshal(p.Manifests)
			if len(p.Manifests) > 1 && len(b) > 4<<10 {
				t.Fatalf("%s: page %d holds %d bytes of descriptors", name, i, len(b))
			}
			for _, m := range p.Manifests {
				if m.Size == 0 || m.MediaType != mtManifest || m.ArtifactType == "" || m.Annotations["n"] == "" {
					t.Fatalf("%s: descriptor %+v", name, m)
				}
				if filtered && m.ArtifactType != sig {
					t.Fatalf("%s: page %d lists artifactType %s", name, i, m.ArtifactType)
				}
				got = append(got, m.Digest)
			}
			if fa := hdrs[i].Get("OCI-Filters-Applied"); (fa == "artifactType") != filtered {
				t.Fatalf("%s: page %d OCI-Filters-Applied %q", name, i, fa)
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s: pages list %v, want %v", name, got, want)
		}
		return len(pages)
	}
	if n := check("all", base, all, false); n < 4 {
		t.Fatalf("8 referrers (two over the byte bound) in %d pages", n)
	}
	check("filtered", base+"?artifactType="+sig, sigs, true)

	// Nothing after the last one; an unknown subject: one empty page.
	if pages, hdrs := walkReferrers(e, base+"?last="+all[len(all)-1].String()); len(pages) != 1 || len(pages[0].Manifests) != 0 || hdrs[0].Get("Link") != "" {
		t.Fatalf("after the last referrer: %+v", pages)
	}
	if pages, _ := walkReferrers(e, "/v2/r/referrers/"+digest.FromString("none").String()); len(pages) != 1 || len(pages[0].Manifests) != 0 {
		t.Fatalf("unknown subject: %+v", pages)
	}
	e.expect(e.do(req{method: "GET", path: base + "?last=sha256:bad"}), http.StatusBadRequest, "DIGEST_INVALID")
}
