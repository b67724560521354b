package token

import (
	"fmt"
	"slices"
	"strings"

	"github.com/berth-registry/berth/internal/auth"
)

// Bounds on what one token request may ask for; a request over them is
// malformed, not merely large.
const (
	maxScopes       = 128
	maxScopeActions = 16
	maxScopeName    = 512
	maxScopeType    = 64
)

// ParseScope parses space-separated Docker token scopes
// ("type:name:action[,action...]"), e.g.
//
//	repository:a/b:pull,push
//	repository:localhost:5000/a:pull   (names may contain ':'; actions follow the LAST ':')
//	registry:catalog:*
//	repository(plugin):a/b:pull        (a resource class in the type)
//
// Entries for the same type and name are merged and duplicate actions dropped,
// keeping first-seen order. An empty string yields an empty list.
func ParseScope(scope string) ([]auth.Access, error) {
	out := []auth.Access{}
	for _, f := range strings.Fields(scope) {
		typ, rest, ok := strings.Cut(f, ":")
		i := strings.LastIndexByte(rest, ':')
		if !ok || i < 0 {
			return nil, fmt.Errorf("token: scope %s: want type:name:actions", clip(f))
		}
		name, actions := rest[:i], rest[i+1:]
		if err := checkType(typ); err != nil {
			return nil, fmt.Errorf("token: scope %s: %w", clip(f), err)
		}
		if err := checkName(name); err != nil {
			return nil, fmt.Errorf("token: scope %s: %w", clip(f), err)
		}
		acts, err := parseActions(actions)
		if err != nil {
			return nil, fmt.Errorf("token: scope %s: %w", clip(f), err)
		}
		j := slices.IndexFunc(out, func(a auth.Access) bool { return a.Type == typ && a.Name == name })
		if j < 0 {
			if len(out) == maxScopes {
				return nil, fmt.Errorf("token: more than %d scopes", maxScopes)
			}
			out = append(out, auth.Access{Type: typ, Name: name})
			j = len(out) - 1
		}
		for _, a := range acts {
			if !slices.Contains(out[j].Actions, a) {
				if len(out[j].Actions) == maxScopeActions {
					return nil, fmt.Errorf("token: scope %s: more than %d actions", clip(f), maxScopeActions)
				}
				out[j].Actions = append(out[j].Actions, a)
			}
		}
	}
	return out, nil
}

// checkType accepts [a-z0-9]+ optionally followed by a (class) of the same.
func checkType(t string) error {
	base, class, hasClass := strings.Cut(t, "(")
	if hasClass {
		var ok bool
		if class, ok = strings.CutSuffix(class, ")"); !ok || class == "" {
			return fmt.Errorf("malformed resource class")
		}
	}
	if base == "" || len(t) > maxScopeType || !isLowerAlnum(base) || (hasClass && !isLowerAlnum(class)) {
		return fmt.Errorf("malformed resource type")
	}
	return nil
}

func isLowerAlnum(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// checkName accepts printable ASCII without spaces. Whether the name is a
// valid repository is the policy's business; this only keeps logs and tokens sane.
func checkName(n string) error {
	if n == "" || len(n) > maxScopeName {
		return fmt.Errorf("resource name empty or longer than %d", maxScopeName)
	}
	for i := 0; i < len(n); i++ {
		if n[i] <= ' ' || n[i] > '~' {
			return fmt.Errorf("resource name has a character outside printable ASCII")
		}
	}
	return nil
}

func parseActions(s string) ([]string, error) {
	parts := strings.Split(s, ",")
	if len(parts) > maxScopeActions {
		return nil, fmt.Errorf("more than %d actions", maxScopeActions)
	}
	for _, a := range parts {
		if a == "" || len(a) > 32 {
			return nil, fmt.Errorf("empty or overlong action")
		}
		for i := 0; i < len(a); i++ {
			c := a[i]
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '*' && c != '_' && c != '-' {
				return nil, fmt.Errorf("malformed action")
			}
		}
	}
	return parts, nil
}

// scopeString formats access back into the scope syntax ParseScope reads.
func scopeString(access []auth.Access) string {
	var b strings.Builder
	for i, a := range access {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(a.Type)
		b.WriteByte(':')
		b.WriteString(a.Name)
		b.WriteByte(':')
		b.WriteString(strings.Join(a.Actions, ","))
	}
	return b.String()
}

// intersect keeps the requested actions that granted allows, in request order,
// and drops resources left with none. It never returns nil.
func intersect(requested, granted []auth.Access) []auth.Access {
	out := []auth.Access{}
	for _, r := range requested {
		var acts []string
		for _, a := range r.Actions {
			if auth.Allows(granted, r.Type, r.Name, a) {
				acts = append(acts, a)
			} else if a == "*" {
				// "*" asked for: keep whatever was granted on the resource.
				for _, g := range granted {
					if g.Type == r.Type && g.Name == r.Name {
						acts = append(acts, g.Actions...)
					}
				}
			}
		}
		slices.Sort(acts)
		acts = slices.Compact(acts)
		if len(acts) > 0 {
			out = append(out, auth.Access{Type: r.Type, Name: r.Name, Actions: acts})
		}
	}
	return out
}

// refused lists the actions of requested that granted does not allow, the
// ones the registry checks only (pull, push and delete on a repository,
// anything on another resource type), one entry per resource. nil when
// everything was granted.
func refused(requested, granted []auth.Access) []auth.Access {
	var out []auth.Access
	for _, r := range requested {
		acts := r.Actions
		if r.Type == "repository" {
			acts = nil
			for _, a := range r.Actions {
				if a == "*" {
					acts = append(acts, "pull", "push", "delete")
				} else if a == "pull" || a == "push" || a == "delete" {
					acts = append(acts, a)
				}
			}
		}
		var no []string
		for _, a := range acts {
			if !auth.Allows(granted, r.Type, r.Name, a) && !auth.Allows(out, r.Type, r.Name, a) && !slices.Contains(no, a) {
				no = append(no, a)
			}
		}
		if len(no) == 0 {
			continue
		}
		i := slices.IndexFunc(out, func(d auth.Access) bool { return d.Type == r.Type && d.Name == r.Name })
		if i < 0 {
			out = append(out, auth.Access{Type: r.Type, Name: r.Name})
			i = len(out) - 1
		}
		out[i].Actions = append(out[i].Actions, no...)
	}
	return out
}

// clip shortens untrusted input quoted in errors and logs.
func clip(s string) string {
	const n = 80
	if len(s) > n {
		s = s[:n] + "…"
	}
	return fmt.Sprintf("%q", s)
}
