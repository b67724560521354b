package oidc

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
)

// In-cluster service-account files, mounted in every pod that automounts its
// service-account token.
const (
	ServiceAccountTokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"
	ServiceAccountCAFile    = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
)

// InCluster returns the bearer token file and CA file a kubernetes provider
// uses by default when berth runs in a pod: the pod's service-account token
// and CA, only when all of these hold, so that the token never leaves for
// another host by default:
//   - the preset is "kubernetes";
//   - berth runs in a cluster (KUBERNETES_SERVICE_HOST is set);
//   - the issuer is the in-cluster API server over https: its host is
//     kubernetes, kubernetes.default, kubernetes.default.svc,
//     kubernetes.default.svc.cluster.local, or KUBERNETES_SERVICE_HOST (with
//     another cluster domain, set bearer_token_file);
//   - the file exists (exists is os.Stat's answer; nil means os.Stat).
//
// Either result is "" when it does not apply. getenv is os.Getenv in
// production.
func InCluster(preset, issuer string, getenv func(string) string, exists func(string) bool) (tokenFile, caFile string) {
	if exists == nil {
		exists = func(name string) bool { _, err := os.Stat(name); return err == nil }
	}
	svc := getenv("KUBERNETES_SERVICE_HOST")
	if preset != "kubernetes" || svc == "" {
		return "", ""
	}
	u, err := url.Parse(issuer)
	if err != nil || u.Scheme != "https" {
		return "", ""
	}
	h := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	switch {
	case h == "kubernetes", h == "kubernetes.default", h == "kubernetes.default.svc",
		h == "kubernetes.default.svc.cluster.local", h == strings.ToLower(strings.Trim(svc, "[]")):
	default:
		return "", ""
	}
	if exists(ServiceAccountTokenFile) {
		tokenFile = ServiceAccountTokenFile
	}
	if exists(ServiceAccountCAFile) {
		caFile = ServiceAccountCAFile
	}
	return tokenFile, caFile
}

// bearerTransport adds "Authorization: Bearer <file>" to the requests whose
// origin (scheme, host, port) is one of origins: the issuer's and a
// configured jwks_uri's. A request elsewhere (a discovered jwks_uri on
// another host, a redirect) goes without it. The file is read for every
// request it is sent with: discovery and key-set fetches are rare, and a
// projected token rotates.
type bearerTransport struct {
	rt      http.RoundTripper
	file    string
	origins map[string]bool
}

func newBearerTransport(rt http.RoundTripper, file string, urls ...string) *bearerTransport {
	t := &bearerTransport{rt: rt, file: file, origins: map[string]bool{}}
	for _, s := range urls {
		if u, err := url.Parse(s); err == nil && u.Host != "" {
			t.origins[origin(u)] = true
		}
	}
	return t
}

// origin is scheme://host:port, with the scheme's default port.
func origin(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = map[string]string{"https": "443", "http": "80"}[u.Scheme]
	}
	return u.Scheme + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

func (t *bearerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !t.origins[origin(req.URL)] {
		return t.rt.RoundTrip(req)
	}
	b, err := os.ReadFile(t.file)
	if err != nil {
		return nil, fmt.Errorf("bearer_token_file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return nil, fmt.Errorf("bearer_token_file: %s is empty", t.file)
	}
	req = req.Clone(req.Context()) // a RoundTripper must not change its request
	req.Header.Set("Authorization", "Bearer "+tok)
	return t.rt.RoundTrip(req)
}
