package oidc

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"unicode"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/ast"
	celcost "cel.dev/cel-go/common/cost"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/ext"
)

// CEL cost budgets of one claim-mapping expression.
const (
	// CostLimit stops an evaluation that does more work than a claim mapping
	// ever needs (about a millisecond of CEL).
	CostLimit = 1_000_000
	// EstimatedCostLimit refuses, at load, expressions whose worst case is
	// absurd, such as nested loops over claims. The estimate assumes every
	// string and list in the claims is as large as a whole token, which no
	// token can be all at once, so it is far above CostLimit.
	EstimatedCostLimit = 1_000_000_000
)

const (
	defaultUsername = "claims.iss + '/' + claims.sub"
	k8sNamespace    = "kubernetes.io/serviceaccount/namespace"
	k8sSAName       = "kubernetes.io/serviceaccount/service-account.name"
	k8sSAUID        = "kubernetes.io/serviceaccount/service-account.uid"
	// The kubernetes preset names service accounts the way the API server does.
	defaultK8sUsername = "'" + k8sNamespace + "' in claims && '" + k8sSAName + "' in claims" +
		" ? 'system:serviceaccount:' + claims['" + k8sNamespace + "'] + ':' + claims['" + k8sSAName + "']" +
		" : " + defaultUsername
)

var varName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// mapping is a provider's compiled claim mapping.
type mapping struct {
	vars        []compiledVar
	validations []compiledValidation
	// username is nil for the default username, which defaultName computes
	// in Go exactly as CEL would defaultUsername (defaultK8sUsername when
	// k8s): the common case then runs no CEL at all.
	username cel.Program
	k8s      bool
	groups   cel.Program // nil: no groups
}

type compiledVar struct {
	name string
	prg  cel.Program
}

type compiledValidation struct {
	prg     cel.Program
	message string
}

