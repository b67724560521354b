package credclient

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Token source names (--token-source). A source with an argument is
// written NAME:ARG (gitlab:MY_ID_TOKEN, file:/path, command:my-tool token).
const (
	SourceAuto          = "auto"
	SourceGitHubActions = "github-actions"
	SourceGitLab        = "gitlab"
	SourceKubernetes    = "kubernetes"
	SourceFile          = "file"
	SourceCommand       = "command"

	// DefaultGitLabVariable is the CI/CD variable `id_tokens:` declares.
	DefaultGitLabVariable = "BERTH_ID_TOKEN"
	// DefaultKubernetesTokenFile is where docs/auth/kubernetes.md projects
	// the service-account token with berth's audience.
	DefaultKubernetesTokenFile = "/var/run/secrets/berth/token"
)

// maxIDTokenSize bounds an ID token read from anywhere.
const maxIDTokenSize = 64 << 10

// Env is what a Source may read of the process: its environment and the
// HTTP client for the GitHub Actions token endpoint.
type Env struct {
	Getenv func(string) string
	HTTP   *http.Client
	Now    func() time.Time
}

// OSEnv is the process's own environment.
func OSEnv() Env {
	return Env{Getenv: os.Getenv, HTTP: &http.Client{Timeout: 30 * time.Second}, Now: time.Now}
}

// Source is a parsed --token-source.
type Source struct {
	Kind string // one of the Source* names
	Arg  string // variable, path or command; "" for the defaults
}

// String is the source as --token-source spells it.
func (s Source) String() string {
	if s.Arg == "" {
		return s.Kind
	}
	return s.Kind + ":" + s.Arg
}

// ParseSource parses a --token-source value ("" is auto).
func ParseSource(spec string) (Source, error) {
	kind, arg, _ := strings.Cut(spec, ":")
	switch kind {
	case "", SourceAuto:
		if arg != "" {
			return Source{}, fmt.Errorf("token source %q: auto takes no argument", spec)
		}
		return Source{Kind: SourceAuto}, nil
	case SourceGitHubActions:
		if arg != "" {
			return Source{}, fmt.Errorf("token source %q: github-actions takes no argument (the audience is --audience)", spec)
		}
	case SourceGitLab, SourceKubernetes:
	case SourceFile, SourceCommand:
		if strings.TrimSpace(arg) == "" {
			return Source{}, fmt.Errorf("token source %q: want %s:%s", spec, kind, map[string]string{SourceFile: "PATH", SourceCommand: "COMMAND"}[kind])
		}
	default:
		return Source{}, fmt.Errorf("unknown token source %q: want auto, github-actions, gitlab[:VARIABLE], kubernetes[:PATH], file:PATH or command:COMMAND", spec)
	}
	return Source{Kind: kind, Arg: arg}, nil
}

// Resolve turns auto into the source the environment has: GitHub Actions
// when ACTIONS_ID_TOKEN_REQUEST_URL is set, GitLab when the default
// variable is set, Kubernetes when the default token file exists.
func (s Source) Resolve(env Env) (Source, error) {
	if s.Kind != SourceAuto {
		return s, nil
	}
	switch {
	case env.Getenv("ACTIONS_ID_TOKEN_REQUEST_URL") != "":
		return Source{Kind: SourceGitHubActions}, nil
	case env.Getenv(DefaultGitLabVariable) != "":
		return Source{Kind: SourceGitLab}, nil
	}
	if _, err := os.Stat(DefaultKubernetesTokenFile); err == nil {
		return Source{Kind: SourceKubernetes}, nil
	}
	return Source{}, fmt.Errorf("token source auto: found no ID token here: ACTIONS_ID_TOKEN_REQUEST_URL is not set "+
		"(GitHub Actions: give the job `permissions: id-token: write`), %s is not set (GitLab: declare it under id_tokens:), "+
		"%s does not exist (Kubernetes: project a service-account token there); or name the source with --token-source",
		DefaultGitLabVariable, DefaultKubernetesTokenFile)
}

