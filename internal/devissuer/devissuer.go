// Package devissuer is an OpenID Connect issuer for development and tests: it
// backs `berth dev-issuer` and is the fake issuer of the tests: discovery, a JWKS with rotating RSA-2048 or EC P-256
// keys, token minting (including hostile tokens), an outage switch, fetch
// counters, optional TLS with an in-memory CA (optionally requiring client
// certificates or a bearer token, like a Kubernetes API server), and a GitHub-Actions-compatible
// token endpoint (what ACTIONS_ID_TOKEN_REQUEST_URL points at).
//
//	iss, err := devissuer.New(devissuer.Options{})
//	if err != nil { ... }
//	defer iss.Close()
//	raw := iss.Mint(map[string]any{"sub": "repo:acme/app:ref:refs/heads/main", "aud": "berth"})
//
// The issuer signs tokens with keys it keeps in memory. It is NEVER a place
// for real credentials, and NEVER meant to be reachable from other hosts: it
// listens on 127.0.0.1 unless Options.Addr says otherwise.
package devissuer

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"maps"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// KeyType selects the signing key of an Issuer.
type KeyType string

// Key types.
const (
	RSA KeyType = "RSA" // RSA-2048, RS256
	EC  KeyType = "EC"  // P-256, ES256
)

// Omit, as the value of a claim or header parameter given to Mint or
// MintWith, removes that entry (including a default such as exp).
var Omit = omit{}

type omit struct{}

// Options configure an Issuer. The zero value is a plain-HTTP RSA issuer at
// the root path of a random loopback port.
type Options struct {
	// KeyType is RSA (default) or EC.
	KeyType KeyType
	// TLS serves HTTPS with a certificate for 127.0.0.1 and localhost, signed
	// by a private CA generated in memory (see CAPEM).
	TLS bool
	// Path is the issuer path, e.g. "/gitlab" for https://127.0.0.1:port/gitlab.
	// A trailing slash is kept in the issuer URL (issuers compare exactly).
	Path string
	// Addr is the listen address; default "127.0.0.1:0".
	Addr string
	// TokenTTL is the default lifetime of minted tokens; default 10m.
	TokenTTL time.Duration
	// Now is the clock used for iat/nbf/exp defaults; default time.Now.
	Now func() time.Time
	// GitHubClaims override the claims of tokens served by the GitHub token
	// endpoint (see GitHubTokenRequest); Omit removes a default claim.
	GitHubClaims map[string]any
	// GitHubRequestToken is the bearer token the GitHub endpoint accepts
	// (ACTIONS_ID_TOKEN_REQUEST_TOKEN); default a random string.
	GitHubRequestToken string
	// BearerToken, when set, is required as "Authorization: Bearer" on
	// discovery and JWKS requests (401 otherwise), like a Kubernetes API
	// server's; SetBearerToken changes it (a rotated token).
	BearerToken string
	// RequireClientCert (with TLS) refuses TLS clients without a
	// certificate signed by the issuer's CA; ClientCertificate makes one.
	RequireClientCert bool
	// SigningKey, when set, is the first signing key (*rsa.PrivateKey or
	// *ecdsa.PrivateKey, overriding KeyType) instead of a generated one. Its
	// kid is its RFC 7638 thumbprint, so an issuer restarted with the same
	// key publishes the same kid (berth dev-issuer keeps it on disk).
	SigningKey crypto.Signer
}

// Issuer is a running fake issuer. Its methods are safe for concurrent use.
type Issuer struct {
	opts   Options
	now    func() time.Time
	ttl    time.Duration
	srv    *http.Server
	ln     net.Listener
	base   string // scheme://host:port
	url    string // base + opts.Path
	caPEM  []byte
	ca     *x509.Certificate
	caKey  crypto.Signer
	client *http.Client
	ghTok  string
	bearer atomic.Pointer[string]
	denied atomic.Int64

	mu      sync.Mutex
	keys    []*signingKey // keys[0] is current; the rest are still published
	nextKid int

	down       atomic.Bool
	jwks       atomic.Int64
	discovery  atomic.Int64
	ghRequests atomic.Int64
}

type signingKey struct {
	kid  string
	alg  string
	priv crypto.Signer
}

