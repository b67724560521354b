package oidc

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/berth-registry/berth/internal/oidctest"
)

func benchSetup(b *testing.B, cacheSize int) (*Verifier, *oidctest.Issuer, string) {
	iss := newIssuer(b, oidctest.Options{KeyType: oidctest.RSA})
	v := newVerifier(b, Options{CacheSize: cacheSize}, ProviderConfig{Name: "gh", Preset: "github", Issuer: iss.URL(), Audiences: []string{"berth"}})
	tok := iss.GitHubClaims("berth")
	raw := iss.Mint(tok)
	if _, err := v.Verify(context.Background(), raw); err != nil { // fetch keys
		b.Fatal(err)
	}
	return v, iss, raw
}

// BenchmarkVerifyCold is the first verification of a token (the cache is off,
// keys are fetched): parse, RS256 signature, claims, CEL username.
func BenchmarkVerifyCold(b *testing.B) {
	v, _, raw := benchSetup(b, -1)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, raw); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRSAVerifyBare is the floor: crypto/rsa on the same signature.
func BenchmarkRSAVerifyBare(b *testing.B) {
	_, iss, raw := benchSetup(b, -1)
	i := strings.LastIndexByte(raw, '.')
	sig, err := base64.RawURLEncoding.DecodeString(raw[i+1:])
	if err != nil {
		b.Fatal(err)
	}
	pub := iss.PublicKey().(*rsa.PublicKey)
	input := []byte(raw[:i])
	b.ReportAllocs()
	for b.Loop() {
		digest := sha256.Sum256(input)
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyCached is every later request with the same token.
func BenchmarkVerifyCached(b *testing.B) {
	v, _, raw := benchSetup(b, 0)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, raw); err != nil {
			b.Fatal(err)
		}
	}
}
