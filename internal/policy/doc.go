// Package policy decides what each identity may do: CEL access policies
// compiled once at load and evaluated per request, and the immutable-tags
// setting. It is pure logic: it imports neither the configuration nor
// net/http; the caller maps its configuration to Config and its request to
// Input.
//
// # Policies
//
// A policy is a default and an ordered list of CEL rules:
//
//	[global.access_policy]
//	default_allow = false
//	rules = ["identity.oidc != null && identity.oidc.claims['repository'].startsWith('myorg/')"]
//
// (Angos' newer `default = "allow"|"deny"` is the same setting; the caller
// maps it to Source.DefaultAllow.) Rules are evaluated in order:
//
//   - default deny (default_allow = false): the first true rule ALLOWS;
//   - default allow (default_allow = true): the first true rule DENIES;
//   - no rule true: the default decides;
//   - a rule that fails at run time (a missing claim, a claim of the wrong
//     type, the cost limit, a cancelled context) or returns something other
//     than a bool DENIES at once, whatever the default and the later rules:
//     policies fail closed. Decision.Reason names the policy, the rule index
//     and the CEL error.
//
// # Which policies apply
//
// Repository keys name what a repository policy covers:
//
//   - a namespace key covers the repository of that name and everything below
//     it: "dev" covers dev, dev/api and dev/api/x (it is the same as "dev/**");
//   - a glob key matches whole names, one component per segment: "*" matches
//     exactly one component, "**" zero or more: "team/*" covers team/api but
//     not team or team/api/x; "app/**" covers app and everything below;
//     "**/cache" covers cache and x/y/cache. A wildcard is always a whole
//     component ("app-*" is refused).
//
// When several keys cover a repository, the most specific wins, compared in
// this order: (1) more literal components; (2) fewer "**" (a namespace key
// counts one); (3) more "*". So for dev/api, "dev/api" beats "dev/*", which
// beats "dev" and "dev/**" (which are the same key), which beat "*/*" and
// "**". Two keys equally specific that both cover some name ("team/*" and
// "*/api" both cover team/api; "dev" and "dev/**") are a Compile error: add a
// more specific key for the overlap, or remove one. The position of the
// literal components does not count.
//
// A request with a repository is decided by:
//
//   - the global policy AND the covering repository policy when both exist:
//     both must allow (the global policy is evaluated first);
//   - the one that exists, when only one does;
//   - none: allowed in open mode (Config.Open: no authentication and no
//     policy), denied otherwise.
//
// A request without a repository (ping, catalog) is decided by the global
// policy; without one, it is allowed for any authenticated identity and (in
// open mode) for anonymous ones. The caller answers ping itself and filters
// the catalog repository by repository.
//
// # The CEL environment
//
// One environment, typed, so that a misspelled field fails at load:
//
//	identity.id             string  "user:<name>", "oidc:<provider>:<name>", "anonymous"
//	identity.username       string
//	identity.groups         list(string)
//	identity.client_ip      string  the client address, no port ("" if unknown)
//	identity.oidc           null, or:
//	identity.oidc.provider_name  string  the [auth.oidc.<name>] the token came from
//	identity.oidc.claims    map(string, dyn)  the ID token's claims
//	request.action          string  the access kind: "pull", "push" or "delete" ("" for ping)
//	request.operation       string  the typed action: "get-manifest", "put-manifest", "mount-blob", ...
//	request.repository      string  "" for requests without a repository
//	request.namespace       string  the same as request.repository (Angos' name)
//	request.reference       string  the tag or digest in the URL, if any
//	request.tags            list(string)  tags a push creates, if known
//	request.digest          string
//	request.from            string  the source repository of a cross-repository mount
//	request.artifact_type   string
//	request.method          string  the HTTP method
//
// Angos's request.action is the typed action: a comparison of request.action
// with string literals that are action names (request.action ==
// 'get-manifest', request.action.startsWith('put-'), Angos's update-upload
// and complete-upload for patch-upload and finish-upload) is rewritten at
// Compile into one of request.operation with the operations it is true for.
// A comparison of request.action or request.operation (==, !=, in [...],
// startsWith, endsWith, contains, matches) with a literal that can never
// match is a Compile error listing the valid values (Kinds, Operations).
//
// An anonymous request (Input.Identity nil, or with ID "anonymous") has an
// identity with empty fields and a null identity.oidc. Beyond standard CEL
// (matches, in, exists, has, ...) the environment has the strings, lists and
// sets extensions, optional values (claims[?'x'].orValue(”)), cel-go's
// network library (ip(), cidr('10.0.0.0/8').containsIP(identity.client_ip))
// and ip_in_cidr(ip, cidr) -> bool, which is false for an address that does
// not parse (such as an empty client_ip); a constant CIDR that does not parse
// is a Compile error.
//
// # Cost
//
// Compile estimates each rule's worst-case cost, assuming every string, list
// and map of the input is MaxInputSize long, and refuses rules above
// EstimatedCostLimit. At run time the rules of a policy run as one program
// (one evaluation per policy, not per rule) with a budget of CostLimit per
// rule, shared by the policy's rules; running out of it, or the context
// being done, denies.
//
// # Caveats
//
//   - Rules MUST guard OIDC claims with `identity.oidc != null &&`: static
//     users and anonymous requests have no OIDC part, and selecting from null
//     fails, which denies (see above) even where a later rule would allow.
//   - Rules MUST index claims with brackets (claims["ref"]) or guard them with
//     `"ref" in identity.oidc.claims` / claims[?"ref"]: a missing claim fails
//     the rule, and a failing rule denies.
//   - NEVER send Decision.Reason or an Explanation to clients: they carry
//     CEL error messages (and an Explanation carries rule text). Log them.
//   - NEVER treat a zero Decision as allowing: Allowed is false unless a
//     policy (or open mode) allowed.
//   - Compile once at load and share the Engine; do not compile per request.
//
// # Immutable tags
//
// CompileImmutable and Immutable.Protected apply the immutable-tags setting:
// the most specific repository setting (same keys and matching as policies)
// overrides the global one entirely; a tag matching one of the setting's
// exclusions stays mutable, and cosign's legacy tags
// (sha256-<hex>.sig|att|sbom) always do.
package policy