// New starts an issuer. Close it when done.
func New(opts Options) (*Issuer, error) {
	if opts.KeyType == "" {
		opts.KeyType = RSA
	}
	if opts.KeyType != RSA && opts.KeyType != EC {
		return nil, fmt.Errorf("devissuer: unknown key type %q", opts.KeyType)
	}
	if opts.Path != "" && !strings.HasPrefix(opts.Path, "/") {
		return nil, fmt.Errorf("devissuer: path %q must start with /", opts.Path)
	}
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	i := &Issuer{opts: opts, now: opts.Now, ttl: opts.TokenTTL, ghTok: opts.GitHubRequestToken}
	if i.now == nil {
		i.now = time.Now
	}
	if i.ttl <= 0 {
		i.ttl = 10 * time.Minute
	}
	if i.ghTok == "" {
		i.ghTok = randomHex(16)
	}
	var k *signingKey
	var err error
	if opts.SigningKey != nil {
		k, err = givenKey(opts.SigningKey)
	} else {
		k, err = i.newKey()
	}
	if err != nil {
		return nil, err
	}
	i.keys = []*signingKey{k}

	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("devissuer: %w", err)
	}
	scheme := "http"
	transport := http.DefaultTransport.(*http.Transport).Clone()
	if opts.TLS {
		cert, ca, caKey, err := newTLSCert()
		if err != nil {
			ln.Close()
			return nil, err
		}
		i.ca, i.caKey = ca, caKey
		i.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})
		pool := x509.NewCertPool()
		pool.AddCert(ca)
		transport.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		srvTLS := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		if opts.RequireClientCert {
			srvTLS.ClientAuth = tls.RequireAndVerifyClientCert
			srvTLS.ClientCAs = pool
			// The issuer's own client (Client) presents one too.
			certPEM, keyPEM, err := i.ClientCertificate()
			if err != nil {
				ln.Close()
				return nil, err
			}
			cc, err := tls.X509KeyPair(certPEM, keyPEM)
			if err != nil {
				ln.Close()
				return nil, err
			}
			transport.TLSClientConfig.Certificates = []tls.Certificate{cc}
		}
		ln = tls.NewListener(ln, srvTLS)
		scheme = "https"
	}
	if opts.BearerToken != "" {
		i.SetBearerToken(opts.BearerToken)
	}
	i.ln = ln
	i.client = &http.Client{Transport: transport, Timeout: 30 * time.Second}
	i.base = scheme + "://" + ln.Addr().String()
	i.url = i.base + opts.Path

	prefix := strings.TrimSuffix(opts.Path, "/")
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+prefix+"/.well-known/openid-configuration", i.serveDiscovery)
	mux.HandleFunc("GET "+prefix+"/.well-known/jwks", i.serveJWKS)
	mux.HandleFunc("/gh/token", i.serveGitHubToken)
	// Handshake errors are expected (tests present wrong CAs): keep them quiet.
	i.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	go i.srv.Serve(ln) //nolint:errcheck // returns http.ErrServerClosed on Close
	return i, nil
}

// URL is the issuer URL, the exact `iss` of minted tokens.
func (i *Issuer) URL() string { return i.url }

// JWKSURL is where the key set is served (also announced by discovery).
func (i *Issuer) JWKSURL() string {
	return i.base + strings.TrimSuffix(i.opts.Path, "/") + "/.well-known/jwks"
}

// CAPEM is the PEM certificate of the private CA that signed the server
// certificate; nil without TLS.
func (i *Issuer) CAPEM() []byte { return i.caPEM }

// Client is an HTTP client that trusts CAPEM.
func (i *Issuer) Client() *http.Client { return i.client }

// Close stops the server; later connections are refused.
func (i *Issuer) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := i.srv.Shutdown(ctx); err != nil {
		i.srv.Close()
	}
}

// SetBearerToken changes the bearer token discovery and JWKS requests need
// ("" = none).
func (i *Issuer) SetBearerToken(tok string) { i.bearer.Store(&tok) }

// Unauthorized counts discovery and JWKS requests refused for a missing or
// wrong bearer token.
func (i *Issuer) Unauthorized() int { return int(i.denied.Load()) }

