package policy

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
)

// ImmutableConfig is the immutable-tags setting of a registry.
type ImmutableConfig struct {
	// Global is the [global] setting, nil if absent.
	Global *ImmutableSource
	// Repositories maps a repository key as written (same keys and matching
	// as access policies) to its setting. nil values are ignored.
	Repositories map[string]*ImmutableSource
}

// ImmutableSource is one immutable-tags setting as written.
type ImmutableSource struct {
	// Key is the key path used in messages, such as
	// `repository."production".immutable_tags`. Empty: derived.
	Key string
	// Enabled makes existing tags immutable: a push to an existing tag with a
	// different manifest is refused.
	Enabled bool
	// Exclusions are Go regular expressions (RE2); a tag matching any of them
	// stays mutable. They are not anchored: write ^latest$, not latest.
	Exclusions []string
	// Line is the configuration line, 0 if unknown; only for messages.
	Line int
}

// cosignLegacyTag matches the tags cosign uses to attach signatures,
// attestations and SBOMs to sha256-<digest>: they are rewritten on every
// signature, so they are always mutable.
var cosignLegacyTag = regexp.MustCompile(`^sha256-[0-9a-f]{64}\.(sig|att|sbom)$`)

// Immutable decides which tags are immutable. It is immutable and safe for
// concurrent use.
type Immutable struct {
	global *immutableSetting
	repos  []*immutableSetting // most specific first
}

type immutableSetting struct {
	enabled    bool
	exclusions []*regexp.Regexp
	pattern    *pattern
}

// CompileImmutable compiles c, reporting every problem at once as a
// *CompileError.
func CompileImmutable(c ImmutableConfig) (*Immutable, error) {
	im := &Immutable{}
	var problems []Problem
	compile := func(s *ImmutableSource, key string) *immutableSetting {
		if s.Key != "" {
			key = s.Key
		}
		set := &immutableSetting{enabled: s.Enabled}
		for i, x := range s.Exclusions {
			re, err := regexp.Compile(x)
			if err != nil {
				problems = append(problems, Problem{Key: key, Rule: -1, SourceLine: s.Line,
					Message: fmt.Sprintf("exclusions[%d]: invalid regular expression: %v", i, err)})
				continue
			}
			set.exclusions = append(set.exclusions, re)
		}
		return set
	}
	if c.Global != nil {
		im.global = compile(c.Global, "global.immutable_tags")
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
		key := fmt.Sprintf("repository.%q.immutable_tags", k)
		if s.Key != "" {
			key = s.Key
		}
		set := compile(s, key)
		pat, err := parsePattern(k)
		if err != nil {
			problems = append(problems, Problem{Key: key, Rule: -1, SourceLine: s.Line, Message: err.Error()})
			continue
		}
		set.pattern = pat
		for _, q := range im.repos {
			if pat.sameSpecificity(q.pattern) {
				if name := overlap(pat.segs, q.pattern.segs); name != "" {
					problems = append(problems, Problem{Key: key, Rule: -1, SourceLine: s.Line,
						Message: fmt.Sprintf("repository key %q is ambiguous with %q: both cover %q and neither is more specific", k, q.pattern.key, name)})
				}
			}
		}
		im.repos = append(im.repos, set)
	}
	if len(problems) > 0 {
		return nil, &CompileError{Problems: problems}
	}
	slices.SortStableFunc(im.repos, func(a, b *immutableSetting) int {
		switch {
		case a.pattern.moreSpecific(b.pattern):
			return -1
		case b.pattern.moreSpecific(a.pattern):
			return 1
		}
		return cmp.Compare(a.pattern.key, b.pattern.key)
	})
	return im, nil
}

// Protected reports whether tag in repo is immutable: the most specific
// repository setting covering repo decides, else the global one; cosign's
// legacy signature, attestation and SBOM tags never are.
func (im *Immutable) Protected(repo, tag string) bool {
	if im == nil {
		return false
	}
	set := im.global
	for _, r := range im.repos {
		if r.pattern.match(repo) {
			set = r
			break
		}
	}
	if set == nil || !set.enabled || cosignLegacyTag.MatchString(tag) {
		return false
	}
	for _, re := range set.exclusions {
		if re.MatchString(tag) {
			return false
		}
	}
	return true
}
