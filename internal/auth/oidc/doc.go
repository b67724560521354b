// Package oidc accepts OpenID Connect ID tokens (GitHub Actions, GitLab CI,
// Kubernetes service accounts, any issuer with discovery or a JWKS) as
// registry credentials: it verifies a token against its issuer's keys and
// maps its claims to an auth.Identity with CEL.
//
// go-jose verifies the signature; go-oidc handles discovery. A token is
// parsed once: go-jose parses the compact JWS (its one spelling: no line
// breaks, canonical base64), its payload is decoded into the claims once, and
// it is routed by its unverified iss to the one provider configured with that
// exact issuer, or, when several providers share the issuer, by its aud to
// the one whose audiences hold it (their audiences are disjoint: New refuses
// overlapping ones); never tried against every provider. The provider's
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
// # Why not go-oidc's IDTokenVerifier
//
// The first version handed the JWS checks to go-oidc's IDTokenVerifier (with
// this package's keySet as its KeySet); verifier.go now does them itself, in
// go-oidc's order and, where go-oidc had one, with its error string. The
// reasons, each still true:
//
//   - One parse per token. IDTokenVerifier parses the JWS (jose.ParseSigned),
//     its KeySet parses it again to verify, it decodes the payload into its
//     own struct, and the claims had to be decoded a third time for the claim
//     mapping. Here go-jose parses the compact JWS once and the payload is
//     decoded once, by decodeClaims (claimsjson.go: encoding/json's values
//     and refusals, int64 for integers so CEL compares them, several times faster). A
//     first verification is the cost of every new CI job's token on every
//     replica (docs/benchmarks.md#token-verification-go-test--bench).
//   - Routing and precise reasons need the header and claims before the
//     signature: the token is routed by its unverified iss to one provider,
//     the key is chosen by kid and algorithm with the unknown-kid cooldown
//     (keyset.go), and a refusal says which check failed. Through go-oidc the
//     chosen keys and the signature error had to travel in context values,
//     as go-oidc flattens errors into strings.
//   - Times and audience are berth's: clock_skew applies to exp, nbf and iat,
//     max_token_age caps iat, the token's validity end is returned for the
//     caches, and aud matches any configured audience. go-oidc's checks were
//     skipped (SkipExpiryCheck, SkipClientIDCheck) and redone anyway.
//   - Shared verified tokens (sharedtokens.go) check every claim of a token
//     whose signature another replica checked. IDTokenVerifier cannot check
//     claims without a signature.
//
// What go-oidc's decoding refused is still refused, with its words
// (checkRegistered: registered claims of the wrong JSON type, distributed
// claims naming no source; checkClaims: "id token issued by a different
// provider"), so that refusal reasons did not change when the code moved.
// go-oidc still does discovery; go-jose does the cryptography.
//
// # Caches
//
// From the request inwards, four layers; each is read only when the one
// before it missed, and none holds a token or its signature:
//
//  1. Front cache (internal/access, credCache; not in this package). Key: the
//     exact Authorization header, compared in full. Holds the identity and
//     up to 64 policy decisions per (policy engine, client address, request).
//     Read first on every registry request; written after a credential that
//     sets Identity.Expires (an ID token, a registry access token) verified.
//     Entries live until Identity.Expires; at most 1024, expired ones swept
//     and then an arbitrary eighth dropped when full. A reload builds a new
//     Authenticator, so nothing outlives a configuration change. It turns
//     the ~50 requests of a docker pull into one verification.
//  2. Verified-token LRU (cache.go, Options.CacheSize, default 10000). Key:
//     SHA-256 of the raw token. Holds the provider and the identity until
//     exp + clock_skew (earlier with max_token_age). Read first in Verify and
//     VerifyFor (a hit must be of the provider asked for), before the token
//     is parsed; written after every successful verification. LRU eviction;
//     an expired entry is removed when read, so the refusal names the
//     reason. Dropped with the Verifier on reload. It serves what the front
//     cache does not see: the /token endpoint's Basic logins and ID-token
//     exchanges (each `docker pull` against a token-auth registry starts
//     with one), the same token sent Bearer and Basic, and a busy replica
//     whose front cache evicted it. A hit costs ~1.8 µs instead of a ~44 µs
//     verification.
//  3. Shared verified tokens (sharedtokens.go, Options.Shared, Redis). Key:
//     oidc:token: + SHA-256(provider fingerprint, raw token). Holds the
//     fingerprint, a version and the validity end: "a replica with this
//     provider configuration checked this token's signature". Written in the
//     background by one writer per Verifier after a signature checked here
//     (5 ms batches, a queue of 128, dropped when full), expiring with the
//     token (at most 24 h). Read only when the keys in memory cannot settle
//     the token (no key set yet, an unknown kid), within 500 ms; a hit skips
//     the signature, never the claims or the claim mapping. A changed
//     provider setting changes the fingerprint, so old entries are never
//     used. Needs layer 2 (CacheSize > 0). It does not save CPU (a local
//     miss with it costs a few µs more, see BenchmarkVerifyMissShared); it
//     saves waiting for the issuer on a replica that just started or has not
//     seen a rotation yet, and keeps such a replica serving while the issuer
//     is down.
//  4. Key sets (keyset.go). In memory per issuer (providers of one issuer
//     that fetch alike share one): the JWKS URL (configured
//     or discovered once) and the keys. Fetched on first use in a single
//     flight, refreshed in the background every JWKSRefreshInterval,
//     refetched for an unknown kid at most once per UnknownKidCooldown,
//     kept through an issuer outage; a response is capped at
//     MaxResponseBytes and a fetch at FetchTimeout. With Options.Shared a
//     fetched set is also stored under oidc:jwks:<issuer> <jwks_uri> (TTL
//     twice the refresh interval) and read before the issuer is asked, if
//     it is younger than the refresh interval (half of it for a refresh,
//     the cooldown for an unknown kid). The in-memory set is always in
//     front: verification never waits on Redis for keys it holds.
//
// A token is verified with its signature at most once per replica while it
// is in layer 2, and once per cluster while it is in layer 3.
//
// # Configuration
//
// New takes providers as plain values. The settings that mean the same
// wherever they come from (preset, issuer, jwks_uri, audiences, algorithms,
// max_token_age, CA) are checked by config.CheckOIDCProvider, the one
// validator the configuration file goes through too, so its messages are the
// ones `berth check-config` prints whoever builds the providers (the server,
// `berth policy explain`, tests). New checks the rest itself: provider names,
// providers of one issuer with overlapping audiences, durations whose zero means the default here,
// required claim names, a CA on a custom HTTP transport and the claim
// mapping's CEL. The bounds only the configuration file sets (clock_skew up
// to 10m, jwks_refresh_interval of 1m or more) stay in the config package.
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
//     that a token from another provider's issuer is refused. A username that
//     names none goes through LoginProvider, which picks a provider only if
//     it has AcceptAnyUsername, then VerifyFor.
//   - BearerTokenFile is sent only to the issuer's origin and a configured
//     JWKSURI's (clientauth.go): NEVER to a discovered jwks_uri elsewhere.
//   - Close the Verifier when replacing it (a configuration reload): it owns
//     the background refresh goroutines.
package oidc
