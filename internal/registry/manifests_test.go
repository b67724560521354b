package registry_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/berth-registry/berth/internal/registry"
	"github.com/opencontainers/go-digest"
)

const (
	mtManifest = "application/vnd.oci.image.manifest.v1+json"
	mtIndex    = "application/vnd.oci.image.index.v1+json"
	mtDocker   = "application/vnd.docker.distribution.manifest.v2+json"
	mtList     = "application/vnd.docker.distribution.manifest.list.v2+json"
)

func putManifest(e *env, repo, ref, ct string, body []byte) resp {
	e.t.Helper()
	return e.do(req{method: "PUT", path: "/v2/" + repo + "/manifests/" + ref, body: body, hdr: map[string]string{"Content-Type": ct}})
}

func index(mt string, children ...testImage) []byte {
	var ms []any
	for _, c := range children {
		ms = append(ms, map[string]any{"mediaType": mtManifest, "digest": c.digest.String(), "size": len(c.manifest),
			"platform": map[string]string{"os": "linux", "architecture": "amd64"}})
	}
	if ms == nil {
		ms = []any{}
	}
	b, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": mt, "manifests": ms})
	return b
}

func TestManifests(t *testing.T) {
	img := newTestImage(t, nil)
	// setup is each subtest's registry: img in r tagged v1.
	setup := func(t *testing.T) *env {
		e := newEnv(t, func(o *registry.Options) { o.MaxManifestSize = 64 << 10 })
		e.putImage("r", "v1", img)
		return e
	}

	t.Run("get by tag and digest, byte for byte", func(t *testing.T) {
		e := setup(t)
		for _, ref := range []string{"v1", img.digest.String()} {
			for _, m := range []string{"GET", "HEAD"} {
				r := e.do(req{method: m, path: "/v2/r/manifests/" + ref})
				e.expect(r, 200, "")
				if r.hdr.Get("Content-Type") != mtManifest || r.hdr.Get("Docker-Content-Digest") != img.digest.String() {
					t.Fatalf("%s %s headers %v", m, ref, r.hdr)
				}
				if r.hdr.Get("Content-Length") != itoa(len(img.manifest)) {
					t.Fatalf("Content-Length %q", r.hdr.Get("Content-Length"))
				}
				if m == "GET" && !bytes.Equal(r.body, img.manifest) {
					t.Fatal("body differs")
				}
			}
		}
	})

	cfg, layer := img.config, img.layer
	good := imageManifest(cfg, layer, nil)
	cases := []struct {
		name   string
		ref    string
		ct     string
		body   []byte
		status int
		code   string
	}{
		{"malformed json", "bad", mtManifest, []byte(`{"schemaVersion":2,`), 400, "MANIFEST_INVALID"},
		{"not an object", "bad", mtManifest, []byte(`[1,2]`), 400, "MANIFEST_INVALID"},
		{"wrong schema version", "bad", mtManifest, []byte(`{"schemaVersion":1,"mediaType":"` + mtManifest + `","config":{"mediaType":"a","digest":"` + digest.FromBytes(cfg).String() + `","size":1},"layers":[]}`), 400, "MANIFEST_INVALID"},
		{"no config", "bad", mtManifest, []byte(`{"schemaVersion":2,"mediaType":"` + mtManifest + `","layers":[]}`), 400, "MANIFEST_INVALID"},
		{"content type mismatch", "bad", mtIndex, good, 400, "MANIFEST_INVALID"},
		{"unsupported media type", "bad", "application/vnd.docker.distribution.manifest.v1+json", []byte(`{"schemaVersion":2}`), 400, "MANIFEST_INVALID"},
		{"unknown layer", "bad", mtManifest, imageManifest(cfg, []byte("not pushed"), nil), 400, "MANIFEST_BLOB_UNKNOWN"},
		{"unknown config", "bad", mtManifest, imageManifest([]byte("not pushed"), layer, nil), 400, "MANIFEST_BLOB_UNKNOWN"},
		{"invalid layer digest", "bad", mtManifest, []byte(strings.Replace(string(good), digest.FromBytes(layer).String(), "sha256:zz", 1)), 400, "MANIFEST_INVALID"},
		{"size disagrees", "bad", mtManifest, []byte(strings.Replace(string(good), `"size":1024`, `"size":1023`, 1)), 400, "MANIFEST_INVALID"},
		{"digest mismatch", digest.FromString("x").String(), mtManifest, good, 400, "DIGEST_INVALID"},
		{"invalid tag", "-bad", mtManifest, good, 400, "MANIFEST_INVALID"},
		{"tag too long", strings.Repeat("a", 129), mtManifest, good, 400, "MANIFEST_INVALID"},
		{"invalid digest reference", "sha256:abc", mtManifest, good, 400, "DIGEST_INVALID"},
		{"too large", "big", mtManifest, bytes.Repeat([]byte(" "), 65<<10), 413, "SIZE_INVALID"},
		{"index with unknown child", "bad", mtIndex, index(mtIndex, testImage{digest: digest.FromString("nope"), manifest: []byte("nope")}), 400, "MANIFEST_BLOB_UNKNOWN"},
		{"index", "idx", mtIndex, index(mtIndex, img), 201, ""},
		{"empty index", "empty-idx", mtIndex, index(mtIndex), 201, ""},
		{"docker manifest list", "list", mtList, index(mtList, img), 201, ""},
		{"docker schema2", "docker", mtDocker, []byte(strings.Replace(string(good), mtManifest, mtDocker, 1)), 201, ""},
		{"no mediaType field uses Content-Type", "nomt", mtManifest, []byte(strings.Replace(string(good), `"mediaType":"`+mtManifest+`",`, "", 1)), 201, ""},
		{"content type with parameters", "params", mtManifest + "; charset=utf-8", good, 201, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := setup(t)
			e.expect(putManifest(e, "r", c.ref, c.ct, c.body), c.status, c.code)
			if c.status >= 400 && validRef(c.ref) {
				e.expect(e.do(req{method: "GET", path: "/v2/r/manifests/" + c.ref}), 404, "MANIFEST_UNKNOWN")
			}
		})
	}

	t.Run("tag param", func(t *testing.T) {
		e := setup(t)
		other := imageManifest(cfg, layer, map[string]any{"annotations": map[string]string{"x": "y"}})
		od := digest.FromBytes(other)
		r := e.do(req{method: "PUT", path: "/v2/r/manifests/" + od.String() + "?tag=a&tag=b", body: other, hdr: map[string]string{"Content-Type": mtManifest}})
		e.expect(r, 201, "")
		if got := r.hdr.Values("OCI-Tag"); len(got) != 2 {
			t.Fatalf("OCI-Tag %v", got)
		}
		for _, tag := range []string{"a", "b"} {
			r := e.do(req{method: "GET", path: "/v2/r/manifests/" + tag})
			e.expect(r, 200, "")
			if r.hdr.Get("Docker-Content-Digest") != od.String() {
				t.Fatalf("tag %s -> %s", tag, r.hdr.Get("Docker-Content-Digest"))
			}
		}
		e.expect(e.do(req{method: "PUT", path: "/v2/r/manifests/" + od.String() + "?tag=-x", body: other, hdr: map[string]string{"Content-Type": mtManifest}}), 400, "MANIFEST_INVALID")
	})

	t.Run("sha512 manifest", func(t *testing.T) {
		e := setup(t)
		other := imageManifest(cfg, layer, map[string]any{"annotations": map[string]string{"alg": "512"}})
		d := digest.SHA512.FromBytes(other)
		r := putManifest(e, "r", d.String(), mtManifest, other)
		e.expect(r, 201, "")
		if r.hdr.Get("Docker-Content-Digest") != d.String() {
			t.Fatalf("digest %s", r.hdr.Get("Docker-Content-Digest"))
		}
		e.expect(e.do(req{method: "GET", path: "/v2/r/manifests/" + d.String()}), 200, "")
	})

	t.Run("missing", func(t *testing.T) {
		e := setup(t)
		e.expect(e.do(req{method: "GET", path: "/v2/r/manifests/nope"}), 404, "MANIFEST_UNKNOWN")
		e.expect(e.do(req{method: "GET", path: "/v2/r/manifests/" + digest.FromString("nope").String()}), 404, "MANIFEST_UNKNOWN")
		e.expect(e.do(req{method: "GET", path: "/v2/never/manifests/latest"}), 404, "")
		e.expect(e.do(req{method: "GET", path: "/v2/r/manifests/sha256:short"}), 400, "DIGEST_INVALID")
		e.expect(e.do(req{method: "DELETE", path: "/v2/r/manifests/nope"}), 404, "MANIFEST_UNKNOWN")
	})

	// A reference that is not a valid tag names no manifest: GET and HEAD
	// answer 404 MANIFEST_UNKNOWN (distribution-spec v1.1.1 conformance,
	// ".INVALID_MANIFEST_NAME"); a PUT to it stays 400 MANIFEST_INVALID.
	t.Run("invalid tag reference", func(t *testing.T) {
		e := setup(t)
		for _, ref := range []string{".INVALID_MANIFEST_NAME", "-bad", strings.Repeat("a", 129)} {
			e.expect(e.do(req{method: "GET", path: "/v2/r/manifests/" + ref}), 404, "MANIFEST_UNKNOWN")
			r := e.do(req{method: "HEAD", path: "/v2/r/manifests/" + ref})
			e.expect(r, 404, "")
			if len(r.body) != 0 {
				t.Fatalf("HEAD %s has a body: %s", ref, r.body)
			}
			e.expect(putManifest(e, "r", ref, mtManifest, imageManifest(cfg, layer, nil)), 400, "MANIFEST_INVALID")
		}
	})

	t.Run("delete tag keeps manifest", func(t *testing.T) {
		e := setup(t)
		e.pushImage("d", "keep", nil)
		im := e.pushImage("d", "gone", nil)
		e.expect(e.do(req{method: "DELETE", path: "/v2/d/manifests/gone"}), 202, "")
		e.expect(e.do(req{method: "GET", path: "/v2/d/manifests/gone"}), 404, "MANIFEST_UNKNOWN")
		e.expect(e.do(req{method: "GET", path: "/v2/d/manifests/" + im.digest.String()}), 200, "")
	})

	t.Run("delete digest removes tags", func(t *testing.T) {
		e := setup(t)
		im := e.pushImage("d", "x", nil)
		e.expect(e.do(req{method: "DELETE", path: "/v2/d/manifests/" + im.digest.String()}), 202, "")
		e.expect(e.do(req{method: "GET", path: "/v2/d/manifests/" + im.digest.String()}), 404, "MANIFEST_UNKNOWN")
		e.expect(e.do(req{method: "GET", path: "/v2/d/manifests/x"}), 404, "MANIFEST_UNKNOWN")
		r := e.do(req{method: "GET", path: "/v2/d/tags/list"})
		if strings.Contains(string(r.body), `"x"`) {
			t.Fatalf("tag x still listed: %s", r.body)
		}
	})

	t.Run("overwrite tag", func(t *testing.T) {
		e := setup(t)
		a := e.pushImage("o", "t", nil)
		b := e.pushImage("o", "t", nil)
		r := e.do(req{method: "GET", path: "/v2/o/manifests/t"})
		if r.hdr.Get("Docker-Content-Digest") != b.digest.String() || a.digest == b.digest {
			t.Fatal("tag not moved")
		}
	})
}

