package policy

import (
	"fmt"
	"net/netip"
	"reflect"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/ast"
	celcost "cel.dev/cel-go/common/cost"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/ext"
	"cel.dev/cel-go/interpreter"
)

// CEL cost budgets of one rule.
const (
	// CostLimit is the run-time budget of one rule, well over what an access
	// rule ever needs (about a millisecond of CEL). The rules of a policy
	// share CostLimit × len(rules); a policy stopped this way denies.
	CostLimit = 1_000_000
	// EstimatedCostLimit refuses, at compile time, rules whose worst case is
	// absurd (nested loops over claims or groups). The estimate assumes every
	// string, list and map of the input is MaxInputSize long, which no request
	// is all at once, so it is far above CostLimit.
	EstimatedCostLimit = 1_000_000_000
	// MaxInputSize is the size the cost estimate assumes for every string,
	// list and map of the input: an ID token (which carries the claims and
	// usually the groups) is at most 16 KiB.
	MaxInputSize = 16 << 10
)

// CEL object type names of the two variables.
const (
	identityTypeName = "berth.Identity"
	oidcTypeName     = "berth.OIDC"
	requestTypeName  = "berth.Request"
)

var (
	identityType = types.NewObjectType(identityTypeName)
	oidcType     = types.NewObjectType(oidcTypeName)
	requestType  = types.NewObjectType(requestTypeName)
	stringList   = types.NewListType(types.StringType)
	claimsType   = types.NewMapType(types.StringType, types.DynType)
)

// A field of one of the object types. get computes the value from the
// frame, which caches it in slot; set, when not nil, reports presence for
// has().
type field struct {
	name string
	typ  *types.Type
	slot int
	get  func(f *frame) ref.Val
	set  func(f *frame) bool
}

// Slots of the per-call field cache (frame.cache): each field is converted
// to a CEL value at most once per Decide, however many rules read it.
const (
	slotID = iota
	slotUsername
	slotGroups
	slotClientIP
	slotOIDC
	slotProvider
	slotClaims
	slotAction
	slotOperation
	slotRepository
	slotReference
	slotTags
	slotDigest
	slotFrom
	slotArtifactType
	slotMethod
	numSlots
)

var objectFields = map[string][]field{
	identityTypeName: {
		{name: "id", typ: types.StringType, slot: slotID, get: func(f *frame) ref.Val { return types.String(f.id.ID) }},
		{name: "username", typ: types.StringType, slot: slotUsername, get: func(f *frame) ref.Val { return types.String(f.id.Username) }},
		{name: "groups", typ: stringList, slot: slotGroups, get: func(f *frame) ref.Val { return types.NewStringList(f.adapter, f.id.Groups) }},
		{name: "client_ip", typ: types.StringType, slot: slotClientIP, get: func(f *frame) ref.Val { return types.String(f.id.ClientIP) }},
		{name: "oidc", typ: oidcType, slot: slotOIDC,
			get: func(f *frame) ref.Val {
				if f.id.OIDC == nil {
					return types.NullValue
				}
				return &f.oidc
			},
			set: func(f *frame) bool { return f.id.OIDC != nil },
		},
	},
	oidcTypeName: {
		{name: "provider_name", typ: types.StringType, slot: slotProvider, get: func(f *frame) ref.Val { return types.String(f.id.OIDC.ProviderName) }},
		{name: "claims", typ: claimsType, slot: slotClaims, get: func(f *frame) ref.Val {
			c := f.id.OIDC.Claims
			if c == nil {
				c = map[string]any{}
			}
			return types.NewStringInterfaceMap(f.adapter, c)
		}},
	},
	requestTypeName: {
		{name: "action", typ: types.StringType, slot: slotAction, get: func(f *frame) ref.Val { return types.String(f.in.Request.Action) }},
		{name: "operation", typ: types.StringType, slot: slotOperation, get: func(f *frame) ref.Val { return types.String(f.in.Request.Operation) }},
		{name: "repository", typ: types.StringType, slot: slotRepository, get: func(f *frame) ref.Val { return types.String(f.in.Request.Repository) }},
		{name: "namespace", typ: types.StringType, slot: slotRepository, get: func(f *frame) ref.Val { return types.String(f.in.Request.Repository) }},
		{name: "reference", typ: types.StringType, slot: slotReference, get: func(f *frame) ref.Val { return types.String(f.in.Request.Reference) }},
		{name: "tags", typ: stringList, slot: slotTags, get: func(f *frame) ref.Val { return types.NewStringList(f.adapter, f.in.Request.Tags) }},
		{name: "digest", typ: types.StringType, slot: slotDigest, get: func(f *frame) ref.Val { return types.String(f.in.Request.Digest) }},
		{name: "from", typ: types.StringType, slot: slotFrom, get: func(f *frame) ref.Val { return types.String(f.in.Request.From) }},
		{name: "artifact_type", typ: types.StringType, slot: slotArtifactType, get: func(f *frame) ref.Val { return types.String(f.in.Request.ArtifactType) }},
		{name: "method", typ: types.StringType, slot: slotMethod, get: func(f *frame) ref.Val { return types.String(f.in.Request.Method) }},
	},
}