// compileMapping compiles and type-checks every expression of m, reporting
// each problem through bad with its key path. It returns nil when any failed.
func compileMapping(name, preset string, m ClaimMapping, bad func(key, format string, args ...any)) *mapping {
	env, err := cel.NewEnv(
		cel.Variable("claims", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("vars", cel.MapType(cel.StringType, cel.DynType)),
		ext.Strings(),
	)
	if err != nil {
		bad(providerKey(name, "claim_mapping"), "cel environment: %v", err)
		return nil
	}
	ok := true
	out := &mapping{}
	defined := []string{}
	key := func(leaf ...string) string { return providerKey(name, append([]string{"claim_mapping"}, leaf...)...) }
	compile := func(k, expr string, want ...*cel.Type) cel.Program {
		prg, err := compileExpr(env, expr, defined, want...)
		if err != nil {
			bad(k, "%v", err)
			ok = false
		}
		return prg
	}

	for i, v := range m.Variables {
		k := fmt.Sprintf("%s[%d]", key("variables"), i)
		switch {
		case !varName.MatchString(v.Name):
			bad(k+".name", "%q is not a valid variable name (letters, digits, _)", v.Name)
			ok = false
		case slices.Contains(defined, v.Name):
			bad(k+".name", "variable %q is defined twice", v.Name)
			ok = false
		}
		prg := compile(k+".expression", v.Expression)
		out.vars = append(out.vars, compiledVar{name: v.Name, prg: prg})
		defined = append(defined, v.Name)
	}
	for i, v := range m.Validations {
		k := fmt.Sprintf("%s[%d]", key("validations"), i)
		prg := compile(k+".expression", v.Expression, cel.BoolType)
		msg := v.Message
		if msg == "" {
			msg = v.Expression
		}
		out.validations = append(out.validations, compiledValidation{prg: prg, message: msg})
	}
	if m.Username != "" {
		out.username = compile(key("username"), m.Username, cel.StringType)
	}
	out.k8s = preset == "kubernetes"
	if m.Groups != "" {
		out.groups = compile(key("groups"), m.Groups, cel.ListType(cel.StringType))
	}
	if !ok {
		return nil
	}
	return out
}

// compileExpr compiles expr, checks its output type against want (dyn always
// passes and is checked when evaluated), the vars it references and its
// worst-case cost.
func compileExpr(env *cel.Env, expr string, defined []string, want ...*cel.Type) (cel.Program, error) {
	if strings.TrimSpace(expr) == "" {
		return nil, fmt.Errorf("must not be empty")
	}
	checked, iss := env.Compile(expr)
	if iss.Err() != nil {
		msgs := make([]string, 0, len(iss.Errors()))
		for _, e := range iss.Errors() {
			msgs = append(msgs, fmt.Sprintf("%d:%d: %s", e.Location.Line(), e.Location.Column()+1, e.Message))
		}
		return nil, fmt.Errorf("cel: %s", strings.Join(msgs, "; "))
	}
	if len(want) > 0 {
		got := checked.OutputType()
		if !got.IsExactType(cel.DynType) && !slices.ContainsFunc(want, func(t *cel.Type) bool { return t.IsAssignableType(got) }) {
			return nil, fmt.Errorf("cel: must evaluate to %s, not %s", want[0], got)
		}
	}
	if err := checkVars(checked, defined); err != nil {
		return nil, err
	}
	est, err := env.EstimateCost(checked, boundedSizes{})
	if err != nil {
		return nil, fmt.Errorf("cel: estimating cost: %v", err)
	}
	if est.Max > EstimatedCostLimit {
		return nil, fmt.Errorf("cel: worst-case cost %d exceeds the limit %d: simplify the expression", est.Max, EstimatedCostLimit)
	}
	prg, err := env.Program(checked,
		cel.CostLimit(CostLimit),
		cel.InterruptCheckFrequency(100),
		cel.EvalOptions(cel.OptOptimize),
	)
	if err != nil {
		return nil, fmt.Errorf("cel: %v", err)
	}
	return prg, nil
}

// checkVars refuses references to variables not defined before, so that a
// typo in vars.<name> fails at load rather than on every token.
func checkVars(checked *cel.Ast, defined []string) error {
	var err error
	check := func(name string) {
		if err == nil && !slices.Contains(defined, name) {
			if len(defined) == 0 {
				err = fmt.Errorf("vars.%s is not defined: no variable is defined before this expression", name)
			} else {
				err = fmt.Errorf("vars.%s is not defined: defined before this expression: %s", name, strings.Join(defined, ", "))
			}
		}
	}
	isVars := func(e ast.Expr) bool { return e.Kind() == ast.IdentKind && e.AsIdent() == "vars" }
	ast.PreOrderVisit(checked.NativeRep().Expr(), ast.NewExprVisitor(func(e ast.Expr) {
		switch e.Kind() {
		case ast.SelectKind:
			if s := e.AsSelect(); isVars(s.Operand()) {
				check(s.FieldName())
			}
		case ast.CallKind:
			c := e.AsCall()
			if c.FunctionName() == "_[_]" && len(c.Args()) == 2 && isVars(c.Args()[0]) && c.Args()[1].Kind() == ast.LiteralKind {
				if s, ok := c.Args()[1].AsLiteral().(types.String); ok {
					check(string(s))
				}
			}
		}
	}))
	return err
}

// boundedSizes bounds every string, list and map reachable from claims or
// vars by the token size limit: a token cannot carry more than that.
type boundedSizes struct{}

func (boundedSizes) EstimateSize(n celcost.AstNode) *celcost.SizeEstimate {
	if len(n.Path()) == 0 {
		return nil
	}
	s := celcost.SizeEstimate{Min: 0, Max: MaxTokenSize}
	return &s
}

func (boundedSizes) EstimateCallCost(function, overloadID string, target *celcost.AstNode, args []celcost.AstNode) *celcost.CallEstimate {
	return nil
}

// eval runs the mapping. The returned error is a refusal reason.
func (m *mapping) eval(ctx context.Context, claims map[string]any) (string, []string, error) {
	// The CEL activation is built only when an expression runs: the default
	// mapping runs none.
	var act map[string]any
	if m.username != nil || m.groups != nil || len(m.vars) > 0 || len(m.validations) > 0 {
		vars := make(map[string]any, len(m.vars))
		act = map[string]any{"claims": claims, "vars": vars}
		for _, v := range m.vars {
			val, _, err := v.prg.ContextEval(ctx, act)
			if err != nil {
				return "", nil, fmt.Errorf("claim mapping: variable %s: %v", v.name, err)
			}
			vars[v.name] = val
		}
	}
	for _, v := range m.validations {
		val, _, err := v.prg.ContextEval(ctx, act)
		if err != nil {
			return "", nil, fmt.Errorf("validation failed: %s (%v)", v.message, err)
		}
		if b, ok := val.(types.Bool); !ok || !bool(b) {
			return "", nil, fmt.Errorf("validation failed: %s", v.message)
		}
	}
	var username string
	if m.username == nil {
		var err error
		username, err = defaultName(claims, m.k8s)
		if err != nil {
			return "", nil, fmt.Errorf("claim mapping: username: %v", err)
		}
	} else {
		val, _, err := m.username.ContextEval(ctx, act)
		if err != nil {
			return "", nil, fmt.Errorf("claim mapping: username: %v", err)
		}
		s, ok := val.(types.String)
		if !ok {
			return "", nil, fmt.Errorf("claim mapping: username: got %s, want string", val.Type().TypeName())
		}
		username = string(s)
	}
	if err := checkName(username); err != nil {
		return "", nil, fmt.Errorf("claim mapping: username: %v", err)
	}
	var groups []string
	if m.groups != nil {
		val, _, err := m.groups.ContextEval(ctx, act)
		if err != nil {
			return "", nil, fmt.Errorf("claim mapping: groups: %v", err)
		}
		g, err := val.ConvertToNative(reflect.TypeFor[[]string]())
		if err != nil {
			return "", nil, fmt.Errorf("claim mapping: groups: want list(string): %v", err)
		}
		groups = g.([]string)
		for _, s := range groups {
			if err := checkName(s); err != nil {
				return "", nil, fmt.Errorf("claim mapping: groups: %v", err)
			}
		}
	}
	return username, groups, nil
}

var (
	errNoOverload = errors.New("no such overload")
	errNoIss      = errors.New("no such key: iss")
	errNoSub      = errors.New("no such key: sub")
)

// defaultName is the default username: what CEL returns for defaultUsername,
// or defaultK8sUsername when k8s, with the same errors (TestDefaultName
// compares them), without CEL's cost.
func defaultName(claims map[string]any, k8s bool) (string, error) {
	if k8s {
		ns, okNS := claims[k8sNamespace]
		sa, okSA := claims[k8sSAName]
		if okNS && okSA {
			nss, ok1 := ns.(string)
			sas, ok2 := sa.(string)
			if !ok1 || !ok2 {
				return "", errNoOverload
			}
			return "system:serviceaccount:" + nss + ":" + sas, nil
		}
	}
	iss, ok := claims["iss"]
	if !ok {
		return "", errNoIss
	}
	isss, ok := iss.(string)
	if !ok {
		return "", errNoOverload
	}
	sub, ok := claims["sub"]
	if !ok {
		return "", errNoSub
	}
	subs, ok := sub.(string)
	if !ok {
		return "", errNoOverload
	}
	return isss + "/" + subs, nil
}

// checkName refuses empty names and control characters, which would make
// identities ambiguous in logs and policies.
func checkName(s string) error {
	if s == "" {
		return fmt.Errorf("empty")
	}
	if strings.ContainsFunc(s, unicode.IsControl) {
		return fmt.Errorf("%s contains a control character", q(s))
	}
	return nil
}
