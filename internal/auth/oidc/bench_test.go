package oidc

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/berth-registry/berth/internal/oidctest"
)

// benchSetup returns a Verifier with a github provider whose RSA-2048 key set
// is already fetched, a GitHub-Actions-sized RS256 token of it, and the key
// the Verifier verifies that token with: the three benchmarks below measure
// the same token and key.
func benchSetup(b *testing.B, cacheSize int) (*Verifier, string, *rsa.PublicKey) {
	iss := newIssuer(b, oidctest.Options{KeyType: oidctest.RSA})
	v := newVerifier(b, Options{CacheSize: cacheSize}, ProviderConfig{Name: "gh", Preset: "github", Issuer: iss.URL(), Audiences: []string{"berth"}})
	tok := iss.GitHubClaims("berth")
	raw := iss.Mint(tok)
	if _, err := v.Verify(context.Background(), raw); err != nil { // fetch keys
		b.Fatal(err)
	}
	keys := v.providers["gh"].keys.keys
	pub, ok := keys[0].Key.(*rsa.PublicKey)
	if len(keys) != 1 || !ok || pub.N.BitLen() != 2048 || !pub.Equal(iss.PublicKey()) {
		b.Fatalf("want the issuer's one RSA-2048 key, have %d keys: %T", len(keys), keys[0].Key)
	}
	if t, err := parseUnverified(raw); err != nil || t.alg != "RS256" || len(t.claims) < 25 {
		b.Fatalf("want an RS256 token with GitHub's claims: %v", err)
	}
	return v, raw, pub
}

// reportCPU reports the process CPU time per operation since start: what an
// operation costs, and far steadier than ns/op on a loaded machine.
func reportCPU(b *testing.B, start time.Duration) {
	if start > 0 {
		b.ReportMetric(float64(processCPU()-start)/float64(b.N), "cpu-ns/op")
	}
}

// BenchmarkVerifyCold is the first verification of a token (the cache is off,
// keys are fetched): parse, RS256 signature, claims, default username.
func BenchmarkVerifyCold(b *testing.B) {
	v, raw, _ := benchSetup(b, -1)
	ctx := context.Background()
	b.ReportAllocs()
	start := processCPU()
	for b.Loop() {
		if _, err := v.Verify(ctx, raw); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, start)
}

// BenchmarkRSAVerifyBare is the floor: crypto/rsa on the same signature with
// the same key.
func BenchmarkRSAVerifyBare(b *testing.B) {
	_, raw, pub := benchSetup(b, -1)
	i := strings.LastIndexByte(raw, '.')
	sig, err := base64.RawURLEncoding.DecodeString(raw[i+1:])
	if err != nil {
		b.Fatal(err)
	}
	input := []byte(raw[:i])
	b.ReportAllocs()
	start := processCPU()
	for b.Loop() {
		digest := sha256.Sum256(input)
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, start)
}

// BenchmarkJOSEVerify is go-jose alone on the same token and key: parse the
// compact JWS, verify its signature. VerifyCold cannot be cheaper.
func BenchmarkJOSEVerify(b *testing.B) {
	_, raw, pub := benchSetup(b, -1)
	algs := []jose.SignatureAlgorithm{jose.RS256}
	b.ReportAllocs()
	start := processCPU()
	for b.Loop() {
		jws, err := jose.ParseSignedCompact(raw, algs)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := jws.Verify(pub); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, start)
}

// BenchmarkVerifyCached is every later request with the same token.
func BenchmarkVerifyCached(b *testing.B) {
	v, raw, _ := benchSetup(b, 0)
	ctx := context.Background()
	b.ReportAllocs()
	start := processCPU()
	for b.Loop() {
		if _, err := v.Verify(ctx, raw); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, start)
}