// IDToken returns a fresh ID token from the source, for audience (GitHub
// Actions only; elsewhere the audience is fixed where the token is made).
// The token is checked to be a JWT that has not expired; it is never
// included in an error.
func (s Source) IDToken(ctx context.Context, env Env, audience string) (string, error) {
	r, err := s.Resolve(env)
	if err != nil {
		return "", err
	}
	var tok string
	switch r.Kind {
	case SourceGitHubActions:
		tok, err = githubToken(ctx, env, audience)
	case SourceGitLab:
		name := r.Arg
		if name == "" {
			name = DefaultGitLabVariable
		}
		if tok = env.Getenv(name); tok == "" {
			err = fmt.Errorf("the variable %s is not set: declare it under id_tokens: in .gitlab-ci.yml (aud: the provider's audience)", name)
		}
	case SourceKubernetes, SourceFile:
		path := r.Arg
		if path == "" {
			path = DefaultKubernetesTokenFile
		}
		tok, err = readTokenFile(path)
	case SourceCommand:
		tok, err = commandToken(ctx, r.Arg)
	}
	if err != nil {
		return "", fmt.Errorf("token source %s: %w", r, err)
	}
	tok = strings.TrimSpace(tok)
	if err := checkJWT(tok, env.Now()); err != nil {
		return "", fmt.Errorf("token source %s: %w", r, err)
	}
	return tok, nil
}

func githubToken(ctx context.Context, env Env, audience string) (string, error) {
	reqURL, reqTok := env.Getenv("ACTIONS_ID_TOKEN_REQUEST_URL"), env.Getenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
	if reqURL == "" || reqTok == "" {
		return "", errors.New("ACTIONS_ID_TOKEN_REQUEST_URL or ACTIONS_ID_TOKEN_REQUEST_TOKEN is not set: give the job `permissions: id-token: write`")
	}
	u, err := url.Parse(reqURL)
	if err != nil {
		return "", errors.New("ACTIONS_ID_TOKEN_REQUEST_URL is not a URL")
	}
	if audience != "" {
		q := u.Query()
		q.Set("audience", audience)
		u.RawQuery = q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+reqTok)
	req.Header.Set("Accept", "application/json")
	res, err := env.HTTP.Do(req)
	if err != nil {
		return "", fmt.Errorf("requesting an ID token: %w", err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxIDTokenSize))
	if err != nil {
		return "", fmt.Errorf("requesting an ID token: %w", err)
	}
	if res.StatusCode != http.StatusOK {
		return "", fmt.Errorf("the ID token endpoint answered HTTP %d", res.StatusCode)
	}
	var a struct {
		Value string `json:"value"`
	}
	if err := json.Unmarshal(body, &a); err != nil || a.Value == "" {
		return "", errors.New("the ID token endpoint's answer has no value")
	}
	return a.Value, nil
}

func readTokenFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxIDTokenSize+1))
	if err != nil {
		return "", err
	}
	if len(b) > maxIDTokenSize {
		return "", fmt.Errorf("%s is over %d bytes", path, maxIDTokenSize)
	}
	return string(b), nil
}

// commandToken runs command with sh -c and returns its standard output.
// Its standard error is passed on (it is the command's own message).
func commandToken(ctx context.Context, command string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", command)
	var out bytes.Buffer
	cmd.Stdout = &limitedWriter{w: &out, n: maxIDTokenSize}
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("the command failed: %w", err)
	}
	return out.String(), nil
}

type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if len(p) > l.n {
		return 0, fmt.Errorf("the command printed over %d bytes", maxIDTokenSize)
	}
	l.n -= len(p)
	return l.w.Write(p)
}

// checkJWT checks that tok looks like a JWT and, when it has an exp, that
// it has not expired. Nothing is verified: berth does that.
func checkJWT(tok string, now time.Time) error {
	if tok == "" {
		return errors.New("the ID token is empty")
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return errors.New("not a JWT (want three dot-separated parts)")
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return errors.New("not a JWT (the payload is not base64url)")
	}
	var c struct {
		Exp *float64 `json:"exp"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return errors.New("not a JWT (the payload is not JSON)")
	}
	if c.Exp != nil {
		exp := time.Unix(int64(*c.Exp), 0)
		if !now.Before(exp) {
			return fmt.Errorf("the ID token expired at %s (%s ago); the source must provide a fresh one",
				exp.UTC().Format(time.RFC3339), now.Sub(exp).Round(time.Second))
		}
	}
	return nil
}
