package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/crypto/bcrypt"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/kubelet/pkg/apis/credentialprovider"
	"k8s.io/kubelet/pkg/apis/credentialprovider/install"
	credentialproviderv1 "k8s.io/kubelet/pkg/apis/credentialprovider/v1"
)

// kubeletCodec is what the kubelet's exec plugin provider uses: a scheme
// with every version of the credentialprovider API, requests encoded as v1,
// responses decoded by the universal decoder (strict here: an unknown or
// duplicated field fails) and converted to the internal type.
type kubeletCodec struct {
	scheme *runtime.Scheme
	codecs serializer.CodecFactory
}

func newKubeletCodec() kubeletCodec {
	s := runtime.NewScheme()
	install.Install(s)
	return kubeletCodec{scheme: s, codecs: serializer.NewCodecFactory(s, serializer.EnableStrict)}
}

func (c kubeletCodec) encodeRequest(t testing.TB, req *credentialproviderv1.CredentialProviderRequest) []byte {
	t.Helper()
	info, ok := runtime.SerializerInfoForMediaType(c.codecs.SupportedMediaTypes(), runtime.ContentTypeJSON)
	if !ok {
		t.Fatal("no JSON serializer")
	}
	enc := c.codecs.EncoderForVersion(info.Serializer, credentialproviderv1.SchemeGroupVersion)
	data, err := runtime.Encode(enc, req)
	if err != nil {
		t.Fatalf("encoding the request as the kubelet does: %v", err)
	}
	return data
}

func (c kubeletCodec) decodeResponse(data []byte) (*credentialprovider.CredentialProviderResponse, error) {
	obj, gvk, err := c.codecs.UniversalDecoder().Decode(data, nil, nil)
	if err != nil {
		return nil, err
	}
	if gvk.Kind != "CredentialProviderResponse" || gvk.Group != credentialprovider.GroupName {
		return nil, fmt.Errorf("decoded %v, want a CredentialProviderResponse", gvk)
	}
	resp, ok := obj.(*credentialprovider.CredentialProviderResponse)
	if !ok {
		return nil, fmt.Errorf("decoded a %T", obj)
	}
	return resp, nil
}

