package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

const (
	apiVersionV1   = "credentialprovider.kubelet.k8s.io/v1"
	requestKind    = "CredentialProviderRequest"
	responseKind   = "CredentialProviderResponse"
	maxRequestSize = 1 << 20
	maxAnswerSize  = 64 << 10
	// cacheMargin is taken off the credential's lifetime so the kubelet
	// never hands out a credential about to expire.
	cacheMargin = 30 * time.Second
	// sessionUsername is the Basic username sent with the session token: any
	// name but a provider's is accepted with a berth_st_ password.
	sessionUsername = "session"

	grantPassword      = "password"
	grantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	tokenTypeIDToken   = "urn:ietf:params:oauth:token-type:id_token"
	tokenTypeSession   = "urn:berth:token-type:session"
)

// request is the kubelet's CredentialProviderRequest.
type request struct {
	APIVersion                string            `json:"apiVersion"`
	Kind                      string            `json:"kind"`
	Image                     string            `json:"image"`
	ServiceAccountToken       string            `json:"serviceAccountToken,omitempty"`
	ServiceAccountAnnotations map[string]string `json:"serviceAccountAnnotations,omitempty"`
}

// response is the CredentialProviderResponse the kubelet reads.
type response struct {
	APIVersion    string                `json:"apiVersion"`
	Kind          string                `json:"kind"`
	CacheKeyType  string                `json:"cacheKeyType"`
	CacheDuration string                `json:"cacheDuration,omitempty"`
	Auth          map[string]authConfig `json:"auth"`
}

type authConfig struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

type options struct {
	registry      *url.URL
	provider      string
	caFile        string
	timeout       time.Duration
	annotationKey string
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err == nil {
		err = provide(ctx, o, stdin, stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "berth-credential-provider:", err)
		return 1
	}
	return 0
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("berth-credential-provider", flag.ContinueOnError)
	fs.SetOutput(stderr)
	registry := fs.String("registry", "", "berth's URL, e.g. https://registry.example.com (required)")
	o := &options{}
	fs.StringVar(&o.provider, "provider", "", "the [auth.oidc.<name>] provider that verifies the service-account token (required)")
	fs.StringVar(&o.caFile, "ca-file", "", "PEM file of the CA that signed berth's certificate (default: system roots)")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "time allowed for the whole exchange")
	fs.StringVar(&o.annotationKey, "annotation-provider-key", "berth.dev/provider", "service-account annotation that overrides --provider")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	var problems []string
	if fs.NArg() > 0 {
		problems = append(problems, fmt.Sprintf("unexpected arguments %q", fs.Args()))
	}
	if *registry == "" {
		problems = append(problems, "--registry is required")
	} else if u, err := url.Parse(*registry); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		problems = append(problems, fmt.Sprintf("--registry %q: want an http(s) URL", *registry))
	} else {
		o.registry = u
	}
	if o.provider == "" {
		problems = append(problems, "--provider is required")
	}
	if o.timeout <= 0 {
		problems = append(problems, "--timeout must be positive")
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "; "))
	}
	return o, nil
}

func provide(ctx context.Context, o *options, stdin io.Reader, stdout io.Writer) error {
	req, err := readRequest(stdin)
	if err != nil {
		return err
	}
	host, repo, err := splitImage(req.Image)
	if err != nil {
		return err
	}
	provider := o.provider
	if p := req.ServiceAccountAnnotations[o.annotationKey]; p != "" {
		provider = p
	}
	client, err := httpClient(o)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	ts := &tokenService{client: client, url: o.registry.JoinPath("token").String()}
	cred, ttl, err := ts.credential(ctx, provider, req.ServiceAccountToken, repo)
	if err != nil {
		return err
	}
	resp := newResponse(req.APIVersion, host+"/"+repo, cred, ttl)
	return json.NewEncoder(stdout).Encode(resp)
}

// readRequest decodes and checks the kubelet's request.
func readRequest(r io.Reader) (*request, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxRequestSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading the request from stdin: %w", err)
	}
	if len(b) > maxRequestSize {
		return nil, fmt.Errorf("the request on stdin is over %d bytes", maxRequestSize)
	}
	var req request
	if err := json.Unmarshal(b, &req); err != nil {
		return nil, fmt.Errorf("stdin is not a CredentialProviderRequest: %w", err)
	}
	if req.APIVersion != apiVersionV1 {
		return nil, fmt.Errorf("unsupported apiVersion %q: want %s (set apiVersion: %s in the CredentialProviderConfig's provider)",
			req.APIVersion, apiVersionV1, apiVersionV1)
	}
	if req.Kind != requestKind {
		return nil, fmt.Errorf("unsupported kind %q: want %s", req.Kind, requestKind)
	}
	if req.Image == "" {
		return nil, errors.New("the request names no image")
	}
	if req.ServiceAccountToken == "" {
		return nil, errors.New("the request carries no serviceAccountToken: set tokenAttributes " +
			"(serviceAccountTokenAudience, cacheType: ServiceAccount, requireServiceAccount: true) " +
			"for this provider in the kubelet's CredentialProviderConfig (Kubernetes >= 1.34, KEP-4412); " +
			"no stored credential is used instead")
	}
	return &req, nil
}

