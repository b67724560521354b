package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/berth-registry/berth/internal/access"
	"github.com/berth-registry/berth/internal/auth"
	"github.com/berth-registry/berth/internal/auth/oidc"
	"github.com/berth-registry/berth/internal/config"
	"github.com/berth-registry/berth/internal/policy"
	"github.com/berth-registry/berth/internal/registry"
	"github.com/berth-registry/berth/internal/server"
)

// exitDenied is `berth policy explain`'s exit code when the request is denied.
const exitDenied = 3

const policyUsage = `usage: berth policy explain -c FILE IDENTITY --repository R --action pull|push|delete
                           [--operation OP] [--reference TAG|DIGEST] [--client-ip IP]
IDENTITY is one of:
  --token JWT [--provider NAME]     an OIDC ID token, verified like the server does
                                    (contacts the issuer for its keys)
  --token JWT --no-verify           the token's payload only, NOT verified, routed by iss
  --claims FILE --provider NAME     a JSON object of claims for provider NAME (not verified)
  --user NAME                       the static user NAME (no password check)
  --anonymous                       a request without credentials
Exit status: 0 allowed, 3 denied, 1 error, 2 usage.`

// policyCmd is `berth policy <subcommand>`.
func policyCmd(ctx context.Context, args []string, configFile string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "explain" {
		//lint:ignore ST1005 the error is printed as is, followed by the subcommand's usage
		return usageError(stdout, stderr, errors.New(`"policy" needs a subcommand: berth policy explain ...`+"\n"+policyUsage))
	}
	return policyExplain(ctx, args[1:], configFile, stdout, stderr)
}

// explainArgs is the command line of `berth policy explain`.
type explainArgs struct {
	config, token, claims, provider, user string
	noVerify, anonymous                   bool
	req                                   policy.Request
	clientIP                              string
}

