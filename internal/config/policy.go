package config

import "fmt"

// AccessPolicy is an access_policy table ([global.access_policy] or
// [repository."<key>".access_policy]).
type AccessPolicy struct {
	// Key is the table's key path, for messages.
	Key string
	// DefaultAllow is the decision when no rule is true (default_allow, or
	// default = "allow" | "deny"); false unless set.
	DefaultAllow bool
	// Rules are CEL expressions, evaluated in order.
	Rules []string
}

// Global is the [global] table.
type Global struct {
	AccessPolicy            *AccessPolicy
	ImmutableTags           bool
	ImmutableTagsExclusions []string
}

// Repository is one [repository."<key>"] table.
type Repository struct {
	// Key is the repository key as written: a namespace ("dev" covers dev/...)
	// or a glob ("team/*", "app/**").
	Key          string
	AccessPolicy *AccessPolicy
	// ImmutableTags is nil when the table does not set it (the global setting applies).
	ImmutableTags           *bool
	ImmutableTagsExclusions []string
}

// HasPolicies reports whether any access policy is configured.
func (c *Config) HasPolicies() bool {
	if c.Global.AccessPolicy != nil {
		return true
	}
	for _, r := range c.Repositories {
		if r.AccessPolicy != nil {
			return true
		}
	}
	return false
}

type rawPolicy struct {
	DefaultAllow any `toml:"default_allow"`
	Default      any `toml:"default"`
	Rules        any `toml:"rules"`
}

type rawGlobal struct {
	AccessPolicy            *rawPolicy `toml:"access_policy"`
	ImmutableTags           any        `toml:"immutable_tags"`
	ImmutableTagsExclusions any        `toml:"immutable_tags_exclusions"`
}

var policyKnown = []string{
	"global", "global.access_policy", "global.access_policy.default_allow", "global.access_policy.default",
	"global.access_policy.rules", "global.immutable_tags", "global.immutable_tags_exclusions", "repository",
}

func (d *decoder) decodePolicy(key string, r *rawPolicy) *AccessPolicy {
	if r == nil {
		return nil
	}
	p := &AccessPolicy{Key: key}
	var def string
	d.boolean(key+".default_allow", r.DefaultAllow, &p.DefaultAllow)
	d.str(key+".default", r.Default, &def)
	switch {
	case r.Default == nil:
	case r.DefaultAllow != nil:
		d.bad(key+".default", "set default_allow or default, not both")
	case def == "allow":
		p.DefaultAllow = true
	case def == "deny":
		p.DefaultAllow = false
	default:
		if _, isString := r.Default.(string); isString {
			d.bad(key+".default", "%q is not allow or deny", def)
		}
	}
	d.strList(key+".rules", r.Rules, &p.Rules)
	for i, rule := range p.Rules {
		if rule == "" {
			d.bad(fmt.Sprintf("%s.rules[%d]", key, i), "must not be empty")
		}
	}
	return p
}

func (d *decoder) decodePolicies(g *rawGlobal, repos map[string]*rawGlobal, c *Config) {
	if g != nil {
		c.Global.AccessPolicy = d.decodePolicy("global.access_policy", g.AccessPolicy)
		d.boolean("global.immutable_tags", g.ImmutableTags, &c.Global.ImmutableTags)
		d.strList("global.immutable_tags_exclusions", g.ImmutableTagsExclusions, &c.Global.ImmutableTagsExclusions)
	}
	for _, key := range sortedKeys(repos) {
		r := repos[key]
		if r == nil {
			continue
		}
		base := formatKey([]string{"repository", key})
		repo := Repository{Key: key, AccessPolicy: d.decodePolicy(base+".access_policy", r.AccessPolicy)}
		if r.ImmutableTags != nil {
			var v bool
			d.boolean(base+".immutable_tags", r.ImmutableTags, &v)
			repo.ImmutableTags = &v
		}
		d.strList(base+".immutable_tags_exclusions", r.ImmutableTagsExclusions, &repo.ImmutableTagsExclusions)
		c.Repositories = append(c.Repositories, repo)
	}
}
