// Package oidc accepts OpenID Connect ID tokens (GitHub Actions, GitLab CI,
// Kubernetes service accounts, any issuer with discovery or a JWKS) as
// registry credentials: it verifies a token against its issuer's keys and
// maps its claims to an auth.Identity with CEL.
//
// go-jose verifies the signature; go-oidc handles discovery. A token is
// parsed once: go-jose parses the compact JWS (its one spelling: no line
// breaks, canonical base64), its payload is decoded into the claims once, and
// it is routed by its unverified iss to the one provider configured with that
// exact issuer (never tried against every provider). The provider's
// algorithms and the key (by kid, of a type fitting the algorithm) are
// checked, go-jose verifies the signature over that payload, and only then are
// the claims trusted: this package checks the types of the registered claims
// (as go-oidc's ID token decoding did), the issuer, the audience, exp/nbf/iat
// with clock skew, max_token_age and required claims, then runs the claim
// mapping (zot's model: variables, validations, username, groups). The
// default username is computed without CEL; configured expressions run in
// CEL.
//
//	v, warnings, err := oidc.New([]oidc.ProviderConfig{{
//		Name:      "github-actions",
//		Preset:    "github",
//		Audiences: []string{"https://registry.example.com"},
//		ClaimMapping: oidc.ClaimMapping{
//			Validations: []oidc.Validation{{
//				Expression: "claims.repository_owner == 'acme'",
//				Message:    "only acme repositories may push",
//			}},
//		},
//	}}, oidc.Options{Logger: logger})
//	if err != nil {
//		return err // a *ConfigError: every problem, with its key path
//	}
//	defer v.Close()
//	// docker login -u github-actions -p <token>:
//	id, err := v.VerifyFor(r.Context(), "github-actions", password)
//	if errors.Is(err, auth.ErrUnavailable) { /* 503 */ } else if err != nil { /* 401 */ }
//
// Key sets are fetched lazily (New never contacts an issuer), kept per
// issuer, refreshed in the background every JWKSRefreshInterval, refetched
// for an unknown kid at most once per UnknownKidCooldown (single flight), and
// kept through an issuer outage. Verified tokens are cached by SHA-256 until
// they expire, so a burst of requests with one token verifies it once. With
// Options.Shared, a replica records the tokens it verified for the others: a
// replica that would have to wait for the issuer's keys (just started, an
// unknown kid, the issuer down) accepts a token another replica verified,
// checking everything but its signature again (see sharedtokens.go).
//
// Caveats:
//   - Audiences MUST be configured (the github preset only warns): without
//     them a token minted for any other service that trusts the same issuer
//     is a registry credential too.
//   - Only asymmetric algorithms are accepted; HS* and "none" are NEVER
//     allowed, not even by configuration.
//   - Callers MUST map auth.ErrUnavailable to 503, not 401: the token may be
//     good and the issuer merely unreachable.
//   - Error values carry a reason for debug logs. They NEVER contain the
//     token; callers MUST NOT log the token either.
//   - Identity.OIDC.Claims is shared with the cache and MUST be treated as
//     read-only.
//   - A Basic login whose username names a provider MUST use VerifyFor, so
//     that a token from another provider's issuer is refused.
//   - Close the Verifier when replacing it (a configuration reload): it owns
//     the background refresh goroutines.
package oidc
