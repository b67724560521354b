package e2e

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func ggcrOpts(ctx context.Context) []remote.Option {
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithTransport(http.DefaultTransport),
		remote.WithJobs(2),
		// A registry that answers 5xx must fail the test, not be retried.
		remote.WithRetryStatusCodes(),
	}
}

func mustRef(t testing.TB, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s, name.Insecure)
	if err != nil {
		t.Fatalf("parse reference %q: %v", s, err)
	}
	return r
}

func mustRepo(t testing.TB, s string) name.Repository {
	t.Helper()
	r, err := name.NewRepository(s, name.Insecure)
	if err != nil {
		t.Fatalf("parse repository %q: %v", s, err)
	}
	return r
}

func digestOf(t testing.TB, d interface{ Digest() (v1.Hash, error) }) v1.Hash {
	t.Helper()
	h, err := d.Digest()
	if err != nil {
		t.Fatalf("digest: %v", err)
	}
	return h
}

func layerBytes(t testing.TB, l v1.Layer) []byte {
	t.Helper()
	rc, err := l.Compressed()
	if err != nil {
		t.Fatalf("layer.Compressed: %v", err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading layer: %v", err)
	}
	return b
}

// compareImages checks that got (pulled) is want (pushed): digests, raw
// manifest and config, and every layer's bytes.
func compareImages(t testing.TB, what string, want, got v1.Image) {
	t.Helper()
	if w, g := digestOf(t, want), digestOf(t, got); w != g {
		t.Fatalf("%s: manifest digest %s, want %s", what, g, w)
	}
	wm, err := want.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	gm, err := got.RawManifest()
	if err != nil {
		t.Fatalf("%s: pulled RawManifest: %v", what, err)
	}
	if !bytes.Equal(wm, gm) {
		t.Fatalf("%s: pulled manifest bytes differ from pushed ones", what)
	}
	wc, _ := want.RawConfigFile()
	gc, err := got.RawConfigFile()
	if err != nil {
		t.Fatalf("%s: pulled config: %v", what, err)
	}
	if !bytes.Equal(wc, gc) {
		t.Fatalf("%s: pulled config bytes differ", what)
	}
	wl, err := want.Layers()
	if err != nil {
		t.Fatal(err)
	}
	gl, err := got.Layers()
	if err != nil {
		t.Fatalf("%s: pulled layers: %v", what, err)
	}
	if len(wl) != len(gl) {
		t.Fatalf("%s: %d layers pulled, want %d", what, len(gl), len(wl))
	}
	for i := range wl {
		wd, gd := digestOf(t, wl[i]), digestOf(t, gl[i])
		if wd != gd {
			t.Fatalf("%s: layer %d digest %s, want %s", what, i, gd, wd)
		}
		wb, gb := layerBytes(t, wl[i]), layerBytes(t, gl[i])
		if !bytes.Equal(wb, gb) {
			t.Fatalf("%s: layer %d (%s): %d bytes pulled differ from the %d pushed", what, i, wd, len(gb), len(wb))
		}
		if sha256Digest(gb) != wd.String() {
			t.Fatalf("%s: layer %d bytes hash to %s, want %s", what, i, sha256Digest(gb), wd)
		}
	}
}

// platformIndex builds an OCI index of n random images, one per platform.
func platformIndex(t testing.TB, plats []v1.Platform) (v1.ImageIndex, []v1.Image) {
	t.Helper()
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	var imgs []v1.Image
	for i := range plats {
		img, err := random.Image(2048+int64(i)*512, 2)
		if err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, img)
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &plats[i]},
		})
	}
	return idx, imgs
}

var testPlatforms = []v1.Platform{
	{OS: "linux", Architecture: "amd64"},
	{OS: "linux", Architecture: "arm64", Variant: "v8"},
	{OS: "linux", Architecture: "s390x"},
}

func is404(err error) bool {
	var te *transport.Error
	return errors.As(err, &te) && te.StatusCode == http.StatusNotFound
}

