package ui

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/access"
	"github.com/berth-registry/berth/internal/auth/token"
	"github.com/berth-registry/berth/internal/auth/users"
	"github.com/berth-registry/berth/internal/policy"
	"github.com/berth-registry/berth/internal/storage"
	"github.com/berth-registry/berth/internal/storage/fs"
)

const (
	ociManifest = "application/vnd.oci.image.manifest.v1+json"
	ociIndex    = "application/vnd.oci.image.index.v1+json"
	ociConfig   = "application/vnd.oci.image.config.v1+json"
	ociLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"
)

// testPolicy: admin may do everything, alice may pull everything, anyone
// (anonymous included) may pull public/*; bob has nothing of his own.
var testPolicy = []string{
	`identity.username == "admin"`,
	`identity.username == "alice" && request.action == "pull"`,
	`request.action == "pull" && request.repository.startsWith("public/")`,
}

type env struct {
	t      *testing.T
	store  storage.Store
	tokens *token.Service
	gate   *access.Gate
	ui     *UI
	srv    *httptest.Server
}

// newEnv is a UI over a real filesystem store, static users, the token
// service and compiled policies; open: no authentication, no policies.
func newEnv(t *testing.T, open bool) *env {
	t.Helper()
	st, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, store: st}
	state := &access.State{}
	if !open {
		var list []users.User
		for _, name := range []string{"admin", "alice", "bob"} {
			h, err := users.Hash(name+"-password", "bcrypt")
			if err != nil {
				t.Fatal(err)
			}
			list = append(list, users.User{Username: name, PasswordHash: h})
		}
		us, err := users.New(list, "", users.Options{})
		if err != nil {
			t.Fatal(err)
		}
		eng, err := policy.Compile(policy.Config{Global: &policy.Source{Key: "global.access_policy", Rules: testPolicy}})
		if err != nil {
			t.Fatal(err)
		}
		state.Authn = &access.Authenticator{Users: us}
		state.Policy = eng
	}
	e.gate = access.NewGate(state, nil)
	o := Options{Name: "test registry", Store: st, Gate: e.gate, PageSize: 2}
	if !open {
		ts, err := token.New(token.Options{Service: "berth", StateDir: t.TempDir(), Grant: e.gate.Grant,
			Authenticate: state.Authn.Basic})
		if err != nil {
			t.Fatal(err)
		}
		state.Authn.Tokens = ts
		e.tokens = ts
		o.Sessions = ts
	}
	e.ui, err = New(o)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(e.ui)
	t.Cleanup(e.srv.Close)
	return e
}