func parseExplainArgs(args []string, configFile string) (*explainArgs, error) {
	fs := flag.NewFlagSet("policy explain", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	a := &explainArgs{}
	fs.StringVar(&a.config, "c", configFile, "configuration file")
	fs.StringVar(&a.token, "token", "", "OIDC ID token")
	fs.BoolVar(&a.noVerify, "no-verify", false, "decode the token without verifying it")
	fs.StringVar(&a.claims, "claims", "", "JSON file of claims")
	fs.StringVar(&a.provider, "provider", "", "OIDC provider name")
	fs.StringVar(&a.user, "user", "", "static user name")
	fs.BoolVar(&a.anonymous, "anonymous", false, "anonymous request")
	fs.StringVar(&a.req.Repository, "repository", "", "repository name")
	fs.StringVar(&a.req.Action, "action", "", "pull, push or delete")
	fs.StringVar(&a.req.Operation, "operation", "", "typed action, such as put-manifest")
	fs.StringVar(&a.req.Reference, "reference", "", "tag or digest")
	fs.StringVar(&a.clientIP, "client-ip", "", "client address (identity.client_ip)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, fmt.Errorf("policy explain: %w", err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("policy explain: unexpected argument %q", fs.Arg(0))
	}
	bad := func(format string, args ...any) (*explainArgs, error) {
		return nil, fmt.Errorf("policy explain: "+format+"\n"+policyUsage, args...)
	}
	n := 0
	for _, set := range []bool{a.token != "", a.claims != "", a.user != "", a.anonymous} {
		if set {
			n++
		}
	}
	switch {
	case a.config == "":
		return bad("needs -c FILE")
	case n != 1:
		return bad("give exactly one of --token, --claims, --user, --anonymous")
	case a.noVerify && a.token == "":
		return bad("--no-verify goes with --token")
	case a.claims != "" && a.provider == "":
		return bad("--claims needs --provider NAME")
	case a.provider != "" && a.token == "" && a.claims == "":
		return bad("--provider goes with --token or --claims")
	case a.req.Repository == "":
		return bad("needs --repository")
	}
	defaultOp := map[string]registry.Action{"pull": registry.ActionGetManifest, "push": registry.ActionPutManifest,
		"delete": registry.ActionDeleteManifest}[a.req.Action]
	if defaultOp == "" {
		return bad("--action must be pull, push or delete, not %q", a.req.Action)
	}
	if a.req.Operation == "" {
		a.req.Operation = string(defaultOp)
	} else if op := registry.Action(a.req.Operation); string(op.Kind()) != a.req.Action {
		return bad("--operation %q is not a %s operation", a.req.Operation, a.req.Action)
	}
	// What the gate derives from the URL (access.requestOf).
	switch a.req.Operation {
	case string(registry.ActionGetManifest), string(registry.ActionPutManifest), string(registry.ActionDeleteManifest):
		if strings.Contains(a.req.Reference, ":") {
			a.req.Digest = a.req.Reference
		} else if a.req.Reference != "" {
			a.req.Tags = []string{a.req.Reference}
		}
	case string(registry.ActionGetBlob), string(registry.ActionDeleteBlob), string(registry.ActionGetReferrers):
		a.req.Digest = a.req.Reference
	}
	a.req.Method = map[string]string{"pull": "GET", "push": "PUT", "delete": "DELETE"}[a.req.Action]
	if a.req.Operation == string(registry.ActionStartUpload) || a.req.Operation == string(registry.ActionMountBlob) {
		a.req.Method = "POST"
	}
	return a, nil
}

// policyExplain prints who the identity is, how every applicable rule
// evaluates and the decision, without a server.
func policyExplain(ctx context.Context, args []string, configFile string, stdout, stderr io.Writer) int {
	a, err := parseExplainArgs(args, configFile)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(stdout, policyUsage)
		return exitOK
	}
	if err != nil {
		return usageError(stdout, stderr, err)
	}
	fail := func(format string, args ...any) int {
		fmt.Fprintf(stderr, "berth: policy explain: "+format+"\n", args...)
		return exitError
	}
	cfg, err := config.Load(a.config)
	if err != nil {
		printConfigError(stderr, err)
		return exitError
	}
	if err := server.Check(cfg); err != nil {
		return fail("%s: %v", a.config, err)
	}
	pc := server.PolicyConfig(cfg)
	var eng *policy.Engine
	if !pc.Open {
		if eng, err = policy.Compile(pc); err != nil {
			return fail("%s: %v", a.config, err)
		}
	}

	var id *policy.Identity // nil: anonymous
	var source string
	var notes []string
	switch {
	case a.anonymous:
		source = "anonymous (no credentials)"
	case a.user != "":
		id = &policy.Identity{ID: "user:" + a.user, Username: a.user}
		source = "static user (password NOT checked)"
		known := slices.ContainsFunc(cfg.Auth.Identities, func(u config.Identity) bool { return u.Username == a.user })
		switch {
		case slices.ContainsFunc(cfg.Auth.OIDC, func(p config.OIDCProvider) bool { return p.Name == a.user }):
			notes = append(notes, fmt.Sprintf("%q is an OIDC provider name: the server treats a login with that username as an ID token of that provider, never as a static user", a.user))
		case !known && cfg.Auth.HtpasswdFile != "":
			notes = append(notes, fmt.Sprintf("%q is not an [auth.identity] user; it may be in the htpasswd file (not read)", a.user))
		case !known:
			notes = append(notes, fmt.Sprintf("no static user %q is configured: the server would refuse its login", a.user))
		}
	case a.token != "" && !a.noVerify:
		aid, err := verifyToken(ctx, cfg, a.provider, a.token)
		if err != nil {
			return fail("token refused (the server would answer %s): %v", statusOfVerifyError(err), err)
		}
		id = &policy.Identity{ID: aid.ID, Username: aid.Username, Groups: aid.Groups,
			OIDC: &policy.OIDC{ProviderName: aid.OIDC.ProviderName, Claims: aid.OIDC.Claims}}
		source = "OIDC ID token, verified (signature, issuer, audience, times, required claims, claim mapping)"
	default:
		var claims map[string]any
		if a.token != "" {
			if claims, err = tokenPayload(a.token); err != nil {
				return fail("--token: %v", err)
			}
			iss, _ := claims["iss"].(string)
			p := providerByIssuer(cfg, iss, claims["aud"])
			switch {
			case p == nil:
				return fail("--token: no [auth.oidc.*] provider has the issuer %q of this token", iss)
			case a.provider != "" && p.Name != a.provider:
				return fail("--token: its issuer %q is provider %q's, not %q's", iss, p.Name, a.provider)
			}
			a.provider = p.Name
			source = "OIDC ID token, DECODED ONLY: its signature was NOT verified (--no-verify), nor its audience or times"
			if exp, ok := claims["exp"].(int64); ok && time.Unix(exp, 0).Before(time.Now()) {
				notes = append(notes, "the token expired at "+time.Unix(exp, 0).UTC().Format(time.RFC3339)+": the server would refuse it")
			}
		} else {
			data, err := os.ReadFile(a.claims)
			if err != nil {
				return fail("--claims: %v", err)
			}
			if claims, err = decodeClaimsJSON(data); err != nil {
				return fail("--claims %s: %v", a.claims, err)
			}
			source = "claims from " + a.claims + " (NOT from a verified token)"
		}
		if !slices.ContainsFunc(cfg.Auth.OIDC, func(p config.OIDCProvider) bool { return p.Name == a.provider }) {
			return fail("no OIDC provider %q is configured ([auth.oidc.%s])", a.provider, a.provider)
		}
		mapped, err := mapClaims(ctx, cfg, a.provider, claims)
		if err != nil {
			notes = append(notes, fmt.Sprintf("the server would refuse these claims: %v", err))
			id = &policy.Identity{ID: "oidc:" + a.provider + ":", OIDC: &policy.OIDC{ProviderName: a.provider, Claims: claims}}
		} else {
			id = access.PolicyIdentity(mapped)
		}
	}
	if id != nil {
		id.ClientIP = a.clientIP
	}

	printIdentity(stdout, source, id, a.clientIP)
	for _, n := range notes {
		fmt.Fprintf(stdout, "  note: %s\n", n)
	}
	r := a.req
	fmt.Fprintf(stdout, "\nrequest:\n  repository: %s\n  action:     %s\n  operation:  %s\n", r.Repository, r.Action, r.Operation)
	if r.Reference != "" {
		fmt.Fprintf(stdout, "  reference:  %s\n", r.Reference)
	}

	var d policy.Decision
	if eng == nil {
		fmt.Fprintln(stdout, "\nno access policy and no authentication: the registry is open")
		d = policy.Decision{Allowed: true, Rule: -1, Reason: "open mode: no access policy"}
	} else {
		ex := eng.Explain(ctx, policy.Input{Identity: id, Request: r})
		d = ex.Decision
		if len(ex.Policies) == 0 {
			fmt.Fprintln(stdout, "\nno access policy applies to this repository")
		}
		for _, pt := range ex.Policies {
			def := "deny"
			if pt.DefaultAllow {
				def = "allow"
			}
			fmt.Fprintf(stdout, "\npolicy %s (default %s): %s\n", pt.Key, def, pt.Outcome)
			for _, rt := range pt.Rules {
				fmt.Fprintf(stdout, "  rule %d: %s\n", rt.Index, rt.Result)
				for _, line := range strings.Split(strings.TrimSpace(rt.Expr), "\n") {
					fmt.Fprintf(stdout, "      %s\n", strings.TrimRight(line, " \t"))
				}
			}
		}
	}

	fmt.Fprintln(stdout)
	verdict := "DENIED"
	if d.Allowed {
		verdict = "ALLOWED"
	}
	switch {
	case d.Policy == "":
		fmt.Fprintf(stdout, "decision: %s (no policy decided)\n", verdict)
	case d.Rule < 0:
		fmt.Fprintf(stdout, "decision: %s by %s, by its default (no rule matched)\n", verdict, d.Policy)
	default:
		fmt.Fprintf(stdout, "decision: %s by %s, rule %d\n", verdict, d.Policy, d.Rule)
	}
	fmt.Fprintf(stdout, "reason:   %s\n", d.Reason)
	if d.Allowed {
		return exitOK
	}
	if id == nil && cfg.Auth.Enabled() {
		fmt.Fprintln(stdout, "the server answers 401 with an authentication challenge")
	} else {
		fmt.Fprintln(stdout, "the server answers 403 DENIED")
	}
	return exitDenied
}

