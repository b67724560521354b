package oidc

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/berth-registry/berth/internal/devissuer"
)

// benchSetup returns a Verifier with a github provider whose RSA-2048 key set
// is already fetched, a GitHub-Actions-sized RS256 token of it, and the key
// the Verifier verifies that token with: the three benchmarks below measure
// the same token and key.
func benchSetup(b *testing.B, cacheSize int) (*Verifier, string, *rsa.PublicKey) {
	iss := newIssuer(b, devissuer.Options{KeyType: devissuer.RSA})
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

// benchShared is a SharedCache in memory, cheaper than Redis: what it adds
// to a verification is the verifier's own cost of sharing.
type benchShared struct{ m sync.Map }

func (c *benchShared) Get(_ context.Context, key string) ([]byte, bool, error) {
	v, ok := c.m.Load(key)
	if !ok {
		return nil, false, nil
	}
	return v.([]byte), true, nil
}

func (c *benchShared) Set(_ context.Context, key string, val []byte, _ time.Duration) error {
	c.m.Store(key, val)
	return nil
}

// benchMiss verifies distinct tokens in turn with a one-entry token cache
// whose keys are already fetched: every operation is a local miss verified
// with the keys in memory, the path a replica takes for a token it has not
// seen, with (shared) or without a shared cache.
func benchMiss(b *testing.B, shared bool) {
	iss := newIssuer(b, devissuer.Options{KeyType: devissuer.RSA})
	o := Options{CacheSize: 1}
	if shared {
		o.Shared = &benchShared{}
	}
	v := newVerifier(b, o, ProviderConfig{Name: "gh", Preset: "github", Issuer: iss.URL(), Audiences: []string{"berth"}})
	toks := make([]string, 256)
	for i := range toks {
		c := iss.GitHubClaims("berth")
		c["jti"] = fmt.Sprintf("bench-%d", i)
		toks[i] = iss.Mint(c)
	}
	ctx := context.Background()
	if _, err := v.Verify(ctx, toks[0]); err != nil { // fetch keys
		b.Fatal(err)
	}
	v.writing.Wait()
	b.ReportAllocs()
	start := processCPU()
	i := 0
	for b.Loop() {
		i++
		if _, err := v.Verify(ctx, toks[i%len(toks)]); err != nil {
			b.Fatal(err)
		}
	}
	v.writing.Wait() // the background writes are part of the cost
	reportCPU(b, start)
}

// BenchmarkVerifyMiss is a local cache miss without a shared cache.
func BenchmarkVerifyMiss(b *testing.B) { benchMiss(b, false) }

// BenchmarkVerifyMissShared is a local cache miss with a shared cache: the
// token is verified with the keys in memory (the shared cache is not read)
// and the verification is shared in the background.
func BenchmarkVerifyMissShared(b *testing.B) { benchMiss(b, true) }
