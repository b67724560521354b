package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/berth-registry/berth/internal/devissuer"
)

// buildCredentialProvider builds cmd/berth-credential-provider from the
// product module, as `make build` does.
func buildCredentialProvider(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/berth-registry/berth").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "berth-credential-provider")
	build := exec.Command("go", "build", "-o", bin, "./cmd/berth-credential-provider")
	build.Dir = strings.TrimSpace(string(out))
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the credential provider: %v\n%s", err, out)
	}
	return bin
}

// projectedToken mints what the API server projects into a pod for berth's
// audience.
func projectedToken(iss *devissuer.Issuer, ns, sa string) string {
	return iss.Mint(map[string]any{
		"aud": []string{"https://registry.example.com"},
		"sub": "system:serviceaccount:" + ns + ":" + sa,
		"kubernetes.io": map[string]any{
			"namespace":      ns,
			"serviceaccount": map[string]any{"name": sa, "uid": "0d6c6bd4-7a3e-4b8f-9f0a-3c2b1a0e9d8c"},
			"pod":            map[string]any{"name": "web-0", "uid": "5b1c9f0e-2a4d-4e6b-8c3a-9d7e6f5a4b3c"},
		},
	})
}

type kubeletResponse struct {
	APIVersion    string `json:"apiVersion"`
	Kind          string `json:"kind"`
	CacheKeyType  string `json:"cacheKeyType"`
	CacheDuration string `json:"cacheDuration"`
	Auth          map[string]struct {
		Username string `json:"username"`
		Password string `json:"password"`
	} `json:"auth"`
}

// TestCredentialProvider runs the kubelet image credential provider the way
// the kubelet does (request on stdin, args, a deadline) against berth with a
// kubernetes provider whose policy lets namespace team-a (and no other)
// pull team-a/app.
func TestCredentialProvider(t *testing.T) {
	bin := buildCredentialProvider(t)
	iss := newIssuer(t)
	p, ref, digest := credproviderBerth(t, iss)
	image := ref.String()

	plugin := func(req map[string]any, args ...string) (int, []byte, string) {
		t.Helper()
		in, _ := json.Marshal(req)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a guard, not an assertion
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append([]string{"--registry", "http://" + p.host(), "--provider", "cluster"}, args...)...)
		var stdout, stderr bytes.Buffer
		cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(in), &stdout, &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatalf("running the plugin: %v", err)
		}
		return cmd.ProcessState.ExitCode(), stdout.Bytes(), stderr.String()
	}
	request := func(tok string) map[string]any {
		return map[string]any{
			"apiVersion": "credentialprovider.kubelet.k8s.io/v1", "kind": "CredentialProviderRequest",
			"image": image + "@sha256:0000", "serviceAccountToken": tok,
			"serviceAccountAnnotations": map[string]string{"berth.dev/provider": "cluster"},
		}
	}

	// team-a: the credential pulls the image.
	code, out, errs := plugin(request(projectedToken(iss, "team-a", "web")), "--provider", "no-such-provider")
	if code != 0 {
		t.Fatalf("team-a: exit %d: %s", code, errs)
	}
	var resp kubeletResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("team-a: stdout %q: %v", out, err)
	}
	cred, ok := resp.Auth[p.host()+"/team-a/app"]
	if resp.APIVersion != "credentialprovider.kubelet.k8s.io/v1" || resp.Kind != "CredentialProviderResponse" ||
		resp.CacheKeyType != "Image" || !ok || len(resp.Auth) != 1 {
		t.Fatalf("team-a: response %s", out)
	}
	if d, err := time.ParseDuration(resp.CacheDuration); err != nil || d <= 0 {
		t.Fatalf("team-a: cacheDuration %q: %v", resp.CacheDuration, err)
	}
	got, err := remote.Image(ref, remote.WithAuth(&authn.Basic{Username: cred.Username, Password: cred.Password}))
	if err != nil {
		t.Fatalf("pull with the plugin's credential: %v", err)
	}
	if gd, err := got.Digest(); err != nil {
		t.Fatalf("pull with the plugin's credential: %v", err)
	} else if gd != digest {
		t.Fatalf("pulled %v, want %v", gd, digest)
	}
	// The credential does not push: it is what the policies allow, no more.
	other, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, other, remote.WithAuth(&authn.Basic{Username: cred.Username, Password: cred.Password})); err == nil {
		t.Fatal("push with the plugin's pull credential accepted")
	}

	// team-b: the policies grant it no pull; the plugin says so and fails.
	code, out, errs = plugin(request(projectedToken(iss, "team-b", "web")))
	if code == 0 || len(out) != 0 || !strings.Contains(errs, "do not let this service account pull team-a/app") {
		t.Fatalf("team-b: exit %d, stdout %q, stderr %q", code, out, errs)
	}

	// A token of another issuer is refused by the provider.
	code, _, errs = plugin(request(projectedToken(newIssuer(t), "team-a", "web")))
	if code == 0 || !strings.Contains(errs, `provider "cluster"`) || !strings.Contains(errs, "invalid_grant") {
		t.Fatalf("foreign issuer: exit %d, stderr %q", code, errs)
	}

	// Wrong apiVersion; no service-account token (tokenAttributes not set).
	bad := request(projectedToken(iss, "team-a", "web"))
	bad["apiVersion"] = "credentialprovider.kubelet.k8s.io/v1beta1"
	code, out, errs = plugin(bad)
	if code != 1 || len(out) != 0 || !strings.Contains(errs, `unsupported apiVersion "credentialprovider.kubelet.k8s.io/v1beta1"`) {
		t.Fatalf("v1beta1: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	noToken := request("")
	delete(noToken, "serviceAccountToken")
	code, out, errs = plugin(noToken)
	if code != 1 || len(out) != 0 || !strings.Contains(errs, "set tokenAttributes") {
		t.Fatalf("no token: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}
