package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/berth-registry/berth/internal/credclient"
)

const (
	apiVersionV1   = "credentialprovider.kubelet.k8s.io/v1"
	requestKind    = "CredentialProviderRequest"
	responseKind   = "CredentialProviderResponse"
	maxRequestSize = 1 << 20
	// cacheMargin is taken off the credential's lifetime so the kubelet
	// never hands out a credential about to expire.
	cacheMargin = 30 * time.Second
	// sessionUsername is the Basic username sent with the session token: any
	// name but a provider's is accepted with a berth_st_ password.
	sessionUsername = "session"
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
	if dir, wait, ok, err := installArgs(args, stderr); ok {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		if err != nil {
			fmt.Fprintln(stderr, "berth-credential-provider:", err)
			return 2
		}
		return runInstall(ctx, dir, wait, stdout, stderr)
	}
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
	client, err := credclient.HTTPClient(o.caFile)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	// The password grant checks that the provider accepts the token and that
	// the policies let it pull repo; the exchange gives the session token.
	cred, err := credclient.NewTokenService(client, o.registry).Session(ctx, provider, req.ServiceAccountToken, repo)
	if err != nil {
		return err
	}
	resp := newResponse(req.APIVersion, host+"/"+repo, cred.Token, cred.Lifetime)
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
