package oidc

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berth-registry/berth/internal/config"
)

// TestSettingsRefusedInConfigsWords: the provider settings both the
// configuration file and New take are checked by one validator
// (config.CheckOIDCProvider), so New refuses a provider built by hand with
// exactly the problems `berth check-config` prints for the same settings.
func TestSettingsRefusedInConfigsWords(t *testing.T) {
	const toml = `
[auth.oidc.a]
provider = "generic"
issuer = "http://issuer.example"
jwks_uri = "ftp://keys.example"
audiences = ["", "b", ""]
algorithms = ["RS256", "HS256", "none"]
max_token_age = "-1s"
certificate_authority = "junk"

[auth.oidc.b]
provider = "okta"
audiences = ["x"]

[auth.oidc.c]
issuer = "https://c.example"

[auth.oidc.d]
provider = "gitlab"
issuer = "https://127.0.0.1:8443/"
`
	_, err := config.Parse([]byte(toml), "berth.toml")
	var ce *config.Errors
	if !errors.As(err, &ce) {
		t.Fatalf("config.Parse: %v", err)
	}
	var fromConfig []string
	for _, p := range ce.Problems {
		if strings.HasPrefix(p.Key, "auth.oidc.") {
			fromConfig = append(fromConfig, p.Key+": "+p.Message)
		}
	}
	_, _, err = New([]ProviderConfig{
		{Name: "a", Preset: "generic", Issuer: "http://issuer.example", JWKSURI: "ftp://keys.example",
			Audiences: []string{"", "b", ""}, Algorithms: []string{"RS256", "HS256", "none"},
			MaxTokenAge: -time.Second, CACertPEM: []byte("junk")},
		{Name: "b", Preset: "okta", Audiences: []string{"x"}},
		{Name: "c", Issuer: "https://c.example"},
		{Name: "d", Preset: "gitlab", Issuer: "https://127.0.0.1:8443/"},
	}, Options{})
	var oe *ConfigError
	if !errors.As(err, &oe) {
		t.Fatalf("New: %v", err)
	}
	var fromNew []string
	for _, p := range oe.Problems {
		fromNew = append(fromNew, p.String())
	}
	slices.Sort(fromConfig)
	slices.Sort(fromNew)
	if len(fromConfig) < 9 || !slices.Equal(fromConfig, fromNew) {
		t.Fatalf("config reports:\n\t%s\nNew reports:\n\t%s", strings.Join(fromConfig, "\n\t"), strings.Join(fromNew, "\n\t"))
	}
}
