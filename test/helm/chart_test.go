package helm

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

// TestRefusals: values the chart must refuse, each with a message that says
// what to do; several problems are reported at once.
func TestRefusals(t *testing.T) {
	helmBin(t)
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"replicas on a PVC", []string{"--set", "replicaCount=3"},
			[]string{"replicaCount is 3: several replicas need s3.enabled=true and redis.enabled=true"}},
		{"replicas on S3 without Redis", []string{"--set", "replicaCount=2", "--set", "s3.enabled=true", "--set", "s3.bucket=b"},
			[]string{"replicaCount is 2: several replicas need s3.enabled=true and redis.enabled=true"}},
		{"replicas on Redis without S3", []string{"--set", "replicaCount=2", "--set", "redis.enabled=true", "--set", "redis.url=redis://r:6379/0"},
			[]string{"replicaCount is 2"}},
		{"all at once", []string{"--set", "replicaCount=2", "--set", "s3.enabled=true", "--set", "redis.enabled=true",
			"--set", "config.blob_store.fs.root_dir=/x", "--set", "config.server.port=80"},
			[]string{"s3.enabled=true needs s3.bucket", "redis.enabled=true needs redis.url", "config.blob_store is set by the chart", "config.server.port is set by the chart"}},
		{"redis password in the URL", []string{"--set", "s3.enabled=true", "--set", "s3.bucket=b", "--set", "redis.enabled=true",
			"--set", "redis.url=redis://:hunter2@r:6379/0"},
			[]string{"redis.url must not hold a password", "redis.existingSecret.name"}},
		{"tls without a secret", []string{"--set", "tls.enabled=true"}, []string{"tls.enabled=true needs tls.existingSecret"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := helmRun(t, ".", append([]string{"template", "berth", chartDir}, tt.args...)...)
			if err == nil {
				t.Fatalf("helm template succeeded:\n%s", out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("the error does not say %q:\n%s", w, out)
				}
			}
			if strings.Contains(out, "hunter2") {
				t.Errorf("the error shows the password:\n%s", out)
			}
		})
	}
	// The same replicas with S3 and Redis are accepted.
	template(t, "--set", "replicaCount=3", "--set", "s3.enabled=true", "--set", "s3.bucket=b",
		"--set", "redis.enabled=true", "--set", "redis.url=redis://r:6379/0")
}

// TestConfigChecksum: a change of berth.toml changes the pods' annotation
// (so the Deployment rolls them); a change elsewhere does not.
func TestConfigChecksum(t *testing.T) {
	sum := func(args ...string) string {
		return template(t, args...).Deployment.Spec.Template.Annotations["checksum/config"]
	}
	base := sum()
	if got := sum("--set", "config.log.level=debug"); got == base {
		t.Error("config.log.level changed berth.toml but not checksum/config")
	}
	if got := sum("--set", "config.extraToml=[manifests]\nallow_sparse = true\n"); got == base {
		t.Error("config.extraToml changed berth.toml but not checksum/config")
	}
	if got := sum("--set", "resources.limits.memory=2Gi"); got != base {
		t.Error("checksum/config changed without a configuration change")
	}
}

