package config

import (
	"errors"
	"testing"
)

// Parse never panics, and either returns a valid config or *Errors with at
// least one problem.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"",
		"[server]\nport = 5000\n",
		"[server.tls]\nserver_certificate_bundle = 1\n",
		"server = 5\n[log]\nlevel = 1",
		"ui = { nme = 1, enabled = true }",
		"[auth.oidc.x]\nprovider = \"github\"\n[repository.\"a.b\".access_policy]\nrules = []",
		"[[server]]\n[limits]\nmax_blob_size = \"1 TiB\"",
		"a.b.c = 1\n[a]\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "fuzz.toml")
		if err == nil {
			if c == nil {
				t.Fatal("nil config without error")
			}
			if err := c.Validate(); err != nil {
				t.Fatalf("parsed config does not validate: %v", err)
			}
			return
		}
		if c != nil {
			t.Fatal("config with error")
		}
		var errs *Errors
		if !errors.As(err, &errs) || len(errs.Problems) == 0 {
			t.Fatalf("error %T %v is not a non-empty *Errors", err, err)
		}
	})
}

func FuzzParseSize(f *testing.F) {
	for _, seed := range []string{"4MiB", "0", "1 TB", "99999999999999999999", "x"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err == nil && n < 0 {
			t.Fatalf("ParseSize(%q) = %d", s, n)
		}
	})
}