// authorized checks the bearer token of a discovery or JWKS request.
func (i *Issuer) authorized(w http.ResponseWriter, r *http.Request) bool {
	want := i.bearer.Load()
	if want == nil || *want == "" || r.Header.Get("Authorization") == "Bearer "+*want {
		return true
	}
	i.denied.Add(1)
	http.Error(w, "unauthorized", http.StatusUnauthorized)
	return false
}

// ClientCertificate makes a TLS client certificate (PEM certificate and
// PKCS#8 key) signed by the issuer's CA; an error without TLS.
func (i *Issuer) ClientCertificate() (certPEM, keyPEM []byte, err error) {
	if i.ca == nil {
		return nil, nil, fmt.Errorf("devissuer: client certificates need TLS")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()),
		Subject:      pkix.Name{CommonName: "devissuer client " + randomHex(4)},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, i.ca, &key.PublicKey, i.caKey)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), nil
}

// SetDown makes discovery and the JWKS answer 503 (true) or serve again (false).
func (i *Issuer) SetDown(down bool) { i.down.Store(down) }

// JWKSFetches counts requests to the JWKS, including those answered 503.
func (i *Issuer) JWKSFetches() int { return int(i.jwks.Load()) }

// DiscoveryFetches counts requests to the discovery document, including 503s.
func (i *Issuer) DiscoveryFetches() int { return int(i.discovery.Load()) }

// KeyID is the kid of the current signing key.
func (i *Issuer) KeyID() string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.keys[0].kid
}

// PublicKey is the public half of the current signing key
// (*rsa.PublicKey or *ecdsa.PublicKey).
func (i *Issuer) PublicKey() crypto.PublicKey {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.keys[0].priv.Public()
}

// Rotate makes a new key current. The previous key stays in the JWKS until
// the next rotation, unless dropOld removes it now. Keys older than the
// previous one are always removed.
func (i *Issuer) Rotate(dropOld bool) error {
	k, err := i.newKey()
	if err != nil {
		return err
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	if dropOld {
		i.keys = []*signingKey{k}
	} else {
		i.keys = []*signingKey{k, i.keys[0]}
	}
	return nil
}

func (i *Issuer) newKey() (*signingKey, error) {
	i.mu.Lock()
	i.nextKid++
	n := i.nextKid
	i.mu.Unlock()
	switch i.opts.KeyType {
	case EC:
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("devissuer: %w", err)
		}
		return &signingKey{kid: fmt.Sprintf("ec-%d-%s", n, randomHex(4)), alg: "ES256", priv: priv}, nil
	default:
		priv, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, fmt.Errorf("devissuer: %w", err)
		}
		return &signingKey{kid: fmt.Sprintf("rsa-%d-%s", n, randomHex(4)), alg: "RS256", priv: priv}, nil
	}
}

// givenKey is Options.SigningKey with its thumbprint as kid.
func givenKey(priv crypto.Signer) (*signingKey, error) {
	var alg string
	switch p := priv.(type) {
	case *rsa.PrivateKey:
		alg = "RS256"
	case *ecdsa.PrivateKey:
		if p.Curve != elliptic.P256() {
			return nil, fmt.Errorf("devissuer: signing key: only P-256 EC keys")
		}
		alg = "ES256"
	default:
		return nil, fmt.Errorf("devissuer: signing key: unsupported type %T", priv)
	}
	tp, err := (&jose.JSONWebKey{Key: priv.Public()}).Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("devissuer: signing key: %w", err)
	}
	return &signingKey{kid: b64(tp), alg: alg, priv: priv}, nil
}

// Signing selects how MintWith signs.
type Signing int

// Signing modes.
const (
	// SignKey signs with the issuer's key (MintOptions.KeyID, default the
	// current one) using that key's algorithm, whatever the header says.
	SignKey Signing = iota
	// SignNone leaves the signature empty (header alg defaults to "none").
	SignNone
	// SignHMACPublicKey signs with HS256 keyed by the PEM of the public key:
	// the classic algorithm-confusion attack (header alg defaults to "HS256").
	SignHMACPublicKey
	// SignCorrupt signs like SignKey and then flips a bit of the signature.
	SignCorrupt
)

// MintOptions tune MintWith.
type MintOptions struct {
	Sign Signing
	// KeyID picks the published key to sign with (and the default kid header);
	// default the current key.
	KeyID string
	// NoDefaults skips the iss/iat/nbf/exp defaults.
	NoDefaults bool
}

