// Package seedtest holds the user-facing examples berth promises to run as
// written (the Angos GitHub Actions guide's "Complete Example"), for tests in
// every package to share. Tests only.
package seedtest

import (
	_ "embed"
	"strings"
)

// AngosComplete is the guide's Complete Example, verbatim.
//
//go:embed angos-complete.toml
var AngosComplete string

// Without returns doc without the named tables ("server.tls" removes
// [server.tls] and its keys, up to the next table header).
func Without(doc string, tables ...string) string {
	drop := map[string]bool{}
	for _, t := range tables {
		drop["["+t+"]"] = true
	}
	var out []string
	skipping := false
	for _, line := range strings.Split(doc, "\n") {
		if strings.HasPrefix(line, "[") {
			skipping = drop[strings.TrimSpace(line)]
		}
		if !skipping {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// WithProviderKeys appends TOML lines to the [auth.oidc.github-actions] table
// (for example an issuer and audiences pointing at a test issuer).
func WithProviderKeys(doc string, lines string) string {
	const header = "[auth.oidc.github-actions]\n"
	i := strings.Index(doc, header)
	if i < 0 {
		return doc
	}
	j := i + len(header)
	return doc[:j] + strings.TrimRight(lines, "\n") + "\n" + doc[j:]
}
