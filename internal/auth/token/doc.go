// Package token is berth's token service: it turns credentials into short-lived
// registry access tokens (the Docker registry token protocol), and issues and
// checks the longer-lived opaque refresh and session tokens.
//
// Endpoints (mount the Service at /token and /token/revoke):
//
//	GET  /token?service=S&scope=repository:a/b:pull&offline_token=true   (Basic credentials or none)
//	POST /token  grant_type=password | refresh_token |
//	             urn:ietf:params:oauth:grant-type:token-exchange (RFC 8693) |
//	             urn:ietf:params:oauth:grant-type:jwt-bearer     (RFC 7523)
//	POST /token/revoke  token=<refresh or session token>            (RFC 7009)
//
// Answers carry both `token` and `access_token`, `expires_in` (≥ 60) and
// `issued_at`, which is what docker, containerd, go-containerregistry, ORAS
// and containers/image read. Errors carry both an RFC 6749 body
// (`error`, `error_description`) and an OCI `errors` list.
//
// Access tokens are JWTs signed with the key in Options.KeyFile, or with
// generated keys rotated every Options.KeyRotationInterval (ES256 or EdDSA;
// keyring.go). Their `kid` selects the verification key: the current one,
// the pre-published next one, keys retired less than AccessTTL + 30s ago and
// Options.PreviousKeyFiles. They hold the granted `access` list and enough of
// the identity to rebuild it, so VerifyAccessToken needs no I/O: the identity
// provider and the policy engine stay off the registry's hot path.
//
// Refresh tokens (berth_rt_…) and session tokens (berth_st_…) are opaque:
// a random id and a random secret. The server keeps one JSON record per id
// (a file in Options.StateDir, or in Options.Store) with the SHA-256 of the secret, an identity snapshot, and
// the Limits that applied when it was issued (TTL renewed on use up to MaxTTL,
// MaxUses, TrustedIPs). A session token is a docker password; a refresh token
// is what docker stores as its "identitytoken". Both are accepted in both
// places.
//
//	svc, err := token.New(token.Options{Service: "berth", Issuer: "berth",
//		KeyFile: "/var/lib/berth/token.key", StateDir: "/var/lib/berth/tokens",
//		Authenticate: authn, VerifyIDToken: oidcVerify, Grant: policy, LimitsFor: limits})
//	mux.Handle("/token", svc)
//	mux.Handle("/token/revoke", svc)
//	...
//	id, err := svc.VerifyAccessToken(ctx, bearer) // id.Access bounds the request
//
// Caveats:
//   - Tokens and passwords MUST NEVER be logged, by this package or its
//     callers. This package logs identity ids, grant types, granted scopes and
//     refusal reasons, at debug level.
//   - The realm MUST be served on the registry's own host:port: crane and
//     go-containerregistry refuse realms on other private/loopback addresses.
//   - Callers MUST treat a nil Identity.Access as "no token" and a non-nil,
//     empty one as "a token that grants nothing"; VerifyAccessToken always
//     returns a non-nil Access.
//   - Grant's answer is intersected with what was requested; a Grant that
//     returns more than asked grants nothing extra. A nil Grant grants nothing.
//   - Limits are copied into a refresh/session token when it is issued;
//     changing LimitsFor later does not affect tokens already issued.
//   - A refresh token is NEVER minted from credentials that are themselves a
//     berth refresh/session token, so MaxUses and MaxTTL cannot be escaped by
//     trading a token for a fresh one.
//   - Identity snapshots (including OIDC claims) are taken at issuance; a
//     refresh token keeps working after the ID token it came from expired.
//     Bound that with the provider's Limits.
//   - Token state is kept by a Store: by default files in StateDir guarded by
//     in-process locks only, so two berth processes MUST NOT share one
//     StateDir (use counts could be lost). Replicas share a Store whose
//     Update is atomic across processes instead (internal/redisstate: Redis), and
//     signing keys (a KeyringStore from the same source, or one KeyFile).
//   - Generated keys are rotated only by RefreshKeys: a long-running server
//     MUST run RunKeyRotation (it also follows rotations by other replicas).
//   - Access tokens cannot be revoked; keep AccessTTL short (5m default).
package token