// Mint returns a signed JWT with claims over the defaults iss = URL(),
// iat = nbf = now, exp = now + TokenTTL. Omit removes a claim. It panics if
// claims cannot be encoded as JSON (a bug in the calling test).
func (i *Issuer) Mint(claims map[string]any) string {
	tok, err := i.MintWith(nil, claims, MintOptions{})
	if err != nil {
		panic(err)
	}
	return tok
}

// MintWith mints a token with full control of the header and the signing, for
// hostile cases: alg none, HS256 keyed with the public key, a wrong kid, an
// alg not matching the key type, a bad signature. Header defaults are
// alg (of the key or signing mode), kid and typ "JWT"; Omit removes one.
func (i *Issuer) MintWith(header, claims map[string]any, o MintOptions) (string, error) {
	i.mu.Lock()
	k := i.keys[0]
	if o.KeyID != "" {
		k = nil
		for _, c := range i.keys {
			if c.kid == o.KeyID {
				k = c
			}
		}
	}
	i.mu.Unlock()
	if k == nil {
		return "", fmt.Errorf("devissuer: no published key %q", o.KeyID)
	}

	h := map[string]any{"alg": k.alg, "kid": k.kid, "typ": "JWT"}
	switch o.Sign {
	case SignNone:
		h["alg"] = "none"
	case SignHMACPublicKey:
		h["alg"] = "HS256"
	}
	merge(h, header)
	c := map[string]any{}
	if !o.NoDefaults {
		now := i.now()
		c["iss"] = i.url
		c["iat"] = now.Unix()
		c["nbf"] = now.Unix()
		c["exp"] = now.Add(i.ttl).Unix()
	}
	merge(c, claims)

	hj, err := json.Marshal(h)
	if err != nil {
		return "", fmt.Errorf("devissuer: header: %w", err)
	}
	cj, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("devissuer: claims: %w", err)
	}
	input := b64(hj) + "." + b64(cj)
	var sig []byte
	switch o.Sign {
	case SignNone:
	case SignHMACPublicKey:
		der, err := x509.MarshalPKIXPublicKey(k.priv.Public())
		if err != nil {
			return "", fmt.Errorf("devissuer: %w", err)
		}
		mac := hmac.New(sha256.New, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
		mac.Write([]byte(input))
		sig = mac.Sum(nil)
	case SignKey, SignCorrupt:
		sig, err = sign(k, []byte(input))
		if err != nil {
			return "", err
		}
		if o.Sign == SignCorrupt {
			sig[len(sig)/2] ^= 0x01
		}
	default:
		return "", fmt.Errorf("devissuer: unknown signing mode %d", o.Sign)
	}
	return input + "." + b64(sig), nil
}

func sign(k *signingKey, input []byte) ([]byte, error) {
	digest := sha256.Sum256(input)
	switch priv := k.priv.(type) {
	case *rsa.PrivateKey:
		return rsa.SignPKCS1v15(rand.Reader, priv, crypto.SHA256, digest[:])
	case *ecdsa.PrivateKey:
		r, s, err := ecdsa.Sign(rand.Reader, priv, digest[:])
		if err != nil {
			return nil, err
		}
		out := make([]byte, 64) // JWS ES256: R || S, 32 bytes each
		r.FillBytes(out[:32])
		s.FillBytes(out[32:])
		return out, nil
	}
	return nil, fmt.Errorf("devissuer: unsupported key %T", k.priv)
}

