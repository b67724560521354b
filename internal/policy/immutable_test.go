package policy

import (
	"errors"
	"strings"
	"testing"
)

func TestImmutable(t *testing.T) {
	im, err := CompileImmutable(ImmutableConfig{
		Global: &ImmutableSource{Enabled: true, Exclusions: []string{`^latest$`, `^dev-`}},
		Repositories: map[string]*ImmutableSource{
			"scratch":     {Enabled: false},
			"releases":    {Enabled: true}, // no exclusions: latest is immutable too
			"team/*":      {Enabled: true, Exclusions: []string{`^nightly$`}},
			"scratch/pin": {Enabled: true},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	sig := "sha256-" + strings.Repeat("ab", 32)
	tests := []struct {
		repo, tag string
		want      bool
	}{
		{"app", "v1", true},
		{"app", "latest", false},
		{"app", "dev-123", false},
		{"app", "my-dev-1", true}, // exclusions are not anchored unless written so
		{"app", sig + ".sig", false},
		{"app", sig + ".att", false},
		{"app", sig + ".sbom", false},
		{"app", sig + ".other", true},
		{"app", "sha256-" + strings.Repeat("a", 63) + ".sig", true},
		{"scratch", "v1", false},
		{"scratch/x", "v1", false},
		{"scratch/pin", "v1", true},
		{"scratch/pin/deeper", "latest", true},
		{"releases", "latest", true},
		{"releases/x", sig + ".sig", false},
		{"team/api", "latest", true},    // team/* overrides global: its exclusions only
		{"team/api", "nightly", false},  //
		{"team/api/x", "latest", false}, // team/* does not cover; global
	}
	for _, tt := range tests {
		if got := im.Protected(tt.repo, tt.tag); got != tt.want {
			t.Errorf("Protected(%q, %q) = %v, want %v", tt.repo, tt.tag, got, tt.want)
		}
	}

	none, err := CompileImmutable(ImmutableConfig{})
	if err != nil || none.Protected("app", "v1") {
		t.Errorf("no setting: %v %v", err, none.Protected("app", "v1"))
	}
	var nilIm *Immutable
	if nilIm.Protected("app", "v1") {
		t.Error("nil Immutable protects")
	}
	onlyRepo, _ := CompileImmutable(ImmutableConfig{Repositories: map[string]*ImmutableSource{"prod": {Enabled: true}}})
	if !onlyRepo.Protected("prod/x", "v1") || onlyRepo.Protected("dev", "v1") {
		t.Error("repository-only setting")
	}
}

func TestImmutableErrors(t *testing.T) {
	_, err := CompileImmutable(ImmutableConfig{
		Global: &ImmutableSource{Enabled: true, Exclusions: []string{`(`}, Line: 4},
		Repositories: map[string]*ImmutableSource{
			"app":    {Enabled: true, Exclusions: []string{`ok`, `[z-a]`}},
			"BAD":    {Enabled: true},
			"team/*": {},
			"*/api":  {},
		},
	})
	var ce *CompileError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v", err)
	}
	msg := err.Error()
	for _, s := range []string{
		"global.immutable_tags (line 4): exclusions[0]: invalid regular expression",
		`repository."app".immutable_tags: exclusions[1]: invalid regular expression`,
		`repository."BAD".immutable_tags: repository key "BAD"`,
		`ambiguous`,
	} {
		if !strings.Contains(msg, s) {
			t.Errorf("error lacks %q:\n%s", s, msg)
		}
	}
	if len(ce.Problems) != 4 {
		t.Errorf("%d problems:\n%s", len(ce.Problems), msg)
	}
}