// splitImage returns the registry host and the repository of an image
// reference (host/repo[:tag][@digest]).
func splitImage(image string) (host, repo string, err error) {
	ref := image
	if i := strings.IndexByte(ref, '@'); i >= 0 {
		ref = ref[:i]
	}
	if i := strings.LastIndexByte(ref, ':'); i > strings.LastIndexByte(ref, '/') {
		ref = ref[:i]
	}
	host, repo, ok := strings.Cut(ref, "/")
	if !ok || host == "" || repo == "" || !(strings.ContainsAny(host, ".:") || host == "localhost") {
		return "", "", fmt.Errorf("image %q does not name a registry host and a repository", image)
	}
	return host, repo, nil
}

func newResponse(apiVersion, key, password string, ttl time.Duration) response {
	return response{
		APIVersion: apiVersion,
		Kind:       responseKind,
		// Image, not Registry or Global: the credential was asked for this
		// image's repository and is cached for it alone (with the kubelet's
		// cacheType ServiceAccount, for this service account alone too).
		CacheKeyType:  "Image",
		CacheDuration: max(ttl-cacheMargin, 0).String(),
		Auth:          map[string]authConfig{key: {Username: sessionUsername, Password: password}},
	}
}

func httpClient(o *options) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if o.caFile != "" {
		pem, err := os.ReadFile(o.caFile)
		if err != nil {
			return nil, fmt.Errorf("--ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca-file %s: no PEM certificate in it", o.caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr}, nil
}

// tokenService speaks to berth's /token.
type tokenService struct {
	client *http.Client
	url    string
}

type tokenAnswer struct {
	AccessToken      string `json:"access_token"`
	ExpiresIn        int64  `json:"expires_in"`
	Scope            string `json:"scope"`
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
}

// credential checks that provider accepts the service-account token and that
// the policies let it pull repo (a password grant naming the provider, asking
// for repository:<repo>:pull), then trades the token for a session token (RFC
// 8693). It returns the session token and its lifetime.
func (t *tokenService) credential(ctx context.Context, provider, saToken, repo string) (string, time.Duration, error) {
	scope := "repository:" + repo + ":pull"
	a, err := t.post(ctx, url.Values{
		"grant_type": {grantPassword}, "username": {provider}, "password": {saToken}, "scope": {scope},
	})
	if err != nil {
		return "", 0, fmt.Errorf("provider %q: %w", provider, err)
	}
	if !grantsPull(a.Scope, repo) {
		return "", 0, fmt.Errorf("berth's access policies do not let this service account pull %s (provider %q granted %q)", repo, provider, a.Scope)
	}
	s, err := t.post(ctx, url.Values{
		"grant_type": {grantTokenExchange}, "subject_token": {saToken},
		"subject_token_type": {tokenTypeIDToken}, "requested_token_type": {tokenTypeSession},
	})
	if err != nil {
		return "", 0, fmt.Errorf("token exchange: %w", err)
	}
	if s.AccessToken == "" || s.ExpiresIn <= 0 {
		return "", 0, errors.New("token exchange: the answer has no session token")
	}
	return s.AccessToken, time.Duration(s.ExpiresIn) * time.Second, nil
}

func (t *tokenService) post(ctx context.Context, form url.Values) (*tokenAnswer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := t.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("token service: %w", err)
	}
	defer res.Body.Close()
	var a tokenAnswer
	body, err := io.ReadAll(io.LimitReader(res.Body, maxAnswerSize))
	if err == nil {
		err = json.Unmarshal(body, &a)
	}
	if res.StatusCode != http.StatusOK {
		if a.Error != "" {
			return nil, fmt.Errorf("%s refused: %s: %s (HTTP %d)", t.url, a.Error, a.ErrorDescription, res.StatusCode)
		}
		return nil, fmt.Errorf("%s answered HTTP %d", t.url, res.StatusCode)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: unreadable answer: %w", t.url, err)
	}
	return &a, nil
}

// grantsPull reports whether a granted scope list includes pull of repo.
func grantsPull(scope, repo string) bool {
	for _, s := range strings.Fields(scope) {
		rest, ok := strings.CutPrefix(s, "repository:"+repo+":")
		if !ok {
			continue
		}
		for _, a := range strings.Split(rest, ",") {
			if a == "pull" || a == "*" {
				return true
			}
		}
	}
	return false
}
