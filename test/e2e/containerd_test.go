package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/errdefs"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// containerd's own registry client (core/remotes/docker: the resolver,
// fetcher, pusher and authorizer that `ctr`, nerdctl and the kubelet's
// image pulls go through), without a daemon: resolve, fetch and verify an
// image, push one, and do both with credentials — the provider name and an
// OIDC ID token — through berth's token service.
func TestContainerdClient(t *testing.T) {
	t.Run("open", func(t *testing.T) {
		p := startBerth(t, t.TempDir())
		containerdRoundTrip(t, p, nil)
	})
	t.Run("oidc credentials", func(t *testing.T) {
		iss := newIssuer(t)
		p := authBerth(t, iss, "")
		// Without credentials: the resolver gets the challenge and gives up.
		if _, _, err := resolver(nil).Resolve(t.Context(), p.host()+"/ctr/none:v1"); err == nil {
			t.Fatal("anonymous resolve succeeded")
		}
		tok := ciToken(iss, 5*time.Minute)
		containerdRoundTrip(t, p, func(string) (string, string, error) { return "ci", tok, nil })
	})
}

func resolver(creds func(string) (string, string, error)) remotes.Resolver {
	authOpts := []docker.AuthorizerOpt{docker.WithAuthClient(http.DefaultClient)}
	if creds != nil {
		authOpts = append(authOpts, docker.WithAuthCreds(creds))
	}
	return docker.NewResolver(docker.ResolverOptions{
		Hosts: docker.ConfigureDefaultRegistries(
			docker.WithPlainHTTP(docker.MatchLocalhost),
			docker.WithAuthorizer(docker.NewDockerAuthorizer(authOpts...)),
		),
	})
}

func containerdRoundTrip(t *testing.T, p *berthProc, creds func(string) (string, string, error)) {
	ctx := t.Context()
	r := resolver(creds)

	// Push with go-containerregistry, pull with containerd.
	img := gzipLayerImage(t, v1.Platform{OS: "linux", Architecture: "amd64"},
		tarBytes(t, tarEntry{"hello.txt", []byte("hello from containerd's client\n")}),
		tarBytes(t, tarEntry{"big.bin", randBytes(3, 3<<20)}))
	ref, err := name.ParseReference(p.host()+"/ctr/app:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	ggcr := []remote.Option{remote.WithContext(ctx)}
	if creds != nil {
		u, pw, _ := creds(p.host())
		ggcr = append(ggcr, remote.WithAuth(authn.FromConfig(authn.AuthConfig{Username: u, Password: pw})))
	}
	if err := remote.Write(ref, img, ggcr...); err != nil {
		t.Fatal(err)
	}
	wantDigest, _ := img.Digest()

	nm, desc, err := r.Resolve(ctx, ref.String())
	if err != nil {
		t.Fatalf("resolve: %v", err)
	}
	if desc.Digest.String() != wantDigest.String() || desc.MediaType != ocispec.MediaTypeImageManifest {
		t.Fatalf("resolved %s %s, want %s", desc.MediaType, desc.Digest, wantDigest)
	}
	f, err := r.Fetcher(ctx, nm)
	if err != nil {
		t.Fatal(err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(fetchVerified(ctx, t, f, desc), &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Layers) != 2 {
		t.Fatalf("manifest has %d layers", len(m.Layers))
	}
	for _, d := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
		fetchVerified(ctx, t, f, d)
	}

	// Push with containerd into another repository (the layers mount or
	// upload; the manifest by tag), read back through the API.
	target := p.host() + "/ctr/copy:v2"
	pusher, err := r.Pusher(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
		pushBlobWith(ctx, t, pusher, d, fetchVerified(ctx, t, f, d))
	}
	pushBlobWith(ctx, t, pusher, desc, fetchVerified(ctx, t, f, desc))
	_, back, err := r.Resolve(ctx, target)
	if err != nil || back.Digest != desc.Digest {
		t.Fatalf("resolve after containerd push: %v %v", back.Digest, err)
	}
	for _, l := range m.Layers {
		f2, err := r.Fetcher(ctx, target)
		if err != nil {
			t.Fatal(err)
		}
		fetchVerified(ctx, t, f2, l)
	}
}

// fetchVerified fetches d and checks its size and digest.
func fetchVerified(ctx context.Context, t *testing.T, f remotes.Fetcher, d ocispec.Descriptor) []byte {
	t.Helper()
	rc, err := f.Fetch(ctx, d)
	if err != nil {
		t.Fatalf("fetch %s: %v", d.Digest, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", d.Digest, err)
	}
	if int64(len(b)) != d.Size || digest.FromBytes(b) != d.Digest {
		t.Fatalf("fetched %s: %d bytes hashing to %s", d.Digest, len(b), digest.FromBytes(b))
	}
	return b
}

func pushBlobWith(ctx context.Context, t *testing.T, p remotes.Pusher, d ocispec.Descriptor, b []byte) {
	t.Helper()
	w, err := p.Push(ctx, d)
	if err != nil {
		if errdefs.IsAlreadyExists(err) {
			return // mounted or already there
		}
		t.Fatalf("push %s: %v", d.Digest, err)
	}
	defer w.Close()
	if _, err := io.Copy(w, bytes.NewReader(b)); err != nil {
		t.Fatalf("write %s: %v", d.Digest, err)
	}
	if err := w.Commit(ctx, d.Size, d.Digest); err != nil && !errdefs.IsAlreadyExists(err) {
		t.Fatalf("commit %s: %v", d.Digest, err)
	}
}
