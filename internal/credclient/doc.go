// Package credclient is the client side of berth's token service, shared by
// the kubelet image credential provider (cmd/berth-credential-provider), the
// docker credential helper (cmd/docker-credential-berth) and `berth login`:
//
//   - TokenService speaks the password grant and the RFC 8693 token exchange
//     to berth's /token;
//   - a Source finds a fresh OIDC ID token where the workload has one
//     (GitHub Actions, GitLab, a Kubernetes projected token, a file, a
//     command);
//   - Helper answers the docker-credential-helpers protocol (get, store,
//     erase, list), caching the session token it gets per registry and
//     renewing it before it expires;
//   - Login and Logout write the helper into docker's config.json and the
//     containers auth.json, keeping every other key.
//
// No token is ever logged or printed on stderr. See
// docs/auth/credential-helper.md.
package credclient
