package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/content/memory"
	"oras.land/oras-go/v2/registry/remote"
)

// recorder is an HTTP client that records every request oras-go sends.
type recorder struct {
	mu   sync.Mutex
	reqs []recorded
}

type recorded struct {
	method, path, query string
	status              int
	ociSubject          string
}

func (r *recorder) Do(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultClient.Do(req)
	rec := recorded{method: req.Method, path: req.URL.Path, query: req.URL.RawQuery}
	if err == nil {
		rec.status = resp.StatusCode
		rec.ociSubject = resp.Header.Get("OCI-Subject")
	}
	r.mu.Lock()
	r.reqs = append(r.reqs, rec)
	r.mu.Unlock()
	return resp, err
}

func (r *recorder) take() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.reqs
	r.reqs = nil
	return out
}

// referrersTag is the tag the referrers tag schema fallback would use.
func referrersTag(d digest.Digest) string {
	return d.Algorithm().String() + "-" + d.Encoded()
}

const (
	artifactTypeApp  = "application/vnd.berth.e2e.artifact.v1"
	artifactTypeSig  = "application/vnd.berth.e2e.signature.v1"
	artifactTypeSBOM = "application/vnd.berth.e2e.sbom.v1"
)

// TestORAS pushes an artifact with oras-go, attaches referrers, discovers
// them through the referrers API and fetches everything back.
func TestORAS(t *testing.T) {
	p := startBerth(t, t.TempDir())
	ctx := context.Background()
	const repoName = "e2e/oras/artifact"

	rec := &recorder{}
	repo, err := remote.NewRepository(p.host() + "/" + repoName)
	if err != nil {
		t.Fatal(err)
	}
	repo.PlainHTTP = true
	repo.Client = rec

	// The artifact: two file blobs and an OCI 1.1 manifest with artifactType,
	// packed in memory and copied to berth.
	src := memory.New()
	files := map[string][]byte{
		"hello.txt": []byte("hello from the berth e2e tests\n"),
		"data.bin":  detStream{seed: 42, size: 300 << 10}.bytes(),
	}
	var layers []ocispec.Descriptor
	for _, name := range []string{"hello.txt", "data.bin"} {
		desc := content.NewDescriptorFromBytes("application/vnd.berth.e2e.file", files[name])
		desc.Annotations = map[string]string{ocispec.AnnotationTitle: name}
		if err := src.Push(ctx, desc, bytes.NewReader(files[name])); err != nil {
			t.Fatal(err)
		}
		layers = append(layers, desc)
	}
	fixed := map[string]string{ocispec.AnnotationCreated: "2024-01-01T00:00:00Z"}
	artifact, err := oras.PackManifest(ctx, src, oras.PackManifestVersion1_1, artifactTypeApp,
		oras.PackManifestOptions{Layers: layers, ManifestAnnotations: fixed})
	if err != nil {
		t.Fatalf("PackManifest: %v", err)
	}
	if err := src.Tag(ctx, artifact, "v1"); err != nil {
		t.Fatal(err)
	}
	pushed, err := oras.Copy(ctx, src, "v1", repo, "v1", oras.DefaultCopyOptions)
	if err != nil {
		t.Fatalf("oras.Copy to berth: %v", err)
	}
	if pushed.Digest != artifact.Digest {
		t.Fatalf("oras.Copy returned %s, want %s", pushed.Digest, artifact.Digest)
	}

	// Referrers: a signature and an SBOM whose subject is the artifact.
	pushReferrer := func(at string, payload []byte) ocispec.Descriptor {
		t.Helper()
		blob, err := oras.PushBytes(ctx, src, "application/vnd.berth.e2e.payload", payload)
		if err != nil {
			t.Fatal(err)
		}
		desc, err := oras.PackManifest(ctx, src, oras.PackManifestVersion1_1, at, oras.PackManifestOptions{
			Layers:              []ocispec.Descriptor{blob},
			Subject:             &artifact,
			ManifestAnnotations: map[string]string{ocispec.AnnotationCreated: "2024-01-01T00:00:00Z", "e2e.kind": at},
		})
		if err != nil {
			t.Fatalf("PackManifest %s: %v", at, err)
		}
		if err := oras.CopyGraph(ctx, src, repo, desc, oras.DefaultCopyGraphOptions); err != nil {
			t.Fatalf("oras.CopyGraph %s: %v", at, err)
		}
		return desc
	}
	rec.take()
	sig := pushReferrer(artifactTypeSig, []byte("not really a signature"))
	sbom := pushReferrer(artifactTypeSBOM, []byte(`{"spdxVersion":"SPDX-2.3"}`))

	// The registry must have said it processed the subject (OCI-Subject), so
	// oras-go never falls back to maintaining a referrers tag.
	fallbackTag := referrersTag(artifact.Digest)
	for _, r := range rec.take() {
		if r.method == http.MethodPut && strings.Contains(r.path, "/manifests/") {
			ref := r.path[strings.LastIndex(r.path, "/")+1:]
			switch {
			case ref == fallbackTag:
				t.Errorf("oras-go PUT the referrers fallback tag %s: the registry did not answer the subject manifest PUT with OCI-Subject", ref)
			case ref == sig.Digest.String() || ref == sbom.Digest.String():
				if r.ociSubject != artifact.Digest.String() {
					t.Errorf("PUT %s (manifest with subject): OCI-Subject %q, want %q", r.path, r.ociSubject, artifact.Digest)
				}
			}
		}
	}

	// Discovery with oras-go; the requests must go to the referrers API.
	collect := func(at string) []ocispec.Descriptor {
		t.Helper()
		var out []ocispec.Descriptor
		if err := repo.Referrers(ctx, artifact, at, func(rs []ocispec.Descriptor) error {
			out = append(out, rs...)
			return nil
		}); err != nil {
			t.Fatalf("repo.Referrers(%q): %v", at, err)
		}
		return out
	}
	all := collect("")
	onlySig := collect(artifactTypeSig)
	usedAPI := false
	for _, r := range rec.take() {
		if r.method == http.MethodGet && strings.HasSuffix(r.path, "/referrers/"+artifact.Digest.String()) {
			usedAPI = true
			if r.status != http.StatusOK {
				t.Errorf("GET %s?%s: status %d", r.path, r.query, r.status)
			}
		}
		if strings.HasSuffix(r.path, "/manifests/"+fallbackTag) {
			t.Errorf("oras-go used the referrers tag schema (%s %s): the referrers API was not accepted", r.method, r.path)
		}
	}
	if !usedAPI {
		t.Fatalf("oras-go did not call GET /v2/%s/referrers/%s", repoName, artifact.Digest)
	}
	// Now that oras-go has probed the API, it must have settled on it.
	if err := repo.SetReferrersCapability(true); err != nil {
		t.Errorf("oras-go decided the referrers API is not supported: %v", err)
	}

	key := func(d ocispec.Descriptor) string {
		return fmt.Sprintf("%s %s %d %s %s", d.MediaType, d.Digest, d.Size, d.ArtifactType, d.Annotations["e2e.kind"])
	}
	keys := func(ds []ocispec.Descriptor) []string {
		var out []string
		for _, d := range ds {
			out = append(out, key(d))
		}
		slices.Sort(out)
		return out
	}
	if got, want := keys(all), keys([]ocispec.Descriptor{sig, sbom}); !slices.Equal(got, want) {
		t.Fatalf("referrers:\n got  %q\n want %q", got, want)
	}
	if got, want := keys(onlySig), keys([]ocispec.Descriptor{sig}); !slices.Equal(got, want) {
		t.Fatalf("referrers filtered by %s:\n got  %q\n want %q", artifactTypeSig, got, want)
	}
	for _, d := range all {
		if d.Annotations["e2e.kind"] != d.ArtifactType {
			t.Errorf("referrer %s: annotations %v not carried over from the manifest", d.Digest, d.Annotations)
		}
	}

	// The same list straight from the API.
	direct := func(query string) (ociIndex, http.Header) {
		t.Helper()
		u := p.url("/v2/" + repoName + "/referrers/" + artifact.Digest.String())
		if query != "" {
			u += "?" + query
		}
		resp, body := doReq(t, http.MethodGet, u, nil, nil)
		wantStatus(t, "GET referrers", resp, body, http.StatusOK)
		if ct := resp.Header.Get("Content-Type"); ct != ocispec.MediaTypeImageIndex {
			t.Errorf("GET referrers: Content-Type %q, want %q", ct, ocispec.MediaTypeImageIndex)
		}
		var idx ociIndex
		if err := json.Unmarshal(body, &idx); err != nil {
			t.Fatalf("GET referrers: %v in %s", err, truncate(body, 300))
		}
		if idx.SchemaVersion != 2 || idx.MediaType != ocispec.MediaTypeImageIndex {
			t.Errorf("GET referrers: schemaVersion %d mediaType %q", idx.SchemaVersion, idx.MediaType)
		}
		return idx, resp.Header
	}
	toOCI := func(idx ociIndex) []ocispec.Descriptor {
		var out []ocispec.Descriptor
		for _, d := range idx.Manifests {
			out = append(out, ocispec.Descriptor{MediaType: d.MediaType, Digest: digest.Digest(d.Digest), Size: d.Size,
				ArtifactType: d.ArtifactType, Annotations: d.Annotations})
		}
		return out
	}
	idx, _ := direct("")
	if got, want := keys(toOCI(idx)), keys(all); !slices.Equal(got, want) {
		t.Fatalf("GET referrers directly:\n got  %q\n oras %q", got, want)
	}
	idx, hdr := direct(url.Values{"artifactType": {artifactTypeSBOM}}.Encode())
	if hdr.Get("OCI-Filters-Applied") == "artifactType" {
		if got, want := keys(toOCI(idx)), keys([]ocispec.Descriptor{sbom}); !slices.Equal(got, want) {
			t.Fatalf("GET referrers?artifactType (OCI-Filters-Applied set):\n got  %q\n want %q", got, want)
		}
	} else if got, want := keys(toOCI(idx)), keys(all); !slices.Equal(got, want) {
		t.Fatalf("GET referrers?artifactType without OCI-Filters-Applied must return all referrers:\n got  %q\n want %q", got, want)
	}
	// A manifest nobody refers to: an empty index, not a 404.
	resp, body := doReq(t, http.MethodGet, p.url("/v2/"+repoName+"/referrers/"+sig.Digest.String()), nil, nil)
	wantStatus(t, "GET referrers of a manifest without referrers", resp, body, http.StatusOK)
	var empty ociIndex
	if err := json.Unmarshal(body, &empty); err != nil || len(empty.Manifests) != 0 {
		t.Fatalf("GET referrers of a manifest without referrers: %s (err %v), want an empty index", truncate(body, 300), err)
	}
	// The tag list holds only v1: no fallback tag was created.
	var tags []string
	if err := repo.Tags(ctx, "", func(ts []string) error { tags = append(tags, ts...); return nil }); err != nil {
		t.Fatalf("repo.Tags: %v", err)
	}
	if !slices.Equal(tags, []string{"v1"}) {
		t.Errorf("tags %q, want [v1]", tags)
	}

	// Fetch everything back with oras-go into a fresh store and compare.
	dst := memory.New()
	got, err := oras.Copy(ctx, repo, "v1", dst, "v1", oras.DefaultCopyOptions)
	if err != nil {
		t.Fatalf("oras.Copy from berth: %v", err)
	}
	if got.Digest != artifact.Digest || got.Size != artifact.Size || got.MediaType != artifact.MediaType {
		t.Fatalf("pulled artifact descriptor %+v, want %+v", got, artifact)
	}
	manifestBytes, err := content.FetchAll(ctx, dst, got)
	if err != nil {
		t.Fatal(err)
	}
	srcManifest, _ := content.FetchAll(ctx, src, artifact)
	if !bytes.Equal(manifestBytes, srcManifest) {
		t.Fatalf("pulled manifest bytes differ")
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(manifestBytes, &m); err != nil {
		t.Fatal(err)
	}
	if m.ArtifactType != artifactTypeApp || len(m.Layers) != len(files) {
		t.Fatalf("pulled manifest: artifactType %q, %d layers", m.ArtifactType, len(m.Layers))
	}
	for _, l := range m.Layers {
		name := l.Annotations[ocispec.AnnotationTitle]
		b, err := content.FetchAll(ctx, dst, l)
		if err != nil {
			t.Fatalf("layer %s: %v", name, err)
		}
		if !bytes.Equal(b, files[name]) {
			t.Fatalf("layer %s: pulled %d bytes differ from the %d pushed", name, len(b), len(files[name]))
		}
		// And straight from the registry.
		rc, err := repo.Fetch(ctx, l)
		if err != nil {
			t.Fatalf("repo.Fetch %s: %v", name, err)
		}
		b2, err := content.ReadAll(rc, l)
		rc.Close()
		if err != nil || !bytes.Equal(b2, files[name]) {
			t.Fatalf("repo.Fetch %s: bytes differ (err %v)", name, err)
		}
	}
	// The signature manifest and its payload come back too.
	sigBytes, err := content.FetchAll(ctx, repo, sig)
	if err != nil {
		t.Fatalf("fetch signature manifest: %v", err)
	}
	want, _ := content.FetchAll(ctx, src, sig)
	if !bytes.Equal(sigBytes, want) {
		t.Fatalf("signature manifest bytes differ")
	}
}