// TestTOMLRendering: structured values become the TOML berth reads, value
// for value: strings with quotes, backslashes, newlines, <, > and &, keys that
// must be quoted, integers, booleans, arrays of strings and of tables; null
// leaves a key out. Decoded by go-toml (berth's own parser) and compared.
func TestTOMLRendering(t *testing.T) {
	values := `
config:
  server:
    shutdown_timeout: 45s
    trusted_proxies: ["10.0.0.0/8", "fd00::/8"]
  log:
    level: null
  limits:
    max_manifest_size: 4194304
    max_blob_size: "50GiB"
  manifests:
    allow_sparse: true
  auth:
    oidc:
      ci:
        issuer: https://issuer.example.com
        audiences: ["registry"]
        token_max_uses: 1000
        claim_mapping:
          variables:
            - name: owner
              expression: "claims['repo'].split('/')[0]"
          validations:
            - expression: "claims.x == \"a\\\\b\" && 1 < 2 || 3 > 4"
              message: "quotes \" and 'both', tabs\tand é"
  repository:
    "team/*":
      access_policy:
        default: allow
        rules:
          - |-
            request.action == 'delete' &&
            identity.id != "anonymous"
    "**/cache":
      immutable_tags: true
      immutable_tags_exclusions: []
`
	f := filepath.Join(t.TempDir(), "v.yaml")
	if err := os.WriteFile(f, []byte(values), 0o600); err != nil {
		t.Fatal(err)
	}
	r := template(t, "-f", f)
	configCheck(t, berthBin(t), r)
	var got map[string]any
	if err := toml.Unmarshal([]byte(r.ConfigMap.Data["berth.toml"]), &got); err != nil {
		t.Fatalf("rendered TOML: %v\n%s", err, r.ConfigMap.Data["berth.toml"])
	}
	want := map[string]any{
		"server": map[string]any{"bind_address": "0.0.0.0", "port": int64(5000), "shutdown_timeout": "45s",
			"trusted_proxies": []any{"10.0.0.0/8", "fd00::/8"}},
		"log":        map[string]any{"format": "json"},
		"limits":     map[string]any{"max_manifest_size": int64(4194304), "max_blob_size": "50GiB"},
		"manifests":  map[string]any{"allow_sparse": true},
		"blob_store": map[string]any{"fs": map[string]any{"root_dir": "/var/lib/berth"}},
		"auth": map[string]any{"oidc": map[string]any{"ci": map[string]any{
			"issuer": "https://issuer.example.com", "audiences": []any{"registry"}, "token_max_uses": int64(1000),
			"claim_mapping": map[string]any{
				"variables": []any{map[string]any{"name": "owner", "expression": "claims['repo'].split('/')[0]"}},
				"validations": []any{map[string]any{
					"expression": `claims.x == "a\\b" && 1 < 2 || 3 > 4`,
					"message":    "quotes \" and 'both', tabs\tand é",
				}},
			},
		}}},
		"repository": map[string]any{
			"team/*": map[string]any{"access_policy": map[string]any{"default": "allow",
				"rules": []any{"request.action == 'delete' &&\nidentity.id != \"anonymous\""}}},
			"**/cache": map[string]any{"immutable_tags": true, "immutable_tags_exclusions": []any{}},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("rendered TOML decodes to\n%#v\nwant\n%#v\n%s", got, want, r.ConfigMap.Data["berth.toml"])
	}
}

// TestOCIPushPull: the packaged chart is pushed to a real berth as an OCI
// chart, pulled back byte for byte, and installs from there (helm template
// of the oci:// reference renders the same objects as the directory).
func TestOCIPushPull(t *testing.T) {
	helmBin(t)
	dir := t.TempDir()
	mustHelm(t, "package", chartDir, "-d", dir)
	tgzs, _ := filepath.Glob(filepath.Join(dir, "berth-*.tgz"))
	if len(tgzs) != 1 {
		t.Fatalf("helm package made %v", tgzs)
	}
	version := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(tgzs[0]), "berth-"), ".tgz")
	host := startBerth(t)
	mustHelm(t, "push", tgzs[0], "oci://"+host+"/charts", "--plain-http")
	checkChartManifest(t, host, version, tgzs[0])
	pulled := filepath.Join(dir, "pulled")
	if err := os.Mkdir(pulled, 0o755); err != nil {
		t.Fatal(err)
	}
	mustHelm(t, "pull", "oci://"+host+"/charts/berth", "--version", version, "--plain-http", "-d", pulled)
	a, err := os.ReadFile(tgzs[0])
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(pulled, filepath.Base(tgzs[0])))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatalf("pulled chart differs: %d bytes, pushed %d", len(b), len(a))
	}
	show := mustHelm(t, "show", "chart", "oci://"+host+"/charts/berth", "--version", version, "--plain-http")
	if !strings.Contains(show, "name: berth") || !strings.Contains(show, "version: "+version) {
		t.Fatalf("helm show chart:\n%s", show)
	}
	ha := filepath.Join(chartDir, "examples", "ha-s3-redis.yaml")
	fromOCI := mustHelm(t, "template", "berth", "oci://"+host+"/charts/berth", "--version", version, "--plain-http", "--namespace", "registry", "-f", ha)
	fromDir := mustHelm(t, "template", "berth", chartDir, "--namespace", "registry", "-f", ha)
	if fromOCI != fromDir {
		t.Error("the chart from the registry renders differently from the directory")
	}
	decode(t, fromOCI)
}

// checkChartManifest: berth holds the chart as helm's OCI artifact: a
// manifest with helm's config media type and one layer, the .tgz itself.
func checkChartManifest(t *testing.T, host, version, tgz string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+host+"/v2/charts/berth/manifests/"+version, nil)
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m struct {
		Config struct{ MediaType string } `json:"config"`
		Layers []struct {
			MediaType string `json:"mediaType"`
			Digest    string `json:"digest"`
		} `json:"layers"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET manifest: %d, %v", resp.StatusCode, err)
	}
	b, err := os.ReadFile(tgz)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	if m.Config.MediaType != "application/vnd.cncf.helm.config.v1+json" || len(m.Layers) != 1 ||
		m.Layers[0].MediaType != "application/vnd.cncf.helm.chart.content.v1.tar+gzip" ||
		m.Layers[0].Digest != "sha256:"+hex.EncodeToString(sum[:]) {
		t.Errorf("chart manifest = %+v, want helm's config and the .tgz (sha256:%x) as its layer", m, sum)
	}
}

// TestTLS: tls.enabled mounts the Secret where [server.tls] points, the
// probes and the ServiceMonitor speak HTTPS, and berth config check loads
// the certificate and key from there.
func TestTLS(t *testing.T) {
	r := template(t, "--set", "tls.enabled=true", "--set", "tls.existingSecret=berth-tls", "--set", "metrics.serviceMonitor.enabled=true")
	checkPod(t, r)
	configCheck(t, berthBin(t), r)
	c := r.Deployment.Spec.Template.Spec.Containers[0]
	for _, p := range []string{"/etc/berth/tls/tls.crt", "/etc/berth/tls/tls.key"} {
		if !strings.Contains(r.ConfigMap.Data["berth.toml"], `"`+p+`"`) {
			t.Errorf("[server.tls] does not name %s", p)
		}
		m := mountFor(t, c, p)
		if v := volume(t, r.Deployment, m.Name); v.Secret == nil || v.Secret.SecretName != "berth-tls" || !m.ReadOnly {
			t.Errorf("%s: mount %+v, volume %+v", p, m, v)
		}
	}
	if c.LivenessProbe.HTTPGet.Scheme != "HTTPS" || c.ReadinessProbe.HTTPGet.Scheme != "HTTPS" {
		t.Errorf("probes: %s, %s", c.LivenessProbe.HTTPGet.Scheme, c.ReadinessProbe.HTTPGet.Scheme)
	}
	if r.ServiceMonitor == nil || r.ServiceMonitor.Spec.Endpoints[0].Scheme != "https" {
		t.Errorf("ServiceMonitor = %+v", r.ServiceMonitor)
	}
}