// TestGGCRRemote pushes and pulls images and an index with
// go-containerregistry's remote package, lists tags and the catalog and
// deletes a manifest.
func TestGGCRRemote(t *testing.T) {
	p := startBerth(t, t.TempDir())
	ctx := context.Background()
	opts := ggcrOpts(ctx)
	reg := p.host()

	// Several images in one repository, plus one in another.
	type pushed struct {
		ref name.Reference
		img v1.Image
	}
	var images []pushed
	for i, tag := range []string{"v1", "v2", "v3"} {
		img, err := random.Image(int64(1024*(i+1)), int64(i+1))
		if err != nil {
			t.Fatal(err)
		}
		images = append(images, pushed{mustRef(t, reg+"/e2e/ggcr/app:"+tag), img})
	}
	other, err := random.Image(4096, 2)
	if err != nil {
		t.Fatal(err)
	}
	images = append(images, pushed{mustRef(t, reg+"/e2e/ggcr/other:latest"), other})
	for _, im := range images {
		if err := remote.Write(im.ref, im.img, opts...); err != nil {
			t.Fatalf("remote.Write %s: %v", im.ref, err)
		}
	}
	for _, im := range images {
		got, err := remote.Image(im.ref, opts...)
		if err != nil {
			t.Fatalf("remote.Image %s: %v", im.ref, err)
		}
		compareImages(t, im.ref.String(), im.img, got)
		// And by digest.
		byDigest := mustRef(t, im.ref.Context().String()+"@"+digestOf(t, im.img).String())
		got, err = remote.Image(byDigest, opts...)
		if err != nil {
			t.Fatalf("remote.Image %s: %v", byDigest, err)
		}
		compareImages(t, byDigest.String(), im.img, got)
	}

	// A multi-platform index.
	idx, children := platformIndex(t, testPlatforms)
	idxRef := mustRef(t, reg+"/e2e/ggcr/app:multi")
	if err := remote.WriteIndex(idxRef, idx, opts...); err != nil {
		t.Fatalf("remote.WriteIndex: %v", err)
	}
	gotIdx, err := remote.Index(idxRef, opts...)
	if err != nil {
		t.Fatalf("remote.Index: %v", err)
	}
	if w, g := digestOf(t, idx), digestOf(t, gotIdx); w != g {
		t.Fatalf("index digest %s, want %s", g, w)
	}
	im, err := gotIdx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != len(children) {
		t.Fatalf("pulled index has %d children, want %d", len(im.Manifests), len(children))
	}
	for i, desc := range im.Manifests {
		if desc.Platform == nil || !desc.Platform.Equals(testPlatforms[i]) {
			t.Fatalf("child %d platform %+v, want %+v", i, desc.Platform, testPlatforms[i])
		}
		child, err := gotIdx.Image(desc.Digest)
		if err != nil {
			t.Fatalf("index child %d (%s): %v", i, desc.Digest, err)
		}
		compareImages(t, "index child "+desc.Platform.String(), children[i], child)
	}
	// Platform resolution through the tag.
	arm, err := remote.Image(idxRef, append(opts, remote.WithPlatform(testPlatforms[1]))...)
	if err != nil {
		t.Fatalf("remote.Image with platform: %v", err)
	}
	compareImages(t, "arm64 by platform", children[1], arm)

	// Tags and catalog.
	tags, err := remote.List(mustRepo(t, reg+"/e2e/ggcr/app"), opts...)
	if err != nil {
		t.Fatalf("remote.List: %v", err)
	}
	slices.Sort(tags)
	if want := []string{"multi", "v1", "v2", "v3"}; !slices.Equal(tags, want) {
		t.Fatalf("tags %q, want %q", tags, want)
	}
	registry, err := name.NewRegistry(reg, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	repos, err := remote.Catalog(ctx, registry, opts...)
	if err != nil {
		t.Fatalf("remote.Catalog: %v", err)
	}
	if want := []string{"e2e/ggcr/app", "e2e/ggcr/other"}; !slices.Equal(repos, want) {
		t.Fatalf("catalog %q, want %q (sorted)", repos, want)
	}
	// Catalog pagination through ggcr's page size.
	paged, err := remote.Catalog(ctx, registry, append(opts, remote.WithPageSize(1))...)
	if err != nil {
		t.Fatalf("remote.Catalog with page size 1: %v", err)
	}
	if !slices.Equal(paged, repos) {
		t.Fatalf("paged catalog %q, want %q", paged, repos)
	}

	// Delete v2 by digest: its manifest is gone, the others stay.
	del := images[1]
	delRef := mustRef(t, del.ref.Context().String()+"@"+digestOf(t, del.img).String())
	if err := remote.Delete(delRef, opts...); err != nil {
		t.Fatalf("remote.Delete %s: %v", delRef, err)
	}
	if _, err := remote.Get(delRef, opts...); !is404(err) {
		t.Fatalf("remote.Get after delete: err %v, want a 404", err)
	}
	if _, err := remote.Head(delRef, opts...); !is404(err) {
		t.Fatalf("remote.Head after delete: err %v, want a 404", err)
	}
	resp, body := doReq(t, http.MethodGet, p.url("/v2/e2e/ggcr/app/manifests/"+digestOf(t, del.img).String()), nil,
		map[string]string{"Accept": string(types.DockerManifestSchema2) + "," + string(types.OCIManifestSchema1)})
	wantStatus(t, "GET deleted manifest", resp, body, http.StatusNotFound)
	if !bytes.Contains(body, []byte("MANIFEST_UNKNOWN")) {
		t.Errorf("GET deleted manifest: body %s, want error code MANIFEST_UNKNOWN", truncate(body, 200))
	}
	if _, err := remote.Get(images[0].ref, opts...); err != nil {
		t.Fatalf("v1 after deleting v2: %v", err)
	}
	// A second delete of the same digest is a 404 too.
	if err := remote.Delete(delRef, opts...); !is404(err) {
		t.Fatalf("second remote.Delete: err %v, want a 404", err)
	}
}

// TestCrossRepoManifestMount does what the docker CLI does when it pushes a
// manifest list to a repository: the child manifests (and their blobs) are
// mounted from the repository that has them, then the index is PUT by tag.
func TestCrossRepoManifestMount(t *testing.T) {
	p := startBerth(t, t.TempDir())
	ctx := context.Background()
	opts := ggcrOpts(ctx)
	reg := p.host()
	const repoA, repoB = "e2e/mount/a", "e2e/mount/b"

	idx, children := platformIndex(t, testPlatforms[:2])
	if err := remote.WriteIndex(mustRef(t, reg+"/"+repoA+":multi"), idx, opts...); err != nil {
		t.Fatalf("remote.WriteIndex to A: %v", err)
	}

	mount := func(d string) {
		t.Helper()
		u := p.url("/v2/" + repoB + "/blobs/uploads/?" + url.Values{"mount": {d}, "from": {repoA}}.Encode())
		resp, body := doReq(t, http.MethodPost, u, nil, nil)
		wantStatus(t, "mount "+d+" from "+repoA, resp, body, http.StatusCreated)
		if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != d {
			t.Fatalf("mount %s: Docker-Content-Digest %s", d, got)
		}
		if loc := resp.Header.Get("Location"); loc == "" {
			t.Fatalf("mount %s: 201 without Location", d)
		}
	}
	for _, child := range children {
		cfg, err := child.ConfigName()
		if err != nil {
			t.Fatal(err)
		}
		mount(cfg.String())
		layers, err := child.Layers()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range layers {
			mount(digestOf(t, l).String())
		}
		// The child manifest itself, mounted as a blob.
		mount(digestOf(t, child).String())
	}

	raw, err := idx.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	putManifest(t, p, repoB, "multi", string(types.OCIImageIndex), raw)

	got, err := remote.Index(mustRef(t, reg+"/"+repoB+":multi"), opts...)
	if err != nil {
		t.Fatalf("remote.Index from B: %v", err)
	}
	if w, g := digestOf(t, idx), digestOf(t, got); w != g {
		t.Fatalf("index digest from B %s, want %s", g, w)
	}
	im, err := got.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != len(children) {
		t.Fatalf("index from B has %d children, want %d", len(im.Manifests), len(children))
	}
	for i, desc := range im.Manifests {
		child, err := got.Image(desc.Digest)
		if err != nil {
			t.Fatalf("child %s from B: %v", desc.Digest, err)
		}
		compareImages(t, "child from B", children[i], child)
	}
	// The child manifests resolve in B by digest, as manifests.
	for _, child := range children {
		ref := mustRef(t, reg+"/"+repoB+"@"+digestOf(t, child).String())
		d, err := remote.Head(ref, opts...)
		if err != nil {
			t.Fatalf("HEAD child manifest in B: %v", err)
		}
		mt, _ := child.MediaType()
		if d.MediaType != mt {
			t.Fatalf("child manifest in B served as %q, want %q", d.MediaType, mt)
		}
	}
}
