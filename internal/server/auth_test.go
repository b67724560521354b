package server

import (
	"testing"
	"time"

	"github.com/berth-registry/berth/internal/config"
	"github.com/berth-registry/berth/internal/policy"
)

func TestImmutableConfigExclusionsAlone(t *testing.T) {
	cfg, err := config.Parse([]byte(`
[global]
immutable_tags = true
[repository."rel"]
immutable_tags_exclusions = ["^nightly$"]
[repository."free"]
immutable_tags = false
`), "t.toml")
	if err != nil {
		t.Fatal(err)
	}
	imm, err := policy.CompileImmutable(ImmutableConfig(cfg))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		repo, tag string
		want      bool
	}{
		{"rel/app", "v1", true},        // global on, kept by the repository table
		{"rel/app", "nightly", false},  // its exclusion
		{"free/app", "v1", false},      // turned off
		{"other/app", "v1", true},      // global
		{"other/app", "nightly", true}, // rel's exclusion does not apply
	} {
		if got := imm.Protected(c.repo, c.tag); got != c.want {
			t.Errorf("Protected(%s, %s) = %v, want %v", c.repo, c.tag, got, c.want)
		}
	}
}

func TestClockSkewZeroMeansNone(t *testing.T) {
	if clockSkew(0) != time.Nanosecond || clockSkew(time.Minute) != time.Minute {
		t.Fatal("clock skew mapping")
	}
}
