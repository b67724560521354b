package oidc

import (
	"context"
	"strings"
	"testing"

	"github.com/berth-registry/berth/internal/auth"
	"github.com/berth-registry/berth/internal/devissuer"
)

// TestDefaultNameMatchesCEL: the default username computed in Go is what the
// documented CEL expressions return, errors included.
func TestDefaultNameMatchesCEL(t *testing.T) {
	bad := func(k, f string, a ...any) { t.Fatalf(k+": "+f, a...) }
	claimSets := []map[string]any{
		{"iss": "https://i", "sub": "s"}, {"iss": "https://i", "sub": ""}, {"iss": "https://i", "sub": "a\nb"},
		{"iss": "https://i"}, {"sub": "s"}, {}, {"iss": "https://i", "sub": int64(3)}, {"iss": "https://i", "sub": nil},
		{"iss": "https://i", "sub": 1.5}, {"iss": "https://i", "sub": []any{"a"}}, {"iss": "https://i", "sub": map[string]any{}},
		{"iss": "https://i", "sub": true}, {"iss": int64(1), "sub": "s"}, {"iss": int64(1)},
		{"iss": "https://i", "sub": "s", k8sNamespace: "ns"},
		{"iss": "https://i", "sub": "s", k8sSAName: "sa"},
		{"iss": "https://i", "sub": "s", k8sNamespace: "ns", k8sSAName: "sa"},
		{"iss": "https://i", k8sNamespace: "ns", k8sSAName: "sa"},
		{"iss": "https://i", "sub": "s", k8sNamespace: "ns", k8sSAName: int64(1)},
		{"iss": "https://i", "sub": "s", k8sNamespace: nil, k8sSAName: "sa"},
		{"iss": "https://i", "sub": "s", k8sNamespace: "", k8sSAName: ""},
	}
	for _, preset := range []string{"generic", "kubernetes"} {
		expr := defaultUsername
		if preset == "kubernetes" {
			expr = defaultK8sUsername
		}
		goDefault := compileMapping("p", preset, ClaimMapping{}, bad)
		celDefault := compileMapping("p", preset, ClaimMapping{Username: expr}, bad)
		// With a validation, the default username is computed in Go after CEL.
		withCEL := compileMapping("p", preset, ClaimMapping{Validations: []Validation{{Expression: "true"}}}, bad)
		if goDefault.username != nil || withCEL.username != nil || celDefault.username == nil {
			t.Fatal("the default username should not be a CEL program")
		}
		for _, c := range claimSets {
			for _, m := range []*mapping{goDefault, withCEL} {
				got, _, gotErr := m.eval(context.Background(), c)
				want, _, wantErr := celDefault.eval(context.Background(), c)
				if got != want || (gotErr == nil) != (wantErr == nil) || gotErr != nil && gotErr.Error() != wantErr.Error() {
					t.Errorf("%s %v: Go %q, %v; CEL %q, %v", preset, c, got, gotErr, want, wantErr)
				}
			}
		}
	}
}

// respell returns another spelling of a base64url part that lenient decoding
// reads as the same bytes (non-zero padding bits), or "" if it has none.
func respell(part string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	var mask int
	switch len(part) % 4 {
	case 2:
		mask = 0x0f
	case 3:
		mask = 0x03
	default:
		return ""
	}
	last := strings.IndexByte(alphabet, part[len(part)-1])
	return part[:len(part)-1] + string(alphabet[last^mask])
}

// TestOneSpelling: a token verifies under its one spelling only, so that it
// cannot be replayed under another (and another cache key).
func TestOneSpelling(t *testing.T) {
	iss := newIssuer(t, devissuer.Options{KeyType: devissuer.EC})
	v := newVerifier(t, Options{}, ProviderConfig{Name: "gen", Issuer: iss.URL(), Audiences: []string{"berth"}})
	ctx := context.Background()
	var tok string
	var parts []string
	for i := 0; ; i++ { // want a payload with padding bits to flip
		tok = iss.Mint(map[string]any{"sub": strings.Repeat("a", i), "aud": "berth"})
		if parts = strings.Split(tok, "."); respell(parts[1]) != "" {
			break
		}
	}
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	others := []string{
		tok[:10] + "\n" + tok[10:], tok[:len(tok)-5] + "\r\n" + tok[len(tok)-5:], tok + "\n", " " + tok, tok + " ",
		parts[0] + "." + respell(parts[1]) + "." + parts[2],
	}
	if s := respell(parts[2]); s != "" {
		others = append(others, parts[0]+"."+parts[1]+"."+s)
	}
	if s := respell(parts[0]); s != "" {
		others = append(others, s+"."+parts[1]+"."+parts[2])
	}
	for _, o := range others {
		_, err := v.Verify(ctx, o)
		refused(t, err, auth.ErrInvalidCredentials, "malformed token", o)
	}
}

// TestRegisteredClaimTypes: what go-oidc's ID token decoding refused is
// still refused now that it is not on the path.
func TestRegisteredClaimTypes(t *testing.T) {
	iss := newIssuer(t, devissuer.Options{KeyType: devissuer.EC})
	v := newVerifier(t, Options{}, ProviderConfig{Name: "gen", Issuer: iss.URL(), Audiences: []string{"berth"},
		ClaimMapping: ClaimMapping{Username: "'fixed'"}})
	ctx := context.Background()
	for _, c := range []struct {
		claims map[string]any
		reason string
	}{
		{map[string]any{"sub": 7}, "failed to unmarshal claims: sub is not a string"},
		{map[string]any{"nonce": []string{"x"}}, "failed to unmarshal claims: nonce is not a string"},
		{map[string]any{"at_hash": true}, "failed to unmarshal claims: at_hash is not a string"},
		{map[string]any{"iat": "1750000000"}, "failed to unmarshal claims: iat is not a number"},
		{map[string]any{"nbf": true}, "failed to unmarshal claims: nbf is not a number"},
		{map[string]any{"aud": []any{"berth", 1}}, "failed to unmarshal claims: aud is not a string or an array of strings"},
		{map[string]any{"aud": map[string]any{}}, "failed to unmarshal claims: aud is not a string or an array of strings"},
		{map[string]any{"_claim_names": map[string]any{"groups": "src1"}}, "source does not exist"},
		{map[string]any{"_claim_names": map[string]any{"groups": ""}, "_claim_sources": map[string]any{"": map[string]any{}}}, "failed to obtain source from claim name"},
		{map[string]any{"_claim_names": "x"}, "failed to unmarshal claims: _claim_names is not an object"},
		{map[string]any{"_claim_names": map[string]any{"groups": "src1"}, "_claim_sources": map[string]any{"src1": map[string]any{"endpoint": 1}}}, "failed to unmarshal claims: a _claim_sources endpoint is not a string"},
		{map[string]any{"iss": 1}, "malformed token: payload: iss is not a string"},
	} {
		if _, ok := c.claims["aud"]; !ok {
			c.claims["aud"] = "berth"
		}
		tok := iss.Mint(c.claims)
		_, err := v.Verify(ctx, tok)
		refused(t, err, auth.ErrInvalidCredentials, c.reason, tok)
	}
	ok := iss.Mint(map[string]any{"aud": "berth", "sub": nil, "nonce": "n", "_claim_names": map[string]any{"groups": "src1"},
		"_claim_sources": map[string]any{"src1": map[string]any{"endpoint": "https://x", "access_token": "t"}}})
	if _, err := v.Verify(ctx, ok); err != nil {
		t.Fatal(err)
	}
}