// anonymous is what `identity` shows for a nil Input.Identity.
var anonymous = &Identity{ID: AnonymousID}

// frame is the activation of one Decide or Explain call: it resolves
// `identity` and `request` to objects backed by the Input, converting fields
// only when a rule reads them (once per call for lists and maps). A frame is
// used by one goroutine only.
type frame struct {
	in       *Input
	id       *Identity
	adapter  types.Adapter
	identObj object
	oidc     object
	request  object
	cache    [numSlots]ref.Val
}

var _ interpreter.Activation = (*frame)(nil)

func newFrame(in *Input, adapter types.Adapter) *frame {
	f := &frame{in: in, id: in.Identity, adapter: adapter}
	if f.id == nil {
		f.id = anonymous
	}
	f.identObj = object{f: f, typ: identityType}
	f.oidc = object{f: f, typ: oidcType}
	f.request = object{f: f, typ: requestType}
	return f
}

// value returns the field's value, converting it on first use.
func (f *frame) value(fd *field) ref.Val {
	if v := f.cache[fd.slot]; v != nil {
		return v
	}
	v := fd.get(f)
	f.cache[fd.slot] = v
	return v
}

// ResolveName implements interpreter.Activation.
func (f *frame) ResolveName(name string) (any, bool) {
	switch name {
	case "identity":
		return &f.identObj, true
	case "request":
		return &f.request, true
	}
	return nil, false
}

// Parent implements interpreter.Activation.
func (f *frame) Parent() interpreter.Activation { return nil }

// object is a CEL value of one of the object types, backed by a frame.
type object struct {
	f   *frame
	typ *types.Type
}

func (o *object) ConvertToNative(t reflect.Type) (any, error) {
	return nil, fmt.Errorf("policy: %s cannot be converted to %v", o.typ.TypeName(), t)
}

func (o *object) ConvertToType(t ref.Type) ref.Val {
	if t == types.TypeType {
		return o.typ
	}
	return types.NewErr("type conversion error from '%s' to '%s'", o.typ.TypeName(), t.TypeName())
}

func (o *object) Equal(other ref.Val) ref.Val {
	p, ok := other.(*object)
	return types.Bool(ok && p == o)
}

func (o *object) Type() ref.Type { return o.typ }
func (o *object) Value() any     { return o }

// Get implements traits.Indexer for field access through dyn values.
func (o *object) Get(index ref.Val) ref.Val {
	if fd := o.field(index); fd != nil {
		return o.f.value(fd)
	}
	return types.NewErr("no such field '%v' in %s", index, o.typ.TypeName())
}

// IsSet implements traits.FieldTester for has() through dyn values.
func (o *object) IsSet(index ref.Val) ref.Val {
	fd := o.field(index)
	if fd == nil {
		return types.NewErr("no such field '%v' in %s", index, o.typ.TypeName())
	}
	return types.Bool(fd.set == nil || fd.set(o.f))
}

func (o *object) field(index ref.Val) *field {
	name, ok := index.(types.String)
	if !ok {
		return nil
	}
	fields := objectFields[o.typ.TypeName()]
	for i := range fields {
		if fields[i].name == string(name) {
			return &fields[i]
		}
	}
	return nil
}

// fieldOfNull is the error of selecting a field of null: only identity.oidc
// can be null, so the message says how to guard against it.
func fieldOfNull(name string) error {
	return fmt.Errorf("no such field '%s': identity.oidc is null (no OIDC token): guard the rule with identity.oidc != null", name)
}

// provider adds the object types to the environment's type provider.
type provider struct {
	types.Provider
	fieldTypes map[string]map[string]*types.FieldType
}

func newProvider(base types.Provider) *provider {
	p := &provider{Provider: base, fieldTypes: map[string]map[string]*types.FieldType{}}
	for typeName, fields := range objectFields {
		m := map[string]*types.FieldType{}
		for i := range fields {
			fd := &fields[i]
			set := fd.set
			m[fd.name] = &types.FieldType{
				Type: fd.typ,
				IsSet: func(target any) bool {
					o, ok := target.(*object)
					return ok && (set == nil || set(o.f))
				},
				GetFrom: func(target any) (any, error) {
					o, ok := target.(*object)
					if !ok {
						return nil, fieldOfNull(fd.name)
					}
					return o.f.value(fd), nil
				},
			}
		}
		p.fieldTypes[typeName] = m
	}
	return p
}

func (p *provider) FindStructType(name string) (*types.Type, bool) {
	switch name {
	case identityTypeName:
		return types.NewTypeTypeWithParam(identityType), true
	case oidcTypeName:
		return types.NewTypeTypeWithParam(oidcType), true
	case requestTypeName:
		return types.NewTypeTypeWithParam(requestType), true
	}
	return p.Provider.FindStructType(name)
}