// credproviderBerth starts berth with a kubernetes provider "cluster" whose
// policy lets a namespace pull the repositories under its own name, pushes
// team-a/app:v1 and returns berth, the image reference and its digest.
func credproviderBerth(t testing.TB, iss interface{ URL() string }) (*berthProc, name.Reference, v1.Hash) {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	p := startBerthWith(t, t.TempDir(), fmt.Sprintf(`
[auth.oidc.cluster]
provider = "kubernetes"
issuer = %q
audiences = ["https://registry.example.com"]

[auth.identity.alice]
username = "alice"
password = %q

[global.access_policy]
default_allow = false
rules = [
  "identity.username == 'alice'",
  # docs/auth/kubernetes.md: a namespace pulls the repositories under its own name.
  "identity.oidc != null && identity.oidc.provider_name == 'cluster' && request.action == 'pull' && request.repository.startsWith(identity.oidc.claims['kubernetes.io'].namespace + '/')",
]
`, iss.URL(), string(hash)))
	ref, err := name.ParseReference(p.host()+"/team-a/app:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "alice", Password: "secret"})); err != nil {
		t.Fatalf("push: %v", err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return p, ref, d
}

// runPlugin runs the plugin as the kubelet does: request on stdin, the
// configured args, a deadline.
func runPlugin(t testing.TB, bin string, stdin []byte, args ...string) (int, []byte, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a guard, not an assertion
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(stdin), &stdout, &stderr
	if err := cmd.Run(); err != nil && cmd.ProcessState == nil {
		t.Fatalf("running the plugin: %v", err)
	}
	return cmd.ProcessState.ExitCode(), stdout.Bytes(), stderr.String()
}

// TestCredentialProviderKubeletTypes round-trips the plugin's protocol
// through the kubelet's own Go types: the request is what the kubelet's
// encoder writes, and the response must decode strictly with the kubelet's
// decoder into the internal CredentialProviderResponse, with a cache key
// type, a cache duration below the credential's lifetime and one auth entry
// for the image's repository that pulls it.
func TestCredentialProviderKubeletTypes(t *testing.T) {
	bin := buildCredentialProvider(t)
	iss := newIssuer(t)
	p, ref, _ := credproviderBerth(t, iss)
	codec := newKubeletCodec()

	req := &credentialproviderv1.CredentialProviderRequest{
		Image:                     ref.String(),
		ServiceAccountToken:       projectedToken(iss, "team-a", "web"),
		ServiceAccountAnnotations: map[string]string{"berth.dev/provider": "cluster"},
	}
	in := codec.encodeRequest(t, req)
	if !bytes.Contains(in, []byte(`"apiVersion":"credentialprovider.kubelet.k8s.io/v1"`)) {
		t.Fatalf("the kubelet's encoder wrote %s", in)
	}
	code, out, errs := runPlugin(t, bin, in, "--registry", "http://"+p.host(), "--provider", "cluster")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	resp, err := codec.decodeResponse(out)
	if err != nil {
		t.Fatalf("the kubelet's decoder refuses the response %s: %v", out, err)
	}
	if resp.CacheKeyType != credentialprovider.ImagePluginCacheKeyType {
		t.Errorf("cacheKeyType %q, want %q", resp.CacheKeyType, credentialprovider.ImagePluginCacheKeyType)
	}
	// berth's session credentials live 15 minutes by default; the plugin
	// keeps a margin below that.
	if resp.CacheDuration == nil || resp.CacheDuration.Duration <= 0 || resp.CacheDuration.Duration >= 15*time.Minute {
		t.Errorf("cacheDuration %v, want within (0, 15m)", resp.CacheDuration)
	}
	key := p.host() + "/team-a/app"
	cred, ok := resp.Auth[key]
	if !ok || len(resp.Auth) != 1 {
		t.Fatalf("auth %v, want exactly the key %q", keysOf(resp.Auth), key)
	}
	if _, err := remote.Image(ref, remote.WithAuth(&authn.Basic{Username: cred.Username, Password: cred.Password})); err != nil {
		t.Fatalf("pull with the credential the kubelet decoded: %v", err)
	}

	// The kubelet's decoder itself is strict: a field it does not know fails,
	// so the check above could fail if the plugin wrote one.
	extra := bytes.Replace(out, []byte(`"auth":`), []byte(`"unknownField":1,"auth":`), 1)
	if _, err := codec.decodeResponse(extra); err == nil || !strings.Contains(err.Error(), "unknownField") {
		t.Fatalf("strict decode of an unknown field: %v", err)
	}
}

func keysOf[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// BenchmarkCredentialProvider measures one kubelet invocation of the plugin
// with a cold process (what the kubelet pays on a cache miss: exec, token
// exchange at berth, response): the request the kubelet encodes, a real berth
// on loopback, the in-repo issuer.
//
//	cd test && go test -run '^$' -bench BenchmarkCredentialProvider -benchtime 50x ./e2e/
func BenchmarkCredentialProvider(b *testing.B) {
	bin := buildCredentialProvider(b)
	iss := newIssuer(b)
	p, ref, _ := credproviderBerth(b, iss)
	codec := newKubeletCodec()
	in := codec.encodeRequest(b, &credentialproviderv1.CredentialProviderRequest{
		Image: ref.String(), ServiceAccountToken: projectedToken(iss, "team-a", "web"),
	})
	b.ResetTimer()
	for b.Loop() {
		code, out, errs := runPlugin(b, bin, in, "--registry", "http://"+p.host(), "--provider", "cluster")
		if code != 0 {
			b.Fatalf("exit %d: %s", code, errs)
		}
		if _, err := codec.decodeResponse(out); err != nil {
			b.Fatal(err)
		}
	}
}
