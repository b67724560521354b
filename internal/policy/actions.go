package policy

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/types"
)

// Kinds are the values of request.action in a decision.
var Kinds = []string{"pull", "push", "delete"}

// Operations are the values of request.operation in a decision: every action
// of the /v2 API except ping (GET /v2/), which berth answers without a
// policy.
var Operations = []string{
	"get-manifest", "get-blob", "list-tags", "get-referrers", "list-catalog",
	"start-upload", "mount-blob", "get-upload", "patch-upload", "finish-upload", "cancel-upload", "put-manifest",
	"delete-manifest", "delete-blob",
}

// angosNames are Angos's action names that are not berth's: Angos's
// request.action is the fine action, berth's request.operation.
var angosNames = map[string]string{
	"update-upload":   "patch-upload",
	"complete-upload": "finish-upload",
}

// angosOnly are Angos actions no berth policy ever sees, with why.
var angosOnly = map[string]string{
	"get-api-version":   "berth answers GET /v2/ without a policy",
	"healthz":           "berth answers it without a policy",
	"readyz":            "berth answers it without a policy",
	"metrics":           "berth answers it without a policy",
	"get-token":         "berth's /token does not go through policies",
	"ui-asset":          "berth's web UI does not go through policies",
	"ui-config":         "berth's web UI does not go through policies",
	"list-repositories": "an Angos extension berth does not have",
	"list-namespaces":   "an Angos extension berth does not have",
	"list-revisions":    "an Angos extension berth does not have",
	"list-uploads":      "an Angos extension berth does not have",
	"list-jobs":         "an Angos extension berth does not have",
	"list-failed-jobs":  "an Angos extension berth does not have",
	"retry-job":         "an Angos extension berth does not have",
	"delete-job":        "an Angos extension berth does not have",
}

// actionComparison is one comparison of request.action or
// request.operation with string literals, found in a checked rule.
type actionComparison struct {
	call  ast.Expr // the comparison, replaced when it uses action names
	field string   // "action" or "operation"
	// kind of comparison: "==", "!=", "in", or the function name
	// (startsWith, endsWith, contains, matches).
	kind     string
	literals []ast.Expr // the string literals
	// mixed: an `in` list with elements that are not string literals.
	mixed bool
}

// checkActions finds every comparison of request.action or
// request.operation with string literals and
//
//   - refuses a literal that can never match: request.action is one of
//     Kinds, request.operation one of Operations;
//   - rewrites a comparison of request.action with action names (Angos's
//     vocabulary: request.action == 'get-manifest',
//     request.action.startsWith('put-')) into one of request.operation
//     with the operations it means.
//
// It returns the rule's new text when it rewrote anything, "" otherwise.
func checkActions(checked *cel.Ast) (string, []celIssue) {
	a := checked.NativeRep()
	info := a.SourceInfo()
	roots := []ast.Expr{a.Expr()}
	for _, m := range info.MacroCalls() {
		roots = append(roots, m)
	}
	var found []actionComparison
	seen := map[ast.Expr]bool{}
	for _, root := range roots {
		ast.PreOrderVisit(root, ast.NewExprVisitor(func(e ast.Expr) {
			if seen[e] {
				return
			}
			if c, ok := asActionComparison(a, e); ok {
				seen[e] = true
				found = append(found, c)
			}
		}))
	}
	if len(found) == 0 {
		return "", nil
	}
	var issues []celIssue
	type rewrite struct {
		call       ast.Expr
		negate     bool
		kinds, ops []string
	}
	var rewrites []rewrite
	// A comparison inside a macro is found twice, expanded and in the
	// macro's record, with the same IDs: both are rewritten, its problems
	// reported once.
	reported := map[int64]bool{}
	issue := func(e ast.Expr, format string, args ...any) {
		if reported[e.ID()] {
			return
		}
		reported[e.ID()] = true
		loc := info.GetStartLocation(e.ID())
		issues = append(issues, celIssue{line: loc.Line(), column: loc.Column() + 1, msg: fmt.Sprintf(format, args...)})
	}
	for _, c := range found {
		if c.field == "operation" {
			for _, l := range c.literals {
				s := literal(l)
				if ops := matching(c.kind, s, Operations, false); len(ops) == 0 {
					issue(l, "request.operation %s can never be true: %s", describeTest(c.kind, s), validOperations())
				}
			}
			continue
		}
		var kinds, ops []string
		for _, l := range c.literals {
			s := literal(l)
			if k := matching(c.kind, s, Kinds, false); len(k) > 0 {
				kinds = append(kinds, k...)
				continue
			}
			o := matching(c.kind, s, Operations, true)
			if len(o) == 0 {
				issue(l, "request.action %s can never be true: %s", describeTest(c.kind, s), validActions(s))
				continue
			}
			if c.mixed {
				issue(l, "request.action is %s, never an action such as %q: compare request.operation with action names", quoteList(Kinds), s)
				continue
			}
			ops = append(ops, o...)
		}
		if len(ops) > 0 {
			rewrites = append(rewrites, rewrite{call: c.call, negate: c.kind == "!=", kinds: uniq(kinds), ops: uniq(ops)})
		}
	}
	if len(issues) > 0 || len(rewrites) == 0 {
		return "", issues
	}
	fac := ast.NewExprFactory()
	next := ast.MaxID(a)
	id := func() int64 { next++; return next }
	in := func(field string, values []string) ast.Expr {
		elems := make([]ast.Expr, len(values))
		for i, v := range values {
			elems[i] = fac.NewLiteral(id(), types.String(v))
		}
		return fac.NewCall(id(), "@in", fac.NewSelect(id(), fac.NewIdent(id(), "request"), field), fac.NewList(id(), elems, nil))
	}
	for _, r := range rewrites {
		e := in("operation", r.ops)
		if len(r.kinds) > 0 {
			e = fac.NewCall(id(), "_||_", in("action", r.kinds), e)
		}
		if r.negate {
			e = fac.NewCall(id(), "!_", e)
		}
		r.call.SetKindCase(e)
	}
	text, err := cel.AstToString(checked)
	if err != nil {
		return "", []celIssue{{msg: fmt.Sprintf("rewriting action names into request.operation: %v", err)}}
	}
	return text, nil
}

