package token

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/berth-registry/berth/internal/auth"
	"github.com/berth-registry/berth/internal/testutil"
)

type fixture struct {
	t      testing.TB
	svc    *Service
	srv    *httptest.Server
	clock  *testutil.Clock
	opts   Options
	logs   *testutil.Buffer
	limits Limits
	// credExpires: alice's password and the ID token stop working then,
	// like an ID token's exp.
	credExpires time.Time
}

const (
	testIDToken  = "header.good-id-token.sig"
	testPassword = "alice-secret"
)

var errDown = fmt.Errorf("test: idp down: %w", auth.ErrUnavailable)

func oidcIdentity() *auth.Identity {
	return &auth.Identity{
		ID: "oidc:github:org/app", Username: "org/app", Groups: []string{"ci"},
		OIDC: &auth.OIDC{ProviderName: "github", Claims: map[string]any{
			"repository": "org/app", "sub": "repo:org/app:ref:refs/heads/main", "run_number": float64(42),
		}},
	}
}

// newFixture builds a Service with test callbacks; mod may change options
// before New.
func newFixture(t testing.TB, mod func(f *fixture)) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{t: t, clock: testutil.NewClock(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)), logs: &testutil.Buffer{}}
	f.credExpires = f.clock.Now().Add(time.Minute)
	f.opts = Options{
		Service: "berth", Issuer: "berth",
		KeyFile: dir + "/key.pem", StateDir: dir + "/state",
		Now:    f.clock.Now,
		Logger: slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Authenticate: func(ctx context.Context, user, pass, ip string) (*auth.Identity, error) {
			switch {
			case IsOpaqueToken(pass):
				return f.svc.VerifySessionToken(ctx, pass, ip)
			case user == "down":
				return nil, errDown
			case user == "github" && pass == testIDToken && f.clock.Now().Before(f.credExpires):
				return oidcIdentity(), nil
			case user == "alice" && pass == testPassword && f.clock.Now().Before(f.credExpires):
				return &auth.Identity{ID: "user:alice", Username: "alice", ClientIP: ip}, nil
			}
			return nil, fmt.Errorf("test: bad password: %w", auth.ErrInvalidCredentials)
		},
		VerifyIDToken: func(ctx context.Context, raw string) (*auth.Identity, error) {
			switch {
			case raw == "down":
				return nil, errDown
			case raw == "huge":
				id := oidcIdentity()
				id.OIDC.Claims["blob"] = strings.Repeat("x", 9000)
				return id, nil
			case raw == testIDToken && f.clock.Now().Before(f.credExpires):
				return oidcIdentity(), nil
			}
			return nil, fmt.Errorf("test: bad id token: %w", auth.ErrInvalidCredentials)
		},
		// Grants alice pull,push on alice/*, the CI identity pull,push on
		// org/app, everyone pull on public/*, and always something extra
		// that was not asked for (the service must drop it).
		Grant: func(ctx context.Context, id *auth.Identity, req []auth.Access) []auth.Access {
			out := []auth.Access{{Type: "repository", Name: "secret/x", Actions: []string{"*"}}}
			for _, a := range req {
				base := a.Name[strings.LastIndexByte(a.Name, ':')+1:] // drop a host:port
				_, base, _ = strings.Cut(base, "/")
				switch {
				case a.Type != "repository":
				case id.ID == "user:alice" && strings.HasPrefix(a.Name, "alice/"),
					id.ID == "user:alice" && strings.HasPrefix(base, "alice/"),
					id.ID == "oidc:github:org/app" && a.Name == "org/app":
					out = append(out, auth.Access{Type: a.Type, Name: a.Name, Actions: []string{"pull", "push"}})
				case strings.HasPrefix(a.Name, "public/"):
					out = append(out, auth.Access{Type: a.Type, Name: a.Name, Actions: []string{"pull"}})
				}
			}
			return out
		},
		LimitsFor: func(id *auth.Identity) Limits { return f.limits },
	}
	if mod != nil {
		mod(f)
	}
	svc, err := New(f.opts)
	if err != nil {
		t.Fatal(err)
	}
	f.svc = svc
	mux := http.NewServeMux()
	mux.Handle("/token", svc)
	mux.Handle("/token/revoke", svc)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	t.Cleanup(func() {
		// No credential may ever reach the log.
		logs := f.logs.String()
		for _, secret := range []string{testPassword, testIDToken, RefreshPrefix, SessionPrefix, "eyJ"} {
			if strings.Contains(logs, secret) {
				t.Errorf("log contains a credential (%q):\n%s", secret, logs)
			}
		}
	})
	return f
}

type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (r response) str(k string) string { s, _ := r.body[k].(string); return s }

func (f *fixture) do(req *http.Request) response {
	f.t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	out := response{status: res.StatusCode, header: res.Header, raw: string(b)}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &out.body); err != nil {
			f.t.Fatalf("body is not JSON: %q", b)
		}
	}
	return out
}

// get does GET /token?query with optional Basic credentials (user "" = none).
func (f *fixture) get(query, user, pass string) response {
	f.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/token?"+query, nil)
	if user != "" || pass != "" {
		req.SetBasicAuth(user, pass)
	}
	return f.do(req)
}

func (f *fixture) post(path string, form url.Values) response {
	f.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return f.do(req)
}

// verify checks an access token and returns its identity.
func (f *fixture) verify(raw string) *auth.Identity {
	f.t.Helper()
	id, err := f.svc.VerifyAccessToken(context.Background(), raw)
	if err != nil {
		f.t.Fatalf("VerifyAccessToken: %v", err)
	}
	return id
}

func wantStatus(t *testing.T, r response, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.raw)
	}
}

func isInvalid(err error) bool { return errors.Is(err, auth.ErrInvalidCredentials) }