// verifyToken verifies raw as the server does; with provider, as a Basic
// login with that username (VerifyFor; a username that names no provider
// as LoginProvider decides), else as a Bearer token routed by its issuer.
func verifyToken(ctx context.Context, cfg *config.Config, provider, raw string) (*auth.Identity, error) {
	if len(cfg.Auth.OIDC) == 0 {
		return nil, errors.New("no [auth.oidc.*] provider is configured")
	}
	v, _, err := oidc.New(server.OIDCProviders(cfg), oidc.Options{CacheSize: -1})
	if err != nil {
		return nil, err
	}
	defer v.Close()
	if provider != "" {
		if !v.Has(provider) {
			// As the server: a provider with accept_any_username the
			// token selects, or the reason it is refused.
			p, err := v.LoginProvider(provider, raw)
			if err != nil {
				return nil, fmt.Errorf("no OIDC provider %q is configured: %w", provider, err)
			}
			if p == "" {
				return nil, fmt.Errorf("no OIDC provider %q is configured", provider)
			}
			provider = p
		}
		return v.VerifyFor(ctx, provider, raw)
	}
	return v.Verify(ctx, raw)
}

func statusOfVerifyError(err error) string {
	if errors.Is(err, auth.ErrUnavailable) {
		return "503"
	}
	return "401"
}

