package policy

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
)

// Source is one access policy as written in the configuration.
type Source struct {
	// Key is the key path used in messages, such as
	// `repository."production".access_policy`. Empty: derived from where the
	// source is in Config.
	Key string
	// DefaultAllow is the decision when no rule is true. With false, a true
	// rule allows; with true, a true rule denies. (Angos' newer
	// `default = "allow"|"deny"` maps to it.)
	DefaultAllow bool
	// Rules are CEL expressions evaluated in order.
	Rules []string
	// Line is the configuration line of the policy, 0 if unknown; it only
	// appears in messages.
	Line int
}

// Config is every access policy of a registry.
type Config struct {
	// Global is [global.access_policy], nil if absent.
	Global *Source
	// Repositories maps a repository key as written ("production",
	// "team/*", "app/**") to its [repository."<key>".access_policy]. nil
	// values are ignored.
	Repositories map[string]*Source
	// Open is open mode: no authentication configured. A request no policy
	// covers is allowed.
	Open bool
}

// AnonymousID is the Identity.ID of a request without credentials. A nil
// Input.Identity is anonymous too.
const AnonymousID = "anonymous"

// Identity is who a request acts as; rules see it as `identity`.
type Identity struct {
	ID       string
	Username string
	Groups   []string
	ClientIP string
	// OIDC is nil unless the identity comes from an OIDC ID token;
	// `identity.oidc` is then null.
	OIDC *OIDC
}

// OIDC is the OIDC part of an identity; rules see it as `identity.oidc`.
type OIDC struct {
	ProviderName string
	// Claims are the ID token's claims as decoded from JSON. They are read,
	// never modified.
	Claims map[string]any
}

// Request is what a request asks to do; rules see it as `request`.
type Request struct {
	// Action is the access kind: "pull", "push" or "delete" (`request.action`).
	Action string
	// Operation is the fine typed action, such as "put-manifest" or
	// "mount-blob" (`request.operation`).
	Operation string
	// Repository is the repository name, "" for requests without one (ping,
	// catalog). `request.repository` and `request.namespace` both read it.
	Repository   string
	Reference    string
	Tags         []string
	Digest       string
	From         string // the source repository of a cross-repository mount
	ArtifactType string
	Method       string
}

// Input is everything a decision depends on.
type Input struct {
	// Identity is nil for an anonymous request.
	Identity *Identity
	Request  Request
}

func (in *Input) anonymous() bool {
	return in.Identity == nil || in.Identity.ID == AnonymousID
}

// Decision is the answer to one request.
type Decision struct {
	Allowed bool
	// Policy is the key of the deciding policy, "" when no policy decided
	// (open mode, or no policy covers the request). When the global and a
	// repository policy both allow, it is the repository policy, and Reason
	// names both.
	Policy string
	// Rule is the index of the deciding rule, -1 when the policy's default
	// (or no policy) decided.
	Rule int
	// Reason is a human explanation for logs. It never contains rule text,
	// but it may contain CEL error messages: NEVER send it to clients.
	Reason string
}

// Problem is one thing wrong with a Config.
type Problem struct {
	// Key is the policy's key path.
	Key string
	// Rule is the index of the rule in the policy, -1 when the problem is not
	// about one rule.
	Rule int
	// Line and Column locate the problem in the rule (1-based), 0 when it is
	// about the whole rule or not about a rule.
	Line, Column int
	// SourceLine is Source.Line, 0 if unknown.
	SourceLine int
	Message    string
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.Key)
	if p.Rule >= 0 {
		fmt.Fprintf(&b, ".rules[%d]", p.Rule)
	}
	if p.SourceLine > 0 {
		fmt.Fprintf(&b, " (line %d)", p.SourceLine)
	}
	b.WriteString(": ")
	if p.Line > 0 {
		fmt.Fprintf(&b, "%d:%d: ", p.Line, p.Column)
	}
	b.WriteString(p.Message)
	return b.String()
}

