package oci

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

// The distribution-spec's grammars, which the hand-written matchers must
// agree with exactly.
var (
	componentRE = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)
	tagRE       = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
)

func TestGrammarsMatchTheSpec(t *testing.T) {
	fixed := []string{"", "a", "A", "_", ".", "-", "a.b", "a..b", "a_b", "a__b", "a___b", "a-b", "a---b", "a-", "-a",
		"a.", ".a", "_a", "a_", "a._b", "a_.b", "a-.b", "a.-b", "a-_b", "ab/c", "a b", "é", "a\x00", "0", "9z", "v1.2.3",
		"latest", "_x", "x" + strings.Repeat("y", 127), "x" + strings.Repeat("y", 128), "Z-", "a__", "__", "a.b.c-d__e"}
	check := func(s string) {
		if got, want := ValidRepoComponent(s), componentRE.MatchString(s); got != want {
			t.Errorf("ValidRepoComponent(%q) = %v, the spec says %v", s, got, want)
		}
		if got, want := ValidTag(s), tagRE.MatchString(s); got != want {
			t.Errorf("ValidTag(%q) = %v, the spec says %v", s, got, want)
		}
	}
	for _, s := range fixed {
		check(s)
	}
	const alphabet = "ab0Z._-/ \n"
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200_000 {
		b := make([]byte, rng.IntN(8))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		check(string(b))
	}
	for n := 125; n <= 131; n++ { // around the tag's length limit
		check(strings.Repeat("a", n))
		check("-" + strings.Repeat("a", n))
	}
}

func FuzzGrammars(f *testing.F) {
	for _, s := range []string{"a", "a__b", "a-.b", "v1.0", "_"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ValidRepoComponent(s) != componentRE.MatchString(s) || ValidTag(s) != tagRE.MatchString(s) {
			t.Fatalf("%q: component %v/%v tag %v/%v", s, ValidRepoComponent(s), componentRE.MatchString(s), ValidTag(s), tagRE.MatchString(s))
		}
	})
}