// tokenPayload decodes a compact JWT's payload without verifying anything.
func tokenPayload(raw string) (map[string]any, error) {
	parts := strings.Split(strings.TrimSpace(raw), ".")
	if len(parts) != 3 {
		return nil, errors.New("not a compact JWT (want three dot-separated parts)")
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return nil, fmt.Errorf("payload: %v", err)
	}
	claims, err := decodeClaimsJSON(payload)
	if err != nil {
		return nil, fmt.Errorf("payload: %v", err)
	}
	return claims, nil
}

// decodeClaimsJSON decodes a JSON object of claims as the oidc package does:
// integers become int64, other numbers float64.
func decodeClaimsJSON(data []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("not a JSON object")
	}
	return numbers(m).(map[string]any), nil
}

func numbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return n
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = numbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = numbers(e)
		}
	}
	return v
}

// providerByIssuer is the provider of a token with this iss and aud, routed as
// the server routes it (by aud too when several providers share the issuer).
func providerByIssuer(cfg *config.Config, iss string, aud any) *config.OIDCProvider {
	var found []*config.OIDCProvider
	for i := range cfg.Auth.OIDC {
		if iss != "" && cfg.Auth.OIDC[i].Issuer == iss {
			found = append(found, &cfg.Auth.OIDC[i])
		}
	}
	if len(found) <= 1 {
		if len(found) == 0 {
			return nil
		}
		return found[0]
	}
	// Several providers of one issuer: the server routes by aud too.
	auds, _ := aud.([]any)
	if s, ok := aud.(string); ok {
		auds = []any{s}
	}
	for _, p := range found {
		for _, a := range auds {
			if s, ok := a.(string); ok && slices.Contains(p.Audiences, s) {
				return p
			}
		}
	}
	return nil
}

// mapClaims applies the provider's claim handling (flattening, required
// claims, claim_mapping) as the server does after verifying a token.
func mapClaims(ctx context.Context, cfg *config.Config, provider string, claims map[string]any) (*auth.Identity, error) {
	v, _, err := oidc.New(server.OIDCProviders(cfg), oidc.Options{CacheSize: -1})
	if err != nil {
		return nil, err
	}
	defer v.Close()
	return v.MapClaims(ctx, provider, claims)
}

func printIdentity(w io.Writer, source string, id *policy.Identity, clientIP string) {
	fmt.Fprintf(w, "identity: %s\n", source)
	if id == nil {
		fmt.Fprintf(w, "  id:        %s\n", policy.AnonymousID)
		fmt.Fprintln(w, "  oidc:      null")
		return
	}
	fmt.Fprintf(w, "  id:        %s\n", id.ID)
	fmt.Fprintf(w, "  username:  %s\n", id.Username)
	fmt.Fprintf(w, "  groups:    [%s]\n", strings.Join(id.Groups, ", "))
	if clientIP != "" {
		fmt.Fprintf(w, "  client_ip: %s\n", clientIP)
	}
	if id.OIDC == nil {
		fmt.Fprintln(w, "  oidc:      null")
		return
	}
	fmt.Fprintf(w, "  provider:  %s\n", id.OIDC.ProviderName)
	fmt.Fprintln(w, "  claims:")
	for _, k := range slices.Sorted(maps.Keys(id.OIDC.Claims)) {
		b, err := json.Marshal(id.OIDC.Claims[k])
		if err != nil {
			b = []byte(fmt.Sprint(id.OIDC.Claims[k]))
		}
		fmt.Fprintf(w, "    %s: %s\n", k, b)
	}
}