// asActionComparison reports whether e compares request.action or
// request.operation with string literals.
func asActionComparison(a *ast.AST, e ast.Expr) (actionComparison, bool) {
	if e.Kind() != ast.CallKind {
		return actionComparison{}, false
	}
	call := e.AsCall()
	args := call.Args()
	c := actionComparison{call: e}
	var subject ast.Expr
	switch fn := call.FunctionName(); {
	case (fn == "_==_" || fn == "_!=_") && len(args) == 2:
		c.kind = strings.Trim(fn, "_")
		switch {
		case isStringLiteral(args[1]):
			subject, c.literals = args[0], args[1:]
		case isStringLiteral(args[0]):
			subject, c.literals = args[1], args[:1]
		}
	case fn == "@in" && len(args) == 2 && args[1].Kind() == ast.ListKind:
		c.kind = "in"
		subject = args[0]
		for _, el := range args[1].AsList().Elements() {
			if isStringLiteral(el) {
				c.literals = append(c.literals, el)
			} else {
				c.mixed = true
			}
		}
	case fn == "startsWith" || fn == "endsWith" || fn == "contains" || fn == "matches":
		c.kind = fn
		switch {
		case call.IsMemberFunction() && len(args) == 1 && isStringLiteral(args[0]):
			subject, c.literals = call.Target(), args
		case !call.IsMemberFunction() && fn == "matches" && len(args) == 2 && isStringLiteral(args[1]):
			subject, c.literals = args[0], args[1:]
		}
	}
	if subject == nil || len(c.literals) == 0 || subject.Kind() != ast.SelectKind {
		return actionComparison{}, false
	}
	sel := subject.AsSelect()
	if sel.IsTestOnly() || (sel.FieldName() != "action" && sel.FieldName() != "operation") {
		return actionComparison{}, false
	}
	if t := a.GetType(sel.Operand().ID()); t == nil || t.TypeName() != requestTypeName {
		return actionComparison{}, false
	}
	c.field = sel.FieldName()
	if c.mixed && c.field == "operation" {
		c.mixed = false // only checked, never rewritten
	}
	return c, true
}

func isStringLiteral(e ast.Expr) bool {
	if e.Kind() != ast.LiteralKind {
		return false
	}
	_, ok := e.AsLiteral().(types.String)
	return ok
}

func literal(e ast.Expr) string { return string(e.AsLiteral().(types.String)) }

// matching returns the values of vocab the test (kind, literal s) is true
// for; with angos, also the operations whose Angos name it is true for.
func matching(kind, s string, vocab []string, angos bool) []string {
	test := func(v string) bool {
		switch kind {
		case "==", "!=", "in":
			return v == s
		case "startsWith":
			return strings.HasPrefix(v, s)
		case "endsWith":
			return strings.HasSuffix(v, s)
		case "contains":
			return strings.Contains(v, s)
		}
		return false
	}
	if kind == "matches" {
		re, err := regexp.Compile(s)
		if err != nil {
			// Not ours to report: planning refuses an invalid constant
			// regular expression with cel-go's message.
			return vocab
		}
		test = re.MatchString
	}
	var out []string
	for _, v := range vocab {
		if test(v) {
			out = append(out, v)
		}
	}
	if angos {
		for name, op := range angosNames {
			if test(name) {
				out = append(out, op)
			}
		}
	}
	slices.Sort(out)
	return out
}

func uniq(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}

func describeTest(kind, s string) string {
	switch kind {
	case "==", "!=":
		return fmt.Sprintf("%s %q", kind, s)
	case "in":
		return fmt.Sprintf("in [..., %q, ...]", s)
	}
	return fmt.Sprintf(".%s(%q)", kind, s)
}

func quoteList(s []string) string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = fmt.Sprintf("%q", v)
	}
	return strings.Join(q, ", ")
}

// validActions is the message part listing what request.action may be
// compared with.
func validActions(s string) string {
	var b strings.Builder
	if why, ok := angosOnly[s]; ok {
		fmt.Fprintf(&b, "Angos's %q has no berth counterpart (%s); ", s, why)
	}
	fmt.Fprintf(&b, "request.action is one of %s, and may be compared with an action name instead (Angos's vocabulary, matched against request.operation): %s",
		quoteList(Kinds), quoteList(Operations))
	names := make([]string, 0, len(angosNames))
	for n := range angosNames {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(&b, ", %q (%s)", n, angosNames[n])
	}
	return b.String()
}

func validOperations() string {
	return "request.operation is one of " + quoteList(Operations)
}