func (p *provider) FindStructFieldNames(name string) ([]string, bool) {
	if fields, ok := objectFields[name]; ok {
		names := make([]string, 0, len(fields))
		for _, fd := range fields {
			names = append(names, fd.name)
		}
		return names, true
	}
	return p.Provider.FindStructFieldNames(name)
}

func (p *provider) FindStructFieldType(name, fieldName string) (*types.FieldType, bool) {
	if m, ok := p.fieldTypes[name]; ok {
		ft, ok := m[fieldName]
		return ft, ok
	}
	return p.Provider.FindStructFieldType(name, fieldName)
}

// NewValue refuses to construct the object types: rules read them, they never
// build them.
func (p *provider) NewValue(name string, fields map[string]ref.Val) ref.Val {
	if _, ok := objectFields[name]; ok {
		return types.NewErr("%s cannot be constructed", name)
	}
	return p.Provider.NewValue(name, fields)
}

// objectTypes installs the object types, wrapping the provider built so far
// (as ext.NativeTypes does): it comes after the libraries that register types.
func objectTypes() cel.EnvOption {
	return func(e *cel.Env) (*cel.Env, error) {
		return cel.CustomTypeProvider(newProvider(e.CELTypeProvider()))(e)
	}
}

// newEnv builds the one CEL environment every rule is compiled in.
func newEnv() (*cel.Env, error) {
	return cel.NewEnv(
		// Macro calls are recorded so that a rule rewritten by
		// checkActions can be printed back (cel.AstToString).
		cel.EnableMacroCallTracking(),
		cel.OptionalTypes(),
		ext.Strings(),
		ext.Lists(),
		ext.Sets(),
		ext.Network(),
		objectTypes(),
		cel.Variable("identity", identityType),
		cel.Variable("request", requestType),
		cel.Function(ipInCIDRFunc,
			cel.Overload("ip_in_cidr_string_string", []*cel.Type{cel.StringType, cel.StringType}, cel.BoolType,
				cel.BinaryBinding(ipInCIDR))),
	)
}

const ipInCIDRFunc = "ip_in_cidr"

// ipInCIDR reports whether the address a lies in the prefix p. An address that
// does not parse (such as an empty client_ip) is in no network; a prefix that
// does not parse is an error (constant prefixes are checked at compile time).
func ipInCIDR(a, p ref.Val) ref.Val {
	as, ok1 := a.(types.String)
	ps, ok2 := p.(types.String)
	if !ok1 || !ok2 {
		return types.NoSuchOverloadErr()
	}
	prefix, err := netip.ParsePrefix(string(ps))
	if err != nil {
		return types.NewErr("ip_in_cidr: invalid CIDR %q", truncate(string(ps), 64))
	}
	addr, err := netip.ParseAddr(string(as))
	if err != nil {
		return types.False
	}
	return types.Bool(prefix.Contains(addr.WithZone("").Unmap()))
}

// checkConstants reports ip_in_cidr calls with a constant CIDR that does not
// parse, so the mistake fails at load rather than denying every request.
func checkConstants(checked *cel.Ast) []celIssue {
	var out []celIssue
	info := checked.NativeRep().SourceInfo()
	ast.PreOrderVisit(checked.NativeRep().Expr(), ast.NewExprVisitor(func(e ast.Expr) {
		if e.Kind() != ast.CallKind {
			return
		}
		c := e.AsCall()
		if c.FunctionName() != ipInCIDRFunc || len(c.Args()) != 2 || c.Args()[1].Kind() != ast.LiteralKind {
			return
		}
		s, ok := c.Args()[1].AsLiteral().(types.String)
		if !ok {
			return
		}
		if _, err := netip.ParsePrefix(string(s)); err != nil {
			loc := info.GetStartLocation(c.Args()[1].ID())
			out = append(out, celIssue{line: loc.Line(), column: loc.Column() + 1,
				msg: fmt.Sprintf("ip_in_cidr: invalid CIDR %q", truncate(string(s), 64))})
		}
	}))
	return out
}

type celIssue struct {
	line, column int
	msg          string
}

// boundedSizes bounds every string, list and map reachable from the
// variables by MaxInputSize.
type boundedSizes struct{}

func (boundedSizes) EstimateSize(n celcost.AstNode) *celcost.SizeEstimate {
	if len(n.Path()) == 0 {
		return nil
	}
	return &celcost.SizeEstimate{Min: 0, Max: MaxInputSize}
}

func (boundedSizes) EstimateCallCost(function, overloadID string, target *celcost.AstNode, args []celcost.AstNode) *celcost.CallEstimate {
	return nil
}

// typeName names the CEL type of v for messages.
func typeName(v ref.Val) string {
	if v == nil {
		return "nothing"
	}
	if t := v.Type(); t != nil {
		return t.TypeName()
	}
	return fmt.Sprintf("%T", v)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