// browser is a cookie-keeping client that does not follow redirects.
type browser struct {
	e   *env
	c   *http.Client
	jar *cookiejar.Jar
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{e: e, jar: jar, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

type page struct {
	status int
	body   string
	header http.Header
}

func (p page) has(t *testing.T, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(p.body, w) {
			t.Fatalf("page (status %d) lacks %q:\n%s", p.status, w, p.body)
		}
	}
}

func (p page) lacks(t *testing.T, unwanted ...string) {
	t.Helper()
	for _, w := range unwanted {
		if strings.Contains(p.body, w) {
			t.Fatalf("page (status %d) has %q:\n%s", p.status, w, p.body)
		}
	}
}

func (b *browser) get(path string) page {
	b.e.t.Helper()
	resp, err := b.c.Get(b.e.srv.URL + path)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return page{status: resp.StatusCode, body: string(body), header: resp.Header}
}

func (b *browser) post(path string, form url.Values) page {
	b.e.t.Helper()
	resp, err := b.c.PostForm(b.e.srv.URL+path, form)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return page{status: resp.StatusCode, body: string(body), header: resp.Header}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf is the CSRF token of the forms on the page at path.
func (b *browser) csrf(path string) string {
	b.e.t.Helper()
	p := b.get(path)
	m := csrfRE.FindStringSubmatch(p.body)
	if m == nil {
		b.e.t.Fatalf("no CSRF token on %s:\n%s", path, p.body)
	}
	return m[1]
}

func (b *browser) signIn(user string) {
	b.e.t.Helper()
	p := b.post("/-/signin", url.Values{"csrf": {b.csrf("/-/signin")}, "username": {user}, "password": {user + "-password"}})
	if p.status != http.StatusSeeOther {
		b.e.t.Fatalf("sign-in as %s: status %d:\n%s", user, p.status, p.body)
	}
}

func (b *browser) cookie(name string) *http.Cookie {
	u, _ := url.Parse(b.e.srv.URL)
	for _, c := range b.jar.Cookies(u) {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// ---------------------------------------------------------------------------
// content

func sha(b []byte) digest.Digest {
	s := sha256.Sum256(b)
	return digest.Digest("sha256:" + hex.EncodeToString(s[:]))
}

func (e *env) blob(repo string, b []byte) digest.Digest {
	e.t.Helper()
	ctx := context.Background()
	u, err := e.store.BeginUpload(ctx, repo)
	if err == nil {
		_, err = e.store.AppendUpload(ctx, repo, u.ID, 0, bytes.NewReader(b))
	}
	if err == nil {
		_, err = e.store.CommitUpload(ctx, repo, u.ID, sha(b))
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return sha(b)
}

func (e *env) manifest(repo, mediaType string, v any, subject digest.Digest, artifactType string, tags ...string) digest.Digest {
	e.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		e.t.Fatal(err)
	}
	req := storage.PutManifestRequest{Manifest: storage.Manifest{Digest: sha(b), MediaType: mediaType, Data: b}, Tags: tags}
	if subject != "" {
		req.Subject = subject
		req.Referrer = storage.Descriptor{MediaType: mediaType, Digest: sha(b), Size: int64(len(b)), ArtifactType: artifactType,
			Annotations: map[string]string{"org.opencontainers.image.created": "2026-01-02T03:04:05Z"}}
	}
	if err := e.store.PutManifest(context.Background(), repo, req); err != nil {
		e.t.Fatal(err)
	}
	return sha(b)
}

type desc map[string]any

// image pushes a one-layer image for os/arch and returns its digest.
func (e *env) image(repo, arch string, tags ...string) digest.Digest {
	e.t.Helper()
	cfg := fmt.Appendf(nil, `{"created":"2026-01-02T03:04:05Z","architecture":%q,"os":"linux","config":{"Entrypoint":["/bin/app"],"Cmd":["serve","--port=80"],"Labels":{"org.example.team":"<b>infra</b>"},"Env":["SECRET=hunter2"]},"rootfs":{"type":"layers","diff_ids":[]}}`, arch)
	layer := []byte("layer of " + repo + " " + arch)
	big := bytes.Repeat([]byte("x"), 4096)
	m := desc{"schemaVersion": 2, "mediaType": ociManifest,
		"config": desc{"mediaType": ociConfig, "digest": e.blob(repo, cfg), "size": len(cfg)},
		"layers": []desc{
			{"mediaType": ociLayer, "digest": e.blob(repo, layer), "size": len(layer)},
			{"mediaType": ociLayer, "digest": e.blob(repo, big), "size": len(big)},
		},
		"annotations": desc{"org.opencontainers.image.source": "https://example.com/" + repo}}
	return e.manifest(repo, ociManifest, m, "", "", tags...)
}

// index pushes an index of two platform images.
func (e *env) index(repo string, tags ...string) digest.Digest {
	e.t.Helper()
	var children []desc
	for _, arch := range []string{"amd64", "arm64"} {
		d := e.image(repo, arch)
		m, _ := e.store.GetManifest(context.Background(), repo, d)
		children = append(children, desc{"mediaType": ociManifest, "digest": d, "size": len(m.Data),
			"platform": desc{"os": "linux", "architecture": arch}})
	}
	return e.manifest(repo, ociIndex, desc{"schemaVersion": 2, "mediaType": ociIndex, "manifests": children}, "", "", tags...)
}

// artifact pushes an artifact (one file) that refers to subject, if set.
func (e *env) artifact(repo, artifactType, title string, content []byte, subject digest.Digest, tags ...string) digest.Digest {
	e.t.Helper()
	empty := []byte("{}")
	m := desc{"schemaVersion": 2, "mediaType": ociManifest, "artifactType": artifactType,
		"config": desc{"mediaType": "application/vnd.oci.empty.v1+json", "digest": e.blob(repo, empty), "size": 2},
		"layers": []desc{{"mediaType": "application/octet-stream", "digest": e.blob(repo, content), "size": len(content),
			"annotations": desc{"org.opencontainers.image.title": title}}}}
	if subject != "" {
		sm, _ := e.store.GetManifest(context.Background(), repo, subject)
		m["subject"] = desc{"mediaType": sm.MediaType, "digest": subject, "size": len(sm.Data)}
	}
	return e.manifest(repo, ociManifest, m, subject, artifactType, tags...)
}