func merge(dst, src map[string]any) {
	for k, v := range src {
		if _, ok := v.(omit); ok {
			delete(dst, k)
			continue
		}
		dst[k] = v
	}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (i *Issuer) serveDiscovery(w http.ResponseWriter, r *http.Request) {
	i.discovery.Add(1)
	if i.down.Load() {
		http.Error(w, "issuer down", http.StatusServiceUnavailable)
		return
	}
	if !i.authorized(w, r) {
		return
	}
	writeJSON(w, map[string]any{
		"issuer":                                i.url,
		"jwks_uri":                              i.JWKSURL(),
		"response_types_supported":              []string{"id_token"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256", "ES256"},
		"claims_supported":                      []string{"sub", "aud", "exp", "iat", "iss", "nbf", "jti"},
	})
}

func (i *Issuer) serveJWKS(w http.ResponseWriter, r *http.Request) {
	i.jwks.Add(1)
	if i.down.Load() {
		http.Error(w, "issuer down", http.StatusServiceUnavailable)
		return
	}
	if !i.authorized(w, r) {
		return
	}
	i.mu.Lock()
	var set jose.JSONWebKeySet
	for _, k := range i.keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Algorithm: k.alg, Use: "sig"})
	}
	i.mu.Unlock()
	writeJSON(w, set)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v) //nolint:errcheck // the client hung up
}

// GitHubTokenRequest returns what a GitHub Actions job finds in
// ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN. As on
// GitHub, the URL already has a query, so clients append "&audience=X".
func (i *Issuer) GitHubTokenRequest() (requestURL, requestToken string) {
	return i.base + "/gh/token?api-version=2.0", i.ghTok
}

// GitHubRequests counts requests to the GitHub token endpoint.
func (i *Issuer) GitHubRequests() int { return int(i.ghRequests.Load()) }

// GitHubClaims are the claims the GitHub token endpoint puts in a token for
// audience aud (before iss/iat/nbf/exp), shaped like a real Actions token.
func (i *Issuer) GitHubClaims(aud string) map[string]any {
	c := map[string]any{
		"jti":                   randomHex(16),
		"sub":                   "repo:octo-org/octo-repo:ref:refs/heads/main",
		"ref":                   "refs/heads/main",
		"sha":                   "e5b1b2f9c4a1f2b9d0c1a2b3c4d5e6f708192a3b",
		"repository":            "octo-org/octo-repo",
		"repository_owner":      "octo-org",
		"repository_owner_id":   "65",
		"repository_id":         "74",
		"repository_visibility": "private",
		"run_id":                "1234567890",
		"run_number":            "10",
		"run_attempt":           "1",
		"runner_environment":    "github-hosted",
		"actor":                 "octocat",
		"actor_id":              "12",
		"workflow":              "release",
		"workflow_ref":          "octo-org/octo-repo/.github/workflows/release.yml@refs/heads/main",
		"workflow_sha":          "e5b1b2f9c4a1f2b9d0c1a2b3c4d5e6f708192a3b",
		"job_workflow_ref":      "octo-org/octo-repo/.github/workflows/release.yml@refs/heads/main",
		"job_workflow_sha":      "e5b1b2f9c4a1f2b9d0c1a2b3c4d5e6f708192a3b",
		"head_ref":              "",
		"base_ref":              "",
		"event_name":            "push",
		"ref_type":              "branch",
		"ref_protected":         "true",
	}
	merge(c, maps.Clone(i.opts.GitHubClaims))
	if aud == "" {
		owner, _ := c["repository_owner"].(string)
		aud = "https://github.com/" + owner
	}
	c["aud"] = aud
	return c
}

func (i *Issuer) serveGitHubToken(w http.ResponseWriter, r *http.Request) {
	i.ghRequests.Add(1)
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "bearer") || !hmac.Equal([]byte(tok), []byte(i.ghTok)) {
		http.Error(w, "bad request token", http.StatusUnauthorized)
		return
	}
	jwt, err := i.MintWith(nil, i.GitHubClaims(r.URL.Query().Get("audience")), MintOptions{})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, map[string]string{"value": jwt})
}

// newTLSCert makes a CA and a server certificate for 127.0.0.1, ::1 and
// localhost signed by it.
func newTLSCert() (tls.Certificate, *x509.Certificate, crypto.Signer, error) {
	fail := func(err error) (tls.Certificate, *x509.Certificate, crypto.Signer, error) {
		return tls.Certificate{}, nil, nil, fmt.Errorf("devissuer: tls: %w", err)
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fail(err)
	}
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "oidctest CA " + randomHex(4)},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return fail(err)
	}
	ca, err = x509.ParseCertificate(caDER)
	if err != nil {
		return fail(err)
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fail(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:     []string{"localhost"},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &leafKey.PublicKey, caKey)
	if err != nil {
		return fail(err)
	}
	return tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: leafKey}, ca, caKey, nil
}
