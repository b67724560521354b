// Package configschema validates configuration files against the JSON
// Schema `berth config schema` prints, with an independent validator.
package configschema

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/berth-registry/berth/docs"
	"github.com/berth-registry/berth/internal/config"
	"github.com/berth-registry/berth/internal/seedtest"
)

func compile(t *testing.T) *jsonschema.Schema {
	t.Helper()
	data, err := config.Schema(docs.Configuration)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("berth.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("berth.schema.json")
	if err != nil {
		t.Fatalf("the schema does not compile: %v", err)
	}
	return s
}

// instance decodes a TOML document into the JSON data model.
func instance(t *testing.T, tomlDoc string) any {
	t.Helper()
	var m map[string]any
	if err := toml.Unmarshal([]byte(tomlDoc), &m); err != nil {
		t.Fatalf("not TOML: %v", err)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// Every configuration berth ships or promises to accept validates: the
// examples, the seeds' Angos example, the generated example, and every TOML
// block of docs/configuration.md that berth loads.
func TestAcceptedConfigsValidate(t *testing.T) {
	s := compile(t)
	files := map[string]string{
		"config example":     string(config.Example(docs.Configuration)),
		"seed AngosComplete": seedtest.AngosComplete,
	}
	paths, _ := filepath.Glob("../../examples/*.toml")
	paths = append(paths, "../../examples/kubernetes/config.toml")
	if len(paths) < 5 {
		t.Fatalf("only %d examples", len(paths))
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		files[p] = string(b)
	}
	block := regexp.MustCompile("(?s)```toml\n(.*?)```")
	n := 0
	for i, m := range block.FindAllStringSubmatch(string(docs.Configuration), -1) {
		if _, err := config.Parse([]byte(m[1]), "block"); err != nil {
			continue // a fragment that needs files or other tables: not a whole file
		}
		files["docs/configuration.md block "+string(rune('A'+i%26))+strings.Repeat("'", i/26)] = m[1]
		n++
	}
	if n < 10 {
		t.Fatalf("only %d loadable TOML blocks in docs/configuration.md", n)
	}
	for name, doc := range files {
		if err := s.Validate(instance(t, doc)); err != nil {
			t.Errorf("%s does not validate:\n%v", name, err)
		}
	}
}

// What the strict decoder refuses for its shape, the schema refuses too.
func TestRefusedConfigsFail(t *testing.T) {
	s := compile(t)
	for name, doc := range map[string]string{
		"unknown key":                   "[server]\ncolour = \"blue\"\n",
		"unknown table":                 "[servre]\nport = 5000\n",
		"unknown key in a named table":  "[auth.oidc.ci]\nissuer = \"https://i.example\"\naudience = [\"a\"]\n",
		"unknown key in a repository":   "[repository.\"team/*\"]\ntrusted_proxies = []\n",
		"unknown key in claim_mapping":  "[[auth.oidc.ci.claim_mapping.variables]]\nname = \"a\"\nexpr = \"b\"\n",
		"wrong type":                    "[server]\nport = \"5000\"\n",
		"bad duration":                  "[uploads]\nexpiry = \"1d\"\n",
		"bad size":                      "[limits]\nmax_blob_size = \"4mb\"\n",
		"negative size":                 "[limits]\nmax_blob_size = -1\n",
		"level outside the enum":        "[log]\nlevel = \"verbose\"\n",
		"algorithm outside the enum":    "[auth.oidc.ci]\nalgorithms = [\"HS256\"]\n",
		"string where a list is wanted": "[server]\ntrusted_proxies = \"10.0.0.1\"\n",
	} {
		if _, err := config.Parse([]byte(doc), "c.toml"); err == nil {
			t.Errorf("%s: berth accepts it", name)
		}
		if err := s.Validate(instance(t, doc)); err == nil {
			t.Errorf("%s: the schema accepts\n%s", name, doc)
		}
	}
}
