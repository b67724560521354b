package oidc

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/berth-registry/berth/internal/auth"
	"github.com/berth-registry/berth/internal/devissuer"
)

// Two providers of one issuer with different audiences and claim mappings:
// each token goes through the mapping of the provider its aud selects, and
// the issuer's keys are fetched once, for both.
func TestSeveralProvidersOneIssuer(t *testing.T) {
	iss := newIssuer(t, devissuer.Options{KeyType: devissuer.EC})
	v := newVerifier(t, Options{},
		ProviderConfig{Name: "ci", Issuer: iss.URL(), Audiences: []string{"berth-ci"},
			ClaimMapping: ClaimMapping{Username: "'ci/' + claims.sub", Groups: "['ci']"}},
		ProviderConfig{Name: "deploy", Issuer: iss.URL(), Audiences: []string{"berth-deploy", "other"},
			ClaimMapping: ClaimMapping{Username: "'deploy/' + claims.sub", Groups: "['deployers']"}},
	)
	ctx := context.Background()
	ci := iss.Mint(map[string]any{"aud": "berth-ci", "sub": "job"})
	deploy := iss.Mint(map[string]any{"aud": []any{"x", "berth-deploy"}, "sub": "argo"})
	id, err := v.Verify(ctx, ci)
	if err != nil || id.ID != "oidc:ci:ci/job" || id.OIDC.ProviderName != "ci" || strings.Join(id.Groups, ",") != "ci" {
		t.Fatalf("ci token: %v %+v", err, id)
	}
	id, err = v.Verify(ctx, deploy)
	if err != nil || id.ID != "oidc:deploy:deploy/argo" || id.OIDC.ProviderName != "deploy" || strings.Join(id.Groups, ",") != "deployers" {
		t.Fatalf("deploy token: %v %+v", err, id)
	}
	// Basic login: the username names the provider, which must be the one
	// the token's audience selects.
	if id, err = v.VerifyFor(ctx, "deploy", deploy); err != nil || id.Username != "deploy/argo" {
		t.Fatalf("VerifyFor deploy: %v %+v", err, id)
	}
	_, err = v.VerifyFor(ctx, "ci", deploy)
	refused(t, err, auth.ErrInvalidCredentials, "audience belong to provider deploy", deploy)
	// No provider's audience: refused, naming both.
	neither := iss.Mint(map[string]any{"aud": "elsewhere", "sub": "x"})
	_, err = v.Verify(ctx, neither)
	refused(t, err, auth.ErrInvalidCredentials, `none of theirs: ci [berth-ci]; deploy [berth-deploy, other]`, neither)
	_, err = v.VerifyFor(ctx, "ci", neither)
	refused(t, err, auth.ErrInvalidCredentials, "audience mismatch", neither)
	if iss.JWKSFetches() != 1 || iss.DiscoveryFetches() != 1 {
		t.Fatalf("one key set per issuer: %d JWKS and %d discovery fetches", iss.JWKSFetches(), iss.DiscoveryFetches())
	}
}

// Providers of one issuer whose audiences overlap (or one of which takes any
// audience) cannot be told apart: refused at load, naming both.
func TestAmbiguousProvidersRefused(t *testing.T) {
	iss := newIssuer(t, devissuer.Options{KeyType: devissuer.EC})
	_, _, err := New([]ProviderConfig{
		{Name: "a", Issuer: iss.URL(), Audiences: []string{"x", "shared"}},
		{Name: "b", Issuer: iss.URL(), Audiences: []string{"shared", "y"}},
		{Name: "gh1", Preset: "github", Audiences: []string{"berth"}},
		{Name: "gh2", Preset: "github"},
	}, Options{})
	var ce *ConfigError
	if !errors.As(err, &ce) || len(ce.Problems) != 2 {
		t.Fatalf("want 2 problems, got %v", err)
	}
	for i, want := range []string{
		`auth.oidc.b.issuer: "` + iss.URL() + `" is also the issuer of provider "a" and both accept the audience "shared"`,
		`auth.oidc.gh2.issuer: "` + GitHubIssuer + `" is also the issuer of provider "gh1" and one of them accepts any audience`,
	} {
		if got := ce.Problems[i].String(); !strings.HasPrefix(got, want) {
			t.Errorf("problem %d: %q, want prefix %q", i, got, want)
		}
	}
}

// A Basic login whose username names no provider: accepted for a provider
// with accept_any_username that the token's iss (and aud) select, refused
// with the reason otherwise.
func TestLoginProvider(t *testing.T) {
	k8s := newIssuer(t, devissuer.Options{KeyType: devissuer.EC})
	gh := newIssuer(t, devissuer.Options{KeyType: devissuer.EC})
	v := newVerifier(t, Options{},
		ProviderConfig{Name: "cluster", Preset: "kubernetes", Issuer: k8s.URL(), Audiences: []string{"berth"}, AcceptAnyUsername: true},
		ProviderConfig{Name: "cluster-admin", Issuer: k8s.URL(), Audiences: []string{"admin"}},
		ProviderConfig{Name: "gh", Preset: "github", Issuer: gh.URL(), Audiences: []string{"berth"}},
	)
	ctx := context.Background()
	tok := k8s.Mint(map[string]any{"aud": "berth", "sub": "system:serviceaccount:ns:sa"})
	p, err := v.LoginProvider("oauth", tok)
	if err != nil || p != "cluster" {
		t.Fatalf("LoginProvider = %q, %v", p, err)
	}
	if id, err := v.VerifyFor(ctx, p, tok); err != nil || id.OIDC.ProviderName != "cluster" {
		t.Fatalf("VerifyFor: %v", err)
	}
	ghTok := gh.Mint(map[string]any{"aud": "berth", "sub": "repo:o/r"})
	_, err = v.LoginProvider("oauth", ghTok)
	refused(t, err, auth.ErrInvalidCredentials,
		`username "oauth" names no provider; the token's issuer "`+gh.URL()+`" belongs to provider gh (log in with -u gh, or set accept_any_username to allow any username)`, ghTok)
	admin := k8s.Mint(map[string]any{"aud": "admin", "sub": "x"})
	_, err = v.LoginProvider("oauth", admin)
	refused(t, err, auth.ErrInvalidCredentials, "belongs to provider cluster-admin", admin)
	nobody := k8s.Mint(map[string]any{"aud": "nobody", "sub": "x"})
	_, err = v.LoginProvider("oauth", nobody)
	refused(t, err, auth.ErrInvalidCredentials, `username "oauth" names no provider; issuer`, nobody)
	// Not an ID token of a configured issuer: no provider, no error (a
	// static user's password, checked by the caller).
	other := newIssuer(t, devissuer.Options{KeyType: devissuer.EC})
	for _, pw := range []string{"hunter2", "a.b.c", other.Mint(map[string]any{"aud": "berth"})} {
		if p, err := v.LoginProvider("oauth", pw); p != "" || err != nil {
			t.Errorf("LoginProvider(%.10q) = %q, %v; want none", pw, p, err)
		}
	}
}
