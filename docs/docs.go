// Package docs embeds the parts of the documentation the berth binary
// prints: the configuration reference gives `berth config example` its
// comments and `berth config schema` its descriptions, so neither can drift
// from it.
package docs

import _ "embed"

// Configuration is docs/configuration.md.
//
//go:embed configuration.md
var Configuration []byte
