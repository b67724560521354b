package token

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/berth-registry/berth/internal/auth"
)

func TestKeyPersistedAndReloaded(t *testing.T) {
	f := newFixture(t, nil)
	fi, err := os.Stat(f.opts.KeyFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	tok := f.get("scope=repository:alice/app:pull", "alice", testPassword).str("token")

	again, err := New(f.opts) // a restart
	if err != nil {
		t.Fatal(err)
	}
	if again.KeyID() != f.svc.KeyID() {
		t.Error("key changed across restart")
	}
	id, err := again.VerifyAccessToken(context.Background(), tok)
	if err != nil || !auth.Allows(id.Access, "repository", "alice/app", "pull") {
		t.Fatalf("token after restart: %+v %v", id, err)
	}

	// Another key: same issuer, service and state, refused.
	o := f.opts
	o.KeyFile = filepath.Join(t.TempDir(), "other.pem")
	other, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.VerifyAccessToken(context.Background(), tok); !isInvalid(err) {
		t.Errorf("token from another key accepted: %v", err)
	}
	// Ephemeral key when KeyFile is empty.
	o.KeyFile = ""
	if eph, err := New(o); err != nil || eph.KeyID() == f.svc.KeyID() {
		t.Errorf("ephemeral key: %v", err)
	}
}

func writePEM(t *testing.T, typ string, der []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "k.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestKeyFormats(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sec1, _ := x509.MarshalECPrivateKey(ec)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	edDER, _ := x509.MarshalPKCS8PrivateKey(ed)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384DER, _ := x509.MarshalPKCS8PrivateKey(p384)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 1024)
	rsaDER, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
	for _, tc := range []struct {
		name, path string
		alg        jose.SignatureAlgorithm
	}{
		{"sec1", writePEM(t, "EC PRIVATE KEY", sec1), jose.ES256},
		{"ed25519", writePEM(t, "PRIVATE KEY", edDER), jose.EdDSA},
		{"p384", writePEM(t, "PRIVATE KEY", p384DER), ""},
		{"rsa", writePEM(t, "PRIVATE KEY", rsaDER), ""},
		{"cert", writePEM(t, "CERTIFICATE", edDER), ""},
		{"garbage", writePEM(t, "PRIVATE KEY", []byte("x")), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			o := f.opts
			o.KeyFile = tc.path
			svc, err := New(o)
			if tc.alg == "" {
				if err == nil {
					t.Fatal("accepted")
				}
				return
			}
			if err != nil || svc.active.Load().current.alg != tc.alg {
				t.Fatalf("%v %v", svc, err)
			}
			raw, _, _, err := svc.signAccess(&auth.Identity{ID: "user:x"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := svc.VerifyAccessToken(context.Background(), raw); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestNewValidation(t *testing.T) {
	for _, o := range []Options{
		{StateDir: t.TempDir()},
		{Service: "berth"},
		{Service: "berth", StateDir: t.TempDir(), AccessTTL: 30 * time.Second},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}

// forge signs claims with key (kid and typ as given) using go-jose.
func forge(t *testing.T, key any, alg jose.SignatureAlgorithm, kid, typ string, claims any) string {
	t.Helper()
	opts := &jose.SignerOptions{}
	if typ != "" {
		opts = opts.WithType(jose.ContentType(typ))
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(claims)
	jws, err := sig.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := jws.CompactSerialize()
	return s
}

func TestVerifyAccessTokenRefuses(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	good := f.get("scope=repository:alice/app:pull", "alice", testPassword).str("token")
	parts := strings.Split(good, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var claims map[string]any
	json.Unmarshal(payload, &claims)

	reencode := func(mod func(map[string]any)) string {
		c := map[string]any{}
		for k, v := range claims {
			c[k] = v
		}
		mod(c)
		b, _ := json.Marshal(c)
		return parts[0] + "." + base64.RawURLEncoding.EncodeToString(b) + "." + parts[2]
	}
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pk, _ := parseKeyPEM(mustRead(t, f.opts.KeyFile))

	cases := map[string]string{
		"tampered access": reencode(func(c map[string]any) {
			c["access"] = []map[string]any{{"type": "repository", "name": "alice/app", "actions": []string{"push"}}}
		}),
		"tampered signature":    parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2])),
		"alg none":              base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"at+jwt"}`)) + "." + parts[1] + ".",
		"other key, our kid":    forge(t, otherKey, jose.ES256, f.svc.KeyID(), accessTokenTyp, claims),
		"our key, no typ":       forge(t, pk, jose.ES256, f.svc.KeyID(), "", claims),
		"our key, ID token typ": forge(t, pk, jose.ES256, f.svc.KeyID(), "JWT", claims),
		"wrong aud":             forge(t, pk, jose.ES256, f.svc.KeyID(), accessTokenTyp, with(claims, "aud", "other")),
		"wrong iss":             forge(t, pk, jose.ES256, f.svc.KeyID(), accessTokenTyp, with(claims, "iss", "dex")),
		"no exp":                forge(t, pk, jose.ES256, f.svc.KeyID(), accessTokenTyp, with(claims, "exp", nil)),
		"no sub":                forge(t, pk, jose.ES256, f.svc.KeyID(), accessTokenTyp, with(claims, "sub", nil)),
		"not yet valid":         forge(t, pk, jose.ES256, f.svc.KeyID(), accessTokenTyp, with(claims, "nbf", f.clock.Now().Add(time.Hour).Unix())),
		"json serialization":    `{"payload":"` + parts[1] + `","protected":"` + parts[0] + `","signature":"` + parts[2] + `"}`,
		"huge":                  strings.Repeat("a", maxTokenBytes+1),
		"empty":                 "",
		"opaque":                "berth_st_x",
	}
	// Sanity: re-signing the unmodified claims with our key verifies.
	if _, err := f.svc.VerifyAccessToken(ctx, forge(t, pk, jose.ES256, f.svc.KeyID(), accessTokenTyp, claims)); err != nil {
		t.Fatalf("control: %v", err)
	}
	for name, raw := range cases {
		id, err := f.svc.VerifyAccessToken(ctx, raw)
		t.Logf("%s: %v", name, err)
		if !isInvalid(err) || id != nil {
			t.Errorf("%s: accepted (%v)", name, err)
		}
	}
	// Expiry, with the skew.
	f.clock.Advance(DefaultAccessTTL + clockSkew - time.Second)
	if _, err := f.svc.VerifyAccessToken(ctx, good); err != nil {
		t.Errorf("within skew: %v", err)
	}
	f.clock.Advance(2 * time.Second)
	if _, err := f.svc.VerifyAccessToken(ctx, good); !isInvalid(err) {
		t.Errorf("expired token accepted: %v", err)
	}
	// Another service (audience) sharing the key refuses it.
	f2 := newFixture(t, func(g *fixture) { g.opts.KeyFile, g.opts.Service = f.opts.KeyFile, "other" })
	if _, err := f2.svc.VerifyAccessToken(ctx, good); !isInvalid(err) {
		t.Errorf("wrong audience accepted: %v", err)
	}
}

func with(c map[string]any, k string, v any) map[string]any {
	out := map[string]any{}
	for k, v := range c {
		out[k] = v
	}
	if v == nil {
		delete(out, k)
	} else {
		out[k] = v
	}
	return out
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestIsBerthToken(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.get("", "alice", testPassword).str("token")
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for raw, want := range map[string]bool{
		tok:                 true,
		"berth_rt_anything": true,
		"berth_st_anything": true,
		"berth_xx_anything": false,
		forge(t, other, jose.ES256, "k", "JWT", map[string]any{"iss": "https://token.actions.githubusercontent.com"}): false,
		forge(t, other, jose.ES256, "k", "JWT", map[string]any{"iss": "berth"}):                                       false, // another key's header: not ours
		"a.b.c": false,
		"":      false,
	} {
		if got := f.svc.IsBerthToken(raw); got != want {
			t.Errorf("IsBerthToken(%.30q) = %v", raw, got)
		}
	}
}

func TestTokenSizeCap(t *testing.T) {
	f := newFixture(t, nil)
	id := oidcIdentity()
	id.OIDC.Claims["blob"] = strings.Repeat("x", 5000)
	raw, _, _, err := f.svc.signAccess(id, nil)
	if err != nil || len(raw) > maxTokenBytes {
		t.Fatalf("5000-byte claim: %d %v", len(raw), err)
	}
	id.OIDC.Claims["blob"] = strings.Repeat("x", 6500)
	if _, _, _, err := f.svc.signAccess(id, nil); err != errTooLarge {
		t.Fatalf("6500-byte claim: %v", err)
	}
	// Many scopes: refused with 400, never 500.
	var scopes []string
	for i := range maxScopes {
		scopes = append(scopes, "repository:public/"+strings.Repeat("n", 60)+string(rune('a'+i%26))+strings.Repeat("z", i/26)+":pull")
	}
	r := f.get("scope="+strings.Join(scopes, "+"), "", "")
	wantStatus(t, r, 400)
}

func BenchmarkVerifyAccessToken(b *testing.B) {
	dir := b.TempDir()
	svc, err := New(Options{Service: "berth", StateDir: dir, KeyFile: dir + "/k.pem"})
	if err != nil {
		b.Fatal(err)
	}
	id := oidcIdentity()
	raw, _, _, err := svc.signAccess(id, []auth.Access{{Type: "repository", Name: "org/app", Actions: []string{"pull", "push"}}})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.Run("cached", func(b *testing.B) {
		b.ReportAllocs()
		b.ReportMetric(float64(len(raw)), "token-bytes")
		for b.Loop() {
			if _, err := svc.VerifyAccessToken(ctx, raw); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("signature", func(b *testing.B) { // every call checks the signature
		b.ReportAllocs()
		for b.Loop() {
			svc.verified.m = nil
			if _, err := svc.VerifyAccessToken(ctx, raw); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestVerifiedCacheBounded(t *testing.T) {
	var vc verifiedCache
	now := time.Now()
	c := &accessClaims{}
	c.Expiry = jwt.NewNumericDate(now.Add(time.Minute))
	for i := range maxVerifiedCache + 10 {
		var k [32]byte
		k[0], k[1] = byte(i), byte(i>>8)
		vc.put(k, c, now)
	}
	if len(vc.m) > maxVerifiedCache {
		t.Fatalf("cache holds %d", len(vc.m))
	}
	var k [32]byte
	vc.put(k, c, now)
	if vc.get(k, now) == nil || vc.get(k, now.Add(time.Minute+clockSkew)) != nil {
		t.Error("cache ignores expiry")
	}
}

// An access token granting nothing must bind the identity to nothing (a nil
// Access would mean "not token-bound").
func TestAccessTokenWithoutGrantsIsBound(t *testing.T) {
	f := newFixture(t, nil)
	tok := f.get("", "alice", testPassword).str("token")
	for range 2 { // the second call is served from the cache
		id, err := f.svc.VerifyAccessToken(t.Context(), tok)
		if err != nil {
			t.Fatal(err)
		}
		if id.Access == nil {
			t.Fatal("identity from an access token without grants is unbounded")
		}
	}
}