// CompileError lists every problem of a Config.
type CompileError struct {
	Problems []Problem
}

func (e *CompileError) Error() string {
	if len(e.Problems) == 1 {
		return "policy: " + e.Problems[0].String()
	}
	msgs := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		msgs[i] = p.String()
	}
	return fmt.Sprintf("policy: %d problems:\n\t%s", len(e.Problems), strings.Join(msgs, "\n\t"))
}

// Engine decides requests. It is immutable and safe for concurrent use.
type Engine struct {
	global  *compiled
	repos   []*compiled // most specific first
	open    bool
	adapter types.Adapter
}

type compiled struct {
	key          string
	defaultAllow bool
	rules        []rule
	// all is every rule in one program, `(r0) ? 0 : (r1) ? 1 : ... : -1`:
	// one evaluation (one context and one cost tracker) per policy instead
	// of one per rule. It yields the index of the first true rule, or an
	// error at the first rule that fails, which is then found by evaluating
	// the rules one by one. nil when there are no rules or too many to
	// combine.
	all     cel.Program
	pattern *pattern // nil for the global policy
}

type rule struct {
	expr string
	prg  cel.Program
}

// Compile compiles and checks every policy of c and reports every problem
// at once as a *CompileError.
func Compile(c Config) (*Engine, error) {
	env, err := newEnv()
	if err != nil {
		return nil, fmt.Errorf("policy: cel environment: %w", err)
	}
	e := &Engine{open: c.Open, adapter: env.CELTypeAdapter()}
	var problems []Problem
	if c.Global != nil {
		p, probs := compilePolicy(env, c.Global, "global.access_policy")
		e.global = p
		problems = append(problems, probs...)
	}
	keys := make([]string, 0, len(c.Repositories))
	for k, s := range c.Repositories {
		if s != nil {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		s := c.Repositories[k]
		p, probs := compilePolicy(env, s, fmt.Sprintf("repository.%q.access_policy", k))
		problems = append(problems, probs...)
		pat, err := parsePattern(k)
		if err != nil {
			problems = append(problems, Problem{Key: p.key, Rule: -1, SourceLine: s.Line, Message: err.Error()})
			continue
		}
		p.pattern = pat
		e.repos = append(e.repos, p)
	}
	// Ambiguity: two keys equally specific that both cover some name.
	for i, p := range e.repos {
		for _, q := range e.repos[:i] {
			if !p.pattern.sameSpecificity(q.pattern) {
				continue
			}
			if name := overlap(p.pattern.segs, q.pattern.segs); name != "" {
				problems = append(problems, Problem{Key: p.key, Rule: -1, SourceLine: c.Repositories[p.pattern.key].Line,
					Message: fmt.Sprintf("repository key %q is ambiguous with %q: both cover %q and neither is more specific; add a more specific key for the overlap or remove one",
						p.pattern.key, q.pattern.key, name)})
			}
		}
	}
	if len(problems) > 0 {
		return nil, &CompileError{Problems: problems}
	}
	slices.SortStableFunc(e.repos, func(a, b *compiled) int {
		switch {
		case a.pattern.moreSpecific(b.pattern):
			return -1
		case b.pattern.moreSpecific(a.pattern):
			return 1
		}
		return cmp.Compare(a.pattern.key, b.pattern.key)
	})
	return e, nil
}

func compilePolicy(env *cel.Env, s *Source, defaultKey string) (*compiled, []Problem) {
	key := s.Key
	if key == "" {
		key = defaultKey
	}
	p := &compiled{key: key, defaultAllow: s.DefaultAllow}
	var problems []Problem
	// The rules of a policy share one budget, in the combined program and
	// alone (Explain, naming a failed rule).
	limit := CostLimit * uint64(max(len(s.Rules), 1))
	effective := make([]string, len(s.Rules))
	for i, expr := range s.Rules {
		checked, text, issues := compileRule(env, expr)
		effective[i] = text
		var prg cel.Program
		if checked != nil {
			// Planning fails on constant arguments that cannot work,
			// such as an invalid regular expression in matches().
			var err error
			if prg, err = program(env, checked, limit); err != nil {
				issues = append(issues, celIssue{msg: err.Error()})
			}
		}
		for _, is := range issues {
			problems = append(problems, Problem{Key: key, Rule: i, Line: is.line, Column: is.column, SourceLine: s.Line, Message: is.msg})
		}
		p.rules = append(p.rules, rule{expr: expr, prg: prg})
	}
	if len(problems) > 0 || len(s.Rules) == 0 {
		return p, problems
	}
	// The combined program may exceed the parser's limits (size, nesting)
	// with very many rules: the rules are then evaluated one by one.
	if all, err := compileAll(env, effective, limit); err == nil {
		p.all = all
	}
	return p, problems
}

func program(env *cel.Env, checked *cel.Ast, limit uint64) (cel.Program, error) {
	prg, err := env.Program(checked,
		cel.CostLimit(limit),
		cel.InterruptCheckFrequency(100),
		cel.EvalOptions(cel.OptOptimize),
	)
	if err != nil {
		return nil, err
	}
	return prg, nil
}

// compileAll compiles the rules, each already checked alone, into one
// program yielding the index of the first true rule or -1. Each rule is
// parenthesised on lines of its own, so a trailing // comment ends there.
func compileAll(env *cel.Env, rules []string, limit uint64) (cel.Program, error) {
	var b strings.Builder
	for i, r := range rules {
		fmt.Fprintf(&b, "(\n%s\n) ? %d : ", r, i)
	}
	b.WriteString("-1")
	checked, iss := env.Compile(b.String())
	if iss.Err() != nil {
		return nil, fmt.Errorf("combining the rules: %v", iss.Err())
	}
	return program(env, checked, limit)
}

// compileRule compiles one rule: it must parse, type-check against the
// environment, evaluate to bool (or dyn, checked when evaluated), compare
// request.action and request.operation only with values they can take (see
// checkActions) and have a worst-case cost within EstimatedCostLimit. It
// returns the checked rule and its text: expr, or expr with Angos's action
// names rewritten into request.operation.
func compileRule(env *cel.Env, expr string) (*cel.Ast, string, []celIssue) {
	if strings.TrimSpace(expr) == "" {
		return nil, expr, []celIssue{{msg: "rule must not be empty"}}
	}
	checked, iss := env.Compile(expr)
	if iss.Err() != nil {
		var out []celIssue
		for _, e := range iss.Errors() {
			out = append(out, celIssue{line: e.Location.Line(), column: e.Location.Column() + 1, msg: e.Message})
		}
		return nil, expr, out
	}
	if got := checked.OutputType(); !got.IsExactType(cel.DynType) && !cel.BoolType.IsAssignableType(got) {
		return nil, expr, []celIssue{{msg: fmt.Sprintf("rule must evaluate to bool, not %s", got)}}
	}
	if out := checkConstants(checked); len(out) > 0 {
		return nil, expr, out
	}
	text, out := checkActions(checked)
	if len(out) > 0 {
		return nil, expr, out
	}
	if text != "" {
		// The rewritten rule is checked again from its text, which also
		// builds the combined program (compileAll).
		if checked, iss = env.Compile(text); iss.Err() != nil {
			return nil, expr, []celIssue{{msg: fmt.Sprintf("rewriting action names into request.operation: %v", iss.Err())}}
		}
		expr = text
	}
	est, err := env.EstimateCost(checked, boundedSizes{})
	if err != nil {
		return nil, expr, []celIssue{{msg: fmt.Sprintf("estimating cost: %v", err)}}
	}
	if est.Max > EstimatedCostLimit {
		return nil, expr, []celIssue{{msg: fmt.Sprintf("worst-case cost %d exceeds the limit %d: simplify the rule", est.Max, EstimatedCostLimit)}}
	}
	return checked, expr, nil
}

// Covering returns the repository key whose policy covers the repository
// name repo, "" if none does.
func (e *Engine) Covering(repo string) string {
	if p := e.covering(repo); p != nil {
		return p.pattern.key
	}
	return ""
}

func (e *Engine) covering(repo string) *compiled {
	for _, p := range e.repos {
		if p.pattern.match(repo) {
			return p
		}
	}
	return nil
}

// Decide decides whether in may proceed. It stops at the first deciding rule
// of each policy.
func (e *Engine) Decide(ctx context.Context, in Input) Decision {
	return e.decide(ctx, &in, nil)
}

// Explanation is a decision with how every applicable rule evaluated.
type Explanation struct {
	Decision Decision
	// Policies are the applicable policies in evaluation order: the global
	// policy, then the covering repository policy.
	Policies []PolicyTrace
}

// PolicyTrace is how one policy evaluated.
type PolicyTrace struct {
	Key          string
	DefaultAllow bool
	Rules        []RuleTrace
	// Outcome is the policy's own decision, such as "allowed by rule 0",
	// "denied by default" or "denied: rule 1 failed".
	Outcome string
}

// RuleTrace is how one rule evaluated.
type RuleTrace struct {
	Index int
	Expr  string
	// Result is "true", "false" or "error: <why>" (a non-bool result is an
	// error).
	Result string
}

// Explain decides like Decide (Decision is what Decide returns) and also
// evaluates every rule of every applicable policy alone, with no
// short-circuit, for `berth policy explain`: a global denial still traces
// the repository policy. Its output contains rule text: NEVER send it to
// clients.
func (e *Engine) Explain(ctx context.Context, in Input) Explanation {
	var ex Explanation
	ex.Decision = e.decide(ctx, &in, &ex)
	return ex
}

func (e *Engine) decide(ctx context.Context, in *Input, ex *Explanation) Decision {
	repo := in.Request.Repository
	f := newFrame(in, e.adapter)
	if repo == "" {
		switch {
		case e.global != nil:
			return e.run(ctx, e.global, f, ex)
		case e.open:
			return Decision{Allowed: true, Rule: -1, Reason: "open mode: no access policy"}
		case in.anonymous():
			return Decision{Rule: -1, Reason: "no global access policy: anonymous requests without a repository are denied"}
		}
		return Decision{Allowed: true, Rule: -1, Reason: "no global access policy: authenticated requests without a repository are allowed"}
	}
	rp := e.covering(repo)
	switch {
	case e.global == nil && rp == nil:
		if e.open {
			return Decision{Allowed: true, Rule: -1, Reason: "open mode: no access policy covers the repository"}
		}
		return Decision{Rule: -1, Reason: fmt.Sprintf("no access policy covers repository %q", truncate(repo, 255))}
	case rp == nil:
		return e.run(ctx, e.global, f, ex)
	case e.global == nil:
		return e.run(ctx, rp, f, ex)
	}
	g := e.run(ctx, e.global, f, ex)
	if !g.Allowed && ex == nil {
		return g
	}
	r := e.run(ctx, rp, f, ex)
	if !g.Allowed {
		return g
	}
	if r.Allowed {
		r.Reason = g.Reason + "; " + r.Reason
	}
	return r
}

// run decides one policy and, with ex, appends how each of its rules
// evaluated.
func (e *Engine) run(ctx context.Context, p *compiled, f *frame, ex *Explanation) Decision {
	d := e.decidePolicy(ctx, p, f)
	if ex != nil {
		ex.Policies = append(ex.Policies, trace(ctx, p, f))
	}
	return d
}

// decidePolicy evaluates the combined program, and the rules one by one
// only when it failed (to name the failed rule) or does not exist.
func (e *Engine) decidePolicy(ctx context.Context, p *compiled, f *frame) Decision {
	if p.all == nil {
		d, _ := sequential(ctx, p, f)
		return d
	}
	val, _, err := p.all.ContextEval(ctx, f)
	if err == nil {
		if i, ok := val.(types.Int); ok && i >= -1 && int(i) < len(p.rules) {
			return p.matched(int(i))
		}
		err = fmt.Errorf("unexpected result %s", typeName(val))
	}
	if d, failed := sequential(ctx, p, f); failed {
		return d
	}
	// No rule failed alone (the budget ran out only for all of them
	// together): still fail closed.
	return Decision{Policy: p.key, Rule: -1, Reason: fmt.Sprintf("%s: evaluation failed, denied (fail closed): %s", p.key, truncate(err.Error(), 300))}
}

// sequential evaluates the rules of p one by one up to the deciding one.
// failed reports a decision by a failed rule.
func sequential(ctx context.Context, p *compiled, f *frame) (d Decision, failed bool) {
	for i, r := range p.rules {
		val, _, err := r.prg.ContextEval(ctx, f)
		matched, failure := result(val, err)
		if failure != "" {
			return Decision{Policy: p.key, Rule: i, Reason: fmt.Sprintf("%s: rule %d failed, denied (fail closed): %s", p.key, i, failure)}, true
		}
		if matched {
			return p.matched(i), false
		}
	}
	return p.matched(-1), false
}

// matched is the decision when rule i is the first true rule, or the
// default when i is -1.
func (p *compiled) matched(i int) Decision {
	switch {
	case i < 0 && p.defaultAllow:
		return Decision{Allowed: true, Policy: p.key, Rule: -1, Reason: p.key + ": no rule matched, allowed by default"}
	case i < 0:
		return Decision{Policy: p.key, Rule: -1, Reason: p.key + ": no rule matched, denied by default"}
	case p.defaultAllow:
		return Decision{Policy: p.key, Rule: i, Reason: p.key + ": denied by rule " + strconv.Itoa(i)}
	}
	return Decision{Allowed: true, Policy: p.key, Rule: i, Reason: p.key + ": allowed by rule " + strconv.Itoa(i)}
}

// trace evaluates every rule of p alone.
func trace(ctx context.Context, p *compiled, f *frame) PolicyTrace {
	tr := PolicyTrace{Key: p.key, DefaultAllow: p.defaultAllow, Rules: make([]RuleTrace, 0, len(p.rules))}
	for i, r := range p.rules {
		val, _, err := r.prg.ContextEval(ctx, f)
		matched, failure := result(val, err)
		res := "false"
		switch {
		case failure != "":
			res = "error: " + failure
			if tr.Outcome == "" {
				tr.Outcome = fmt.Sprintf("denied: rule %d failed", i)
			}
		case matched:
			res = "true"
			if tr.Outcome == "" {
				tr.Outcome = outcome(p.matched(i))
			}
		}
		tr.Rules = append(tr.Rules, RuleTrace{Index: i, Expr: r.expr, Result: res})
	}
	if tr.Outcome == "" {
		tr.Outcome = outcome(p.matched(-1))
	}
	return tr
}

// result classifies an evaluation: true, false, or a failure (an error or a
// value that is not a bool).
func result(val ref.Val, err error) (matched bool, failure string) {
	if err != nil {
		return false, truncate(err.Error(), 300)
	}
	b, ok := val.(types.Bool)
	if !ok {
		return false, fmt.Sprintf("rule returned %s, not bool", typeName(val))
	}
	return bool(b), ""
}

func outcome(d Decision) string {
	verb := "denied"
	if d.Allowed {
		verb = "allowed"
	}
	if d.Rule < 0 {
		return verb + " by default"
	}
	return fmt.Sprintf("%s by rule %d", verb, d.Rule)
}