func validRef(s string) bool {
	return s != "" && !strings.HasPrefix(s, "-") && len(s) <= 128 && !strings.Contains(s, ":")
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func TestManifestStatusCodesHead(t *testing.T) {
	e := newEnv(t)
	r := e.do(req{method: "HEAD", path: "/v2/r/manifests/latest"})
	if r.status != http.StatusNotFound || len(r.body) != 0 {
		t.Fatalf("HEAD missing: %d %q", r.status, r.body)
	}
}

func TestImmutableTags(t *testing.T) {
	e := newEnv(t, func(o *registry.Options) {
		o.Immutable = func(repo, tag string) bool { return repo == "locked" && tag != "latest" }
	})
	a := e.pushImage("locked", "v1", nil)                                     // first push works
	e.expect(putManifest(e, "locked", "v1", mtManifest, a.manifest), 201, "") // same digest: fine
	b := e.pushImage("locked", "other", nil)
	r := putManifest(e, "locked", "v1", mtManifest, b.manifest)
	e.expect(r, http.StatusConflict, "DENIED")
	if !strings.Contains(string(r.body), "immutable") {
		t.Fatalf("message %s", r.body)
	}
	// via ?tag= too
	e.expect(e.do(req{method: "PUT", path: "/v2/locked/manifests/" + b.digest.String() + "?tag=v1", body: b.manifest,
		hdr: map[string]string{"Content-Type": mtManifest}}), http.StatusConflict, "DENIED")
	got := e.do(req{method: "GET", path: "/v2/locked/manifests/v1"})
	if got.hdr.Get("Docker-Content-Digest") != a.digest.String() {
		t.Fatal("immutable tag moved")
	}
	// excluded tag and other repositories move freely
	e.expect(putManifest(e, "locked", "latest", mtManifest, a.manifest), 201, "")
	e.expect(putManifest(e, "locked", "latest", mtManifest, b.manifest), 201, "")
	e.pushImage("free", "v1", nil)
	e.pushImage("free", "v1", nil)
}
