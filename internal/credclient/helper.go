package credclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"
)

// TokenUsername is the username that tells docker, go-containerregistry,
// oras-go, regclient and containers/image that the secret is an identity
// (refresh) token: they trade it at the token service with
// grant_type=refresh_token. A client that does not know the convention
// sends it as a Basic password, which berth accepts too.
const TokenUsername = "<token>"

// notFound is the docker-credential-helpers message clients take for "no
// credentials here" (they then go on anonymously).
const notFound = "credentials not found in native keychain"

// errNotFound is a registry berth login did not configure.
var errNotFound = errors.New(notFound)

// Helper is docker-credential-berth.
type Helper struct {
	Env    Env
	Paths  Paths
	Stderr io.Writer
	// Timeout bounds obtaining an ID token and exchanging it.
	Timeout time.Duration
}

// helperCreds is the docker-credential-helpers credentials document.
type helperCreds struct {
	ServerURL string `json:"ServerURL"`
	Username  string `json:"Username"`
	Secret    string `json:"Secret"`
}

// Run runs one helper action (get, store, erase, list, version). Per the
// protocol an error message goes to standard output (the client shows
// it); it is also written to standard error. It never contains a token.
func (h *Helper) Run(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(h.Stderr, "usage: docker-credential-berth get|store|erase|list|version  (see docs/auth/credential-helper.md)")
		return 2
	}
	var err error
	switch args[0] {
	case "get":
		err = h.get(ctx, stdin, stdout)
	case "store":
		err = h.store(stdin)
	case "erase":
		err = h.erase(ctx, stdin)
	case "list":
		err = h.list(stdout)
	case "version":
		fmt.Fprintln(stdout, "docker-credential-berth (berth)")
	default:
		fmt.Fprintf(h.Stderr, "docker-credential-berth: unknown action %q: want get, store, erase, list or version\n", args[0])
		return 2
	}
	if err != nil {
		fmt.Fprintln(stdout, err)
		if !errors.Is(err, errNotFound) {
			fmt.Fprintln(h.Stderr, "docker-credential-berth:", err)
		}
		return 1
	}
	return 0
}

func readServerURL(stdin io.Reader) (string, error) {
	b, err := io.ReadAll(io.LimitReader(stdin, 4096))
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", errors.New("no server URL on standard input")
	}
	return s, nil
}

func (h *Helper) get(ctx context.Context, stdin io.Reader, stdout io.Writer) error {
	server, err := readServerURL(stdin)
	if err != nil {
		return err
	}
	host, _, err := RegistryHost(server)
	if err != nil {
		return errNotFound
	}
	tok, err := h.Credential(ctx, host)
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(helperCreds{ServerURL: server, Username: TokenUsername, Secret: tok})
}

// Credential returns a session token for host: the cached one while it is
// fresh, else a new one from a fresh ID token, cached.
func (h *Helper) Credential(ctx context.Context, host string) (string, error) {
	s, err := loadSettings(h.Paths.Settings)
	if err != nil {
		return "", err
	}
	reg, ok := s.Registries[host]
	if !ok {
		return "", errNotFound
	}
	now := h.Env.Now()
	if e := h.Paths.readCache(host); e != nil && e.Key == reg.cacheKey() &&
		now.Before(renewAt(e.Obtained, time.Duration(e.Lifetime)*time.Second)) {
		return e.Token, nil
	}
	cred, err := h.obtain(ctx, host, reg)
	if err != nil {
		return "", err
	}
	e := &cacheEntry{Key: reg.cacheKey(), Token: cred.Token, Obtained: now, Lifetime: int64(cred.Lifetime / time.Second)}
	if err := h.Paths.writeCache(host, e); err != nil {
		// The token is good; the next get exchanges again.
		fmt.Fprintf(h.Stderr, "docker-credential-berth: warning: caching the credential for %s: %v\n", host, err)
	}
	return cred.Token, nil
}

// obtain gets a fresh ID token from the registry's source and trades it.
func (h *Helper) obtain(ctx context.Context, host string, reg *Registry) (Credential, error) {
	timeout := h.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	src, err := ParseSource(reg.TokenSource)
	if err != nil {
		return Credential{}, fmt.Errorf("%s: %w", host, err)
	}
	idToken, err := src.IDToken(ctx, h.Env, reg.Audience)
	if err != nil {
		return Credential{}, fmt.Errorf("%s: %w", host, err)
	}
	ts, err := h.tokenService(reg)
	if err != nil {
		return Credential{}, fmt.Errorf("%s: %w", host, err)
	}
	cred, err := ts.Session(ctx, reg.Provider, idToken, "")
	if err != nil {
		return Credential{}, fmt.Errorf("%s: %w", host, err)
	}
	return cred, nil
}

func (h *Helper) tokenService(reg *Registry) (*TokenService, error) {
	u, err := url.Parse(reg.URL)
	if err != nil {
		return nil, fmt.Errorf("bad registry URL %q in the settings", reg.URL)
	}
	client, err := HTTPClient(reg.CAFile)
	if err != nil {
		return nil, err
	}
	return NewTokenService(client, u), nil
}

// store refuses: the helper gets credentials from the token source, and a
// password stored by `docker login -u` would be silently ignored.
func (h *Helper) store(stdin io.Reader) error {
	var c helperCreds
	b, _ := io.ReadAll(io.LimitReader(stdin, 1<<20))
	_ = json.Unmarshal(b, &c) // only for the server name in the message
	host := c.ServerURL
	if hh, _, err := RegistryHost(c.ServerURL); err == nil {
		host = hh
	}
	return fmt.Errorf("store: not supported: docker-credential-berth stores no credentials; it gets fresh ones for %s "+
		"from the token source berth login configured. To log in with a password instead, run `berth logout %s` first", host, host)
}

// erase forgets the cached credential of a registry and revokes it at
// berth (best effort). The registry stays configured: the next get
// obtains a new one. `berth logout` removes the configuration.
func (h *Helper) erase(ctx context.Context, stdin io.Reader) error {
	server, err := readServerURL(stdin)
	if err != nil {
		return err
	}
	host, _, err := RegistryHost(server)
	if err != nil {
		return nil
	}
	return h.forget(ctx, host)
}

func (h *Helper) forget(ctx context.Context, host string) error {
	e := h.Paths.readCache(host)
	if err := os.Remove(h.Paths.cacheFile(host)); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("erase %s: %w", host, err)
	}
	if e == nil {
		return nil
	}
	s, err := loadSettings(h.Paths.Settings)
	if err != nil || s.Registries[host] == nil {
		return nil
	}
	if ts, err := h.tokenService(s.Registries[host]); err == nil {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := ts.Revoke(ctx, e.Token); err != nil {
			fmt.Fprintf(h.Stderr, "docker-credential-berth: warning: revoking the cached token of %s: %v (it expires by itself)\n", host, err)
		}
	}
	return nil
}

// list names every configured registry with the identity-token username.
func (h *Helper) list(stdout io.Writer) error {
	s, err := loadSettings(h.Paths.Settings)
	if err != nil {
		return err
	}
	out := map[string]string{}
	for _, host := range s.hosts() {
		out[host] = TokenUsername
	}
	return json.NewEncoder(stdout).Encode(out)
}
