package oidc

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/berth-registry/berth/internal/auth"
	"github.com/berth-registry/berth/internal/devissuer"
)

// FuzzVerify feeds arbitrary strings to Verify and VerifyFor: they must never
// panic, never accept anything but the one token the issuer signed, and
// always fail with one of the two sentinels.
func FuzzVerify(f *testing.F) {
	clk := newClock()
	iss := newIssuer(f, devissuer.Options{KeyType: devissuer.EC, Now: clk.Now})
	v := newVerifier(f, Options{Now: clk.Now}, ProviderConfig{
		Name: "gen", Issuer: iss.URL(), Audiences: []string{"berth"},
		ClaimMapping: ClaimMapping{Groups: "claims.groups", Validations: []Validation{{Expression: "claims.sub.size() < 100"}}},
	})
	claims := map[string]any{"sub": "s", "aud": "berth", "groups": []string{"g"}}
	valid := iss.Mint(claims)
	mint := func(h map[string]any, s devissuer.Signing) string {
		tok, err := iss.MintWith(h, claims, devissuer.MintOptions{Sign: s})
		if err != nil {
			f.Fatal(err)
		}
		return tok
	}
	for _, s := range []string{
		valid, valid + ".", valid[:len(valid)-2], strings.Replace(valid, ".", "..", 1),
		mint(nil, devissuer.SignNone), mint(nil, devissuer.SignHMACPublicKey), mint(nil, devissuer.SignCorrupt),
		mint(map[string]any{"kid": "x"}, devissuer.SignKey), mint(map[string]any{"alg": "RS256"}, devissuer.SignKey),
		mint(map[string]any{"crit": []string{"b64"}, "b64": false}, devissuer.SignKey),
		"", ".", "..", "a.b.c", "e30.e30.", "eyJhbGciOiJub25lIn0.eyJpc3MiOjF9.",
		`{"payload":"e30","signatures":[]}`, strings.Repeat("A", MaxTokenSize+1),
	} {
		f.Add(s)
	}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, raw string) {
		for _, verify := range []func() (*auth.Identity, error){
			func() (*auth.Identity, error) { return v.Verify(ctx, raw) },
			func() (*auth.Identity, error) { return v.VerifyFor(ctx, "gen", raw) },
		} {
			id, err := verify()
			if err == nil {
				if raw != valid || id == nil {
					t.Fatalf("accepted %q", raw)
				}
				continue
			}
			if id != nil {
				t.Fatal("identity with an error")
			}
			if !errors.Is(err, auth.ErrInvalidCredentials) && !errors.Is(err, auth.ErrUnavailable) {
				t.Fatalf("error without sentinel: %v", err)
			}
			if len(raw) >= 24 && strings.Contains(err.Error(), raw) {
				t.Fatalf("error contains the input: %v", err)
			}
		}
	})
}
