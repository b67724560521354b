package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/berth-registry/berth/internal/credclient"
)

// fakeTokenService answers berth's two grants the way berth does, and
// records the forms it was sent.
type fakeTokenService struct {
	mu    sync.Mutex
	forms []map[string]string
	scope string // granted by the password grant
}

func (f *fakeTokenService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/token" || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		http.Error(w, "unexpected request", http.StatusBadRequest)
		return
	}
	_ = r.ParseForm()
	form := map[string]string{}
	for k := range r.PostForm {
		form[k] = r.PostForm.Get(k)
	}
	f.mu.Lock()
	f.forms = append(f.forms, form)
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch form["grant_type"] {
	case credclient.GrantPassword:
		json.NewEncoder(w).Encode(map[string]any{"access_token": "eyJ.x.y", "token_type": "Bearer", "expires_in": 300, "scope": f.scope})
	case credclient.GrantTokenExchange:
		json.NewEncoder(w).Encode(map[string]any{"access_token": "berth_st_abc", "token_type": "N_A", "expires_in": 900,
			"issued_token_type": credclient.TokenTypeSession})
	}
}

func runWith(t *testing.T, srv *httptest.Server, stdin string, extra ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	args := append([]string{"--registry", srv.URL, "--provider", "k8s"}, extra...)
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

const goodRequest = `{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest",
"image":"registry.example.com:5000/team-a/app:v1@sha256:0123","serviceAccountToken":"sa.jwt.token",
"serviceAccountAnnotations":{"other":"x"}}`

func TestResponseShape(t *testing.T) {
	f := &fakeTokenService{scope: "repository:team-a/app:pull"}
	srv := httptest.NewServer(f)
	defer srv.Close()
	code, out, errs := runWith(t, srv, goodRequest)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("stdout %q: %v", out, err)
	}
	want := map[string]any{
		"apiVersion":    "credentialprovider.kubelet.k8s.io/v1",
		"kind":          "CredentialProviderResponse",
		"cacheKeyType":  "Image",
		"cacheDuration": "14m30s", // 900 s - 30 s
		"auth": map[string]any{
			"registry.example.com:5000/team-a/app": map[string]any{"username": "session", "password": "berth_st_abc"},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("response\n%s\nwant\n%v", out, want)
	}
	wantForms := []map[string]string{
		{"grant_type": credclient.GrantPassword, "username": "k8s", "password": "sa.jwt.token", "scope": "repository:team-a/app:pull"},
		{"grant_type": credclient.GrantTokenExchange, "subject_token": "sa.jwt.token", "subject_token_type": credclient.TokenTypeIDToken,
			"requested_token_type": credclient.TokenTypeSession},
	}
	if !reflect.DeepEqual(f.forms, wantForms) {
		t.Fatalf("token service got %v, want %v", f.forms, wantForms)
	}
}

func TestAnnotationOverridesProvider(t *testing.T) {
	f := &fakeTokenService{scope: "repository:team-a/app:pull"}
	srv := httptest.NewServer(f)
	defer srv.Close()
	req := strings.Replace(goodRequest, `"other":"x"`, `"berth.dev/provider":"cluster-2"`, 1)
	if code, _, errs := runWith(t, srv, req); code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if got := f.forms[0]["username"]; got != "cluster-2" {
		t.Fatalf("provider %q, want the annotation's cluster-2", got)
	}
}

func TestRefusals(t *testing.T) {
	for _, c := range []struct {
		name, stdin, scope, want string
		args                     []string
		calls                    int
	}{
		{name: "apiVersion v1alpha1", stdin: strings.Replace(goodRequest, "/v1", "/v1alpha1", 1),
			want: `unsupported apiVersion "credentialprovider.kubelet.k8s.io/v1alpha1"`},
		{name: "no token", stdin: strings.Replace(goodRequest, `"serviceAccountToken":"sa.jwt.token",`, "", 1),
			want: "set tokenAttributes"},
		{name: "not JSON", stdin: "hello", want: "not a CredentialProviderRequest"},
		{name: "image without host", stdin: strings.Replace(goodRequest, "registry.example.com:5000/team-a/app", "app", 1),
			want: "does not name a registry host"},
		{name: "pull not granted", stdin: goodRequest, scope: "", calls: 1,
			want: "do not let this service account pull team-a/app"},
		{name: "no provider flag", stdin: goodRequest, args: []string{"--provider", ""}, want: "--provider is required"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := &fakeTokenService{scope: c.scope}
			srv := httptest.NewServer(f)
			defer srv.Close()
			code, out, errs := runWith(t, srv, c.stdin, c.args...)
			if code != 1 || out != "" || !strings.Contains(errs, c.want) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want 1, nothing, %q", code, out, errs, c.want)
			}
			if len(f.forms) != c.calls {
				t.Fatalf("%d token requests, want %d", len(f.forms), c.calls)
			}
		})
	}
}

func TestCacheDurationNeverNegative(t *testing.T) {
	if got := newResponse(apiVersionV1, "h/r", "p", 10e9).CacheDuration; got != "0s" {
		t.Fatalf("cacheDuration %q for a 10 s credential, want 0s", got)
	}
}

func TestSplitImage(t *testing.T) {
	for in, want := range map[string][2]string{
		"registry.example.com/team-a/app":                  {"registry.example.com", "team-a/app"},
		"registry.example.com:5000/team-a/app:v1":          {"registry.example.com:5000", "team-a/app"},
		"127.0.0.1:5000/a/b/c@sha256:00":                   {"127.0.0.1:5000", "a/b/c"},
		"localhost/app:v1@sha256:00":                       {"localhost", "app"},
		"registry.example.com/team-a/app:v1@sha256:abcdef": {"registry.example.com", "team-a/app"},
	} {
		h, r, err := splitImage(in)
		if err != nil || h != want[0] || r != want[1] {
			t.Errorf("splitImage(%q) = %q, %q, %v; want %q", in, h, r, err, want)
		}
	}
	for _, in := range []string{"app", "team/app:v1", "/app", "registry.example.com/"} {
		if _, _, err := splitImage(in); err == nil {
			t.Errorf("splitImage(%q) accepted", in)
		}
	}
}

// TestCAFile: berth behind a private CA is trusted with --ca-file, and only
// with it.
func TestCAFile(t *testing.T) {
	srv := httptest.NewTLSServer(&fakeTokenService{scope: "repository:team-a/app:pull"})
	defer srv.Close()
	if code, _, errs := runWith(t, srv, goodRequest); code != 1 || !strings.Contains(errs, "certificate") {
		t.Fatalf("without --ca-file: exit %d, stderr %q", code, errs)
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := runWith(t, srv, goodRequest, "--ca-file", ca); code != 0 {
		t.Fatalf("with --ca-file: exit %d, stderr %q", code, errs)
	}
}
