package credclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// Grants and token types of berth's token service (docs/auth/tokens.md).
const (
	GrantPassword      = "password"
	GrantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	TokenTypeIDToken   = "urn:ietf:params:oauth:token-type:id_token"
	TokenTypeSession   = "urn:berth:token-type:session"
)

// maxAnswerSize bounds what is read of a token service answer.
const maxAnswerSize = 64 << 10

// HTTPClient returns a client that trusts the PEM CA bundle in caFile, or
// the system roots when caFile is empty.
func HTTPClient(caFile string) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca-file %s: no PEM certificate in it", caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr}, nil
}

// TokenService speaks to berth's /token.
type TokenService struct {
	Client *http.Client
	URL    string // e.g. https://registry.example.com/token
}

// NewTokenService returns the token service of the berth at registry
// (scheme://host[:port]).
func NewTokenService(client *http.Client, registry *url.URL) *TokenService {
	return &TokenService{Client: client, URL: registry.JoinPath("token").String()}
}

// Answer is a token service answer (success or OAuth2 error).
type Answer struct {
	AccessToken      string `json:"access_token"`
	ExpiresIn        int64  `json:"expires_in"`
	Scope            string `json:"scope"`
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
}

// Credential is a session token and how long it is valid from issuance.
type Credential struct {
	Token    string
	Lifetime time.Duration
}

// Session checks that provider accepts idToken (a password grant naming the
// provider, so a token of another provider is refused with a message naming
// this one) and trades it for a session token (RFC 8693). With repo set,
// the password grant asks for repository:<repo>:pull and the policies must
// grant it.
func (t *TokenService) Session(ctx context.Context, provider, idToken, repo string) (Credential, error) {
	form := url.Values{"grant_type": {GrantPassword}, "username": {provider}, "password": {idToken}}
	if repo != "" {
		form.Set("scope", "repository:"+repo+":pull")
	}
	a, err := t.Post(ctx, form)
	if err != nil {
		return Credential{}, fmt.Errorf("provider %q: %w", provider, err)
	}
	if repo != "" && !GrantsPull(a.Scope, repo) {
		return Credential{}, fmt.Errorf("berth's access policies do not let this service account pull %s (provider %q granted %q)", repo, provider, a.Scope)
	}
	s, err := t.Post(ctx, url.Values{
		"grant_type": {GrantTokenExchange}, "subject_token": {idToken},
		"subject_token_type": {TokenTypeIDToken}, "requested_token_type": {TokenTypeSession},
	})
	if err != nil {
		return Credential{}, fmt.Errorf("token exchange: %w", err)
	}
	if s.AccessToken == "" || s.ExpiresIn <= 0 {
		return Credential{}, errors.New("token exchange: the answer has no session token")
	}
	return Credential{Token: s.AccessToken, Lifetime: time.Duration(s.ExpiresIn) * time.Second}, nil
}

// Revoke revokes a refresh or session token (RFC 7009).
func (t *TokenService) Revoke(ctx context.Context, token string) error {
	u := strings.TrimSuffix(t.URL, "/") + "/revoke"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(url.Values{"token": {token}}.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := t.Client.Do(req)
	if err != nil {
		return fmt.Errorf("token service: %w", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered HTTP %d", u, res.StatusCode)
	}
	return nil
}

// Post sends one form-encoded grant and decodes the answer.
func (t *TokenService) Post(ctx context.Context, form url.Values) (*Answer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.URL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := t.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("token service: %w", err)
	}
	defer res.Body.Close()
	var a Answer
	body, err := io.ReadAll(io.LimitReader(res.Body, maxAnswerSize))
	if err == nil {
		err = json.Unmarshal(body, &a)
	}
	if res.StatusCode != http.StatusOK {
		if a.Error != "" {
			return nil, fmt.Errorf("%s refused: %s: %s (HTTP %d)", t.URL, a.Error, a.ErrorDescription, res.StatusCode)
		}
		return nil, fmt.Errorf("%s answered HTTP %d", t.URL, res.StatusCode)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: unreadable answer: %w", t.URL, err)
	}
	return &a, nil
}

// GrantsPull reports whether a granted scope list includes pull of repo.
func GrantsPull(scope, repo string) bool {
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
