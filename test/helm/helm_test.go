// Package helm tests the Helm chart in deploy/helm/berth with the real helm
// binary: helm lint, helm template of every values example with every
// rendered object strictly decoded into the Kubernetes Go types, the rendered
// berth.toml checked by `berth config check`, the chart's refusals, and the
// chart pushed to and pulled from a real berth as an OCI artifact.
//
// Without helm (on PATH or in the go install directory) the tests skip,
// unless BERTH_REQUIRE_CLIENTS=1.
package helm

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

const chartDir = "../../deploy/helm/berth"

// helmBin finds helm, or skips (fails with BERTH_REQUIRE_CLIENTS=1).
func helmBin(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("helm"); err == nil {
		return p
	}
	dirs := []string{}
	if gb := os.Getenv("GOBIN"); gb != "" {
		dirs = append(dirs, gb)
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		for _, d := range filepath.SplitList(strings.TrimSpace(string(out))) {
			dirs = append(dirs, filepath.Join(d, "bin"))
		}
	}
	for _, d := range dirs {
		p := filepath.Join(d, "helm")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	msg := "helm is not installed (not on PATH nor in the go install directory); run scripts/install-test-clients.sh"
	if os.Getenv("BERTH_REQUIRE_CLIENTS") == "1" {
		t.Fatalf("%s (BERTH_REQUIRE_CLIENTS=1)", msg)
	}
	t.Skip(msg)
	return ""
}

// helmRun runs helm with private config, cache and data directories.
func helmRun(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command(helmBin(t), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"HOME="+home,
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
		"HELM_REGISTRY_CONFIG="+filepath.Join(home, "registry.json"),
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String() + stderr.String(), fmt.Errorf("helm %s: %w\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

func mustHelm(t *testing.T, args ...string) string {
	t.Helper()
	out, err := helmRun(t, ".", args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// examples are the chart's values examples.
func examples(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(chartDir, "examples", "*.yaml"))
	if err != nil || len(files) < 4 {
		t.Fatalf("values examples: %v, %v", files, err)
	}
	return files
}

func TestLint(t *testing.T) {
	mustHelm(t, "lint", "--strict", chartDir)
	for _, ex := range examples(t) {
		mustHelm(t, "lint", "--strict", chartDir, "-f", ex)
	}
}

// serviceMonitor is the part of monitoring.coreos.com/v1 ServiceMonitor the
// chart renders; strict decoding refuses any other field.
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector  metav1.LabelSelector `json:"selector"`
		Endpoints []struct {
			Port          string `json:"port"`
			Path          string `json:"path"`
			Scheme        string `json:"scheme,omitempty"`
			Interval      string `json:"interval,omitempty"`
			ScrapeTimeout string `json:"scrapeTimeout,omitempty"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// rendered is the output of helm template, decoded.
type rendered struct {
	Deployment     *appsv1.Deployment
	ConfigMap      *corev1.ConfigMap
	Service        *corev1.Service
	ServiceAccount *corev1.ServiceAccount
	PVC            *corev1.PersistentVolumeClaim
	PDB            *policyv1.PodDisruptionBudget
	Ingress        *networkingv1.Ingress
	NetworkPolicy  *networkingv1.NetworkPolicy
	ServiceMonitor *serviceMonitor
	Kinds          []string
}

// decode splits a helm template output and strictly decodes each object into
// its Go type: an unknown or misspelt field, a wrong type, a duplicate key
// fail.
func decode(t *testing.T, out string) *rendered {
	t.Helper()
	r := &rendered{}
	for _, doc := range strings.Split(out, "\n---") {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			t.Fatalf("not YAML: %v\n%s", err, doc)
		}
		var obj any
		switch tm.APIVersion + " " + tm.Kind {
		case "apps/v1 Deployment":
			r.Deployment = &appsv1.Deployment{}
			obj = r.Deployment
		case "v1 ConfigMap":
			r.ConfigMap = &corev1.ConfigMap{}
			obj = r.ConfigMap
		case "v1 Service":
			r.Service = &corev1.Service{}
			obj = r.Service
		case "v1 ServiceAccount":
			r.ServiceAccount = &corev1.ServiceAccount{}
			obj = r.ServiceAccount
		case "v1 PersistentVolumeClaim":
			r.PVC = &corev1.PersistentVolumeClaim{}
			obj = r.PVC
		case "policy/v1 PodDisruptionBudget":
			r.PDB = &policyv1.PodDisruptionBudget{}
			obj = r.PDB
		case "networking.k8s.io/v1 Ingress":
			r.Ingress = &networkingv1.Ingress{}
			obj = r.Ingress
		case "networking.k8s.io/v1 NetworkPolicy":
			r.NetworkPolicy = &networkingv1.NetworkPolicy{}
			obj = r.NetworkPolicy
		case "monitoring.coreos.com/v1 ServiceMonitor":
			r.ServiceMonitor = &serviceMonitor{}
			obj = r.ServiceMonitor
		default:
			t.Fatalf("unexpected object %s %s:\n%s", tm.APIVersion, tm.Kind, doc)
		}
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			t.Fatalf("%s: strict decode: %v\n%s", tm.Kind, err, doc)
		}
		r.Kinds = append(r.Kinds, tm.Kind)
	}
	sort.Strings(r.Kinds)
	for i := 1; i < len(r.Kinds); i++ {
		if r.Kinds[i] == r.Kinds[i-1] {
			t.Fatalf("two objects of kind %s", r.Kinds[i])
		}
	}
	if r.Deployment == nil || r.ConfigMap == nil || r.Service == nil {
		t.Fatalf("missing Deployment, ConfigMap or Service: %v", r.Kinds)
	}
	return r
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

func template(t *testing.T, args ...string) *rendered {
	t.Helper()
	return decode(t, mustHelm(t, append([]string{"template", "berth", chartDir, "--namespace", "registry"}, args...)...))
}

// TestTemplateExamples renders every values example, decodes every object
// strictly and checks what the chart promises: the pod's hardening and
// probes, where the configuration and the secrets come from, and that the
// rendered berth.toml passes berth config check.
func TestTemplateExamples(t *testing.T) {
	bin := berthBin(t)
	for _, ex := range append([]string{""}, examples(t)...) {
		name := strings.TrimSuffix(filepath.Base(ex), ".yaml")
		if ex == "" {
			name = "defaults"
		}
		t.Run(name, func(t *testing.T) {
			var args []string
			if ex != "" {
				args = []string{"-f", ex}
			}
			r := template(t, args...)
			checkPod(t, r)
			checkSecretsWiring(t, r)
			configCheck(t, bin, r)

			d := r.Deployment
			replicas := *d.Spec.Replicas
			usesS3 := strings.Contains(r.ConfigMap.Data["berth.toml"], "[blob_store.s3]")
			if replicas > 1 {
				if !usesS3 || !strings.Contains(r.ConfigMap.Data["berth.toml"], "[cache.redis]") {
					t.Errorf("%d replicas without S3 and Redis", replicas)
				}
				if r.PDB == nil || r.PDB.Spec.MaxUnavailable == nil || r.PDB.Spec.MaxUnavailable.IntValue() != 1 {
					t.Errorf("%d replicas: PodDisruptionBudget = %+v", replicas, r.PDB)
				}
				if r.PVC != nil {
					t.Error("replicas on S3 + Redis with a PersistentVolumeClaim")
				}
				if d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || d.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue() != 0 {
					t.Errorf("strategy = %+v", d.Spec.Strategy)
				}
				if len(d.Spec.Template.Spec.TopologySpreadConstraints) == 0 {
					t.Error("replicas are not spread over nodes")
				}
			} else {
				if r.PDB != nil {
					t.Error("a PodDisruptionBudget for a single replica blocks node drains")
				}
				if !usesS3 {
					if r.PVC == nil || r.PVC.Spec.Resources.Requests.Storage().IsZero() {
						t.Fatalf("single node on the filesystem without a PersistentVolumeClaim: %v", r.Kinds)
					}
					if v := volume(t, d, "data"); v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != r.PVC.Name {
						t.Errorf("data volume = %+v, want the claim %s", v, r.PVC.Name)
					}
					if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
						t.Errorf("a ReadWriteOnce volume needs the Recreate strategy, got %s", d.Spec.Strategy.Type)
					}
				}
			}
			if r.ServiceAccount == nil || d.Spec.Template.Spec.ServiceAccountName != r.ServiceAccount.Name {
				t.Errorf("service account not the chart's: %v", d.Spec.Template.Spec.ServiceAccountName)
			}
			if sm := r.ServiceMonitor; sm != nil {
				if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Path != "/metrics" || sm.Spec.Endpoints[0].Port != r.Service.Spec.Ports[0].Name {
					t.Errorf("ServiceMonitor endpoints = %+v", sm.Spec.Endpoints)
				}
				if !selects(sm.Spec.Selector.MatchLabels, r.Service.Labels) {
					t.Errorf("ServiceMonitor selector %v does not select the Service %v", sm.Spec.Selector.MatchLabels, r.Service.Labels)
				}
			}
			if np := r.NetworkPolicy; np != nil {
				if !selects(np.Spec.PodSelector.MatchLabels, d.Spec.Template.Labels) {
					t.Errorf("NetworkPolicy selects %v, not the pods %v", np.Spec.PodSelector.MatchLabels, d.Spec.Template.Labels)
				}
				if len(np.Spec.Ingress) != 1 || np.Spec.Ingress[0].Ports[0].Port.String() != "http" {
					t.Errorf("NetworkPolicy ingress = %+v", np.Spec.Ingress)
				}
			}
			if ing := r.Ingress; ing != nil {
				b := ing.Spec.Rules[0].HTTP.Paths[0].Backend.Service
				if b.Name != r.Service.Name || b.Port.Name != "http" {
					t.Errorf("Ingress backend = %+v", b)
				}
			}
			if !selects(r.Service.Spec.Selector, d.Spec.Template.Labels) || !selects(d.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
				t.Error("the Service or the Deployment does not select the pods")
			}
		})
	}
}

func selects(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func volume(t *testing.T, d *appsv1.Deployment, name string) corev1.Volume {
	t.Helper()
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("no volume %q", name)
	return corev1.Volume{}
}

// checkPod: the hardening, the probes and the configuration's mount.
func checkPod(t *testing.T, r *rendered) {
	t.Helper()
	spec := r.Deployment.Spec.Template.Spec
	if len(spec.Containers) != 1 {
		t.Fatalf("containers = %d", len(spec.Containers))
	}
	c := spec.Containers[0]
	if !strings.HasPrefix(c.Image, "ghcr.io/berth-registry/berth:") || strings.HasSuffix(c.Image, ":") {
		t.Errorf("image = %q", c.Image)
	}
	psc := spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 ||
		psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext = %+v", psc)
	}
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.Privileged == nil || *sc.Privileged ||
		sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" || len(sc.Capabilities.Add) != 0 ||
		sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("container securityContext = %+v", sc)
	}
	if p := c.LivenessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" || p.HTTPGet.Port.String() != "http" {
		t.Errorf("livenessProbe = %+v", p)
	}
	if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/readyz" || p.HTTPGet.Port.String() != "http" {
		t.Errorf("readinessProbe = %+v", p)
	}
	if len(c.Ports) != 1 || c.Ports[0].Name != "http" || c.Ports[0].ContainerPort != 5000 {
		t.Errorf("ports = %+v", c.Ports)
	}
	if c.Resources.Limits.Memory().IsZero() || c.Resources.Requests.Memory().IsZero() {
		t.Errorf("resources = %+v", c.Resources)
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("the service-account token is mounted: berth does not call the Kubernetes API")
	}
	// The configuration: -c names the file of the mounted ConfigMap.
	cfgPath := ""
	for i, a := range c.Args {
		if a == "-c" && i+1 < len(c.Args) {
			cfgPath = c.Args[i+1]
		}
	}
	if c.Args[0] != "serve" || cfgPath == "" {
		t.Fatalf("args = %v", c.Args)
	}
	m := mountFor(t, c, cfgPath)
	if v := volume(t, r.Deployment, m.Name); v.ConfigMap == nil || v.ConfigMap.Name != r.ConfigMap.Name ||
		filepath.Join(m.MountPath, "berth.toml") != cfgPath {
		t.Errorf("%s is not the ConfigMap's berth.toml: mount %+v, volume %+v", cfgPath, m, v)
	}
	// Writable places on a read-only root: the working directory and /tmp.
	for _, dir := range []string{c.WorkingDir, "/tmp"} {
		if m := mountFor(t, c, filepath.Join(dir, "x")); m.ReadOnly {
			t.Errorf("%s is read-only", dir)
		}
	}
	if r.Deployment.Spec.Template.Annotations["checksum/config"] == "" {
		t.Error("no checksum/config annotation")
	}
}

// mountFor is the volume mount path lies in (the longest mount path).
func mountFor(t *testing.T, c corev1.Container, path string) corev1.VolumeMount {
	t.Helper()
	var best corev1.VolumeMount
	for _, m := range c.VolumeMounts {
		if strings.HasPrefix(path, strings.TrimSuffix(m.MountPath, "/")+"/") && len(m.MountPath) > len(best.MountPath) {
			best = m
		}
	}
	if best.Name == "" {
		t.Fatalf("%s is on no volume (mounts %+v)", path, c.VolumeMounts)
	}
	return best
}

// checkSecretsWiring: the ConfigMap holds no credential; S3 keys reach the
// AWS chain as environment variables from a Secret; the Redis password
// file named by the config is the Secret's key, mounted.
func checkSecretsWiring(t *testing.T, r *rendered) {
	t.Helper()
	toml := r.ConfigMap.Data["berth.toml"]
	for _, k := range []string{"secret_key", "access_key_id"} {
		if strings.Contains(toml, k) {
			t.Errorf("the ConfigMap holds %s", k)
		}
	}
	if strings.Contains(toml, "[cache.redis]") {
		u, err := url.Parse(tomlValue(t, toml, "url"))
		if err != nil {
			t.Fatalf("redis url: %v", err)
		}
		if _, set := u.User.Password(); set {
			t.Errorf("redis url holds a password: %s", u.Redacted())
		}
	}
	c := r.Deployment.Spec.Template.Spec.Containers[0]
	for _, e := range c.Env {
		if strings.HasPrefix(e.Name, "AWS_") && (e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil) {
			t.Errorf("env %s is not from a Secret: %+v", e.Name, e)
		}
	}
	pf := tomlValue(t, toml, "password_file")
	if pf == "" {
		return
	}
	m := mountFor(t, c, pf)
	v := volume(t, r.Deployment, m.Name)
	if v.Secret == nil || !m.ReadOnly {
		t.Fatalf("password_file %s is not on a read-only Secret volume: %+v %+v", pf, m, v)
	}
	rel := strings.TrimPrefix(pf, strings.TrimSuffix(m.MountPath, "/")+"/")
	found := false
	for _, it := range v.Secret.Items {
		found = found || it.Path == rel
	}
	if !found {
		t.Errorf("password_file %s: the Secret %s projects no %s (items %+v)", pf, v.Secret.SecretName, rel, v.Secret.Items)
	}
}

// tomlValue is the string value of the first `key = "…"` line.
func tomlValue(t *testing.T, toml, key string) string {
	t.Helper()
	for _, l := range strings.Split(toml, "\n") {
		if k, v, ok := strings.Cut(l, " = "); ok && k == key {
			s, err := strconv.Unquote(v)
			if err != nil {
				t.Fatalf("%s: %v", l, err)
			}
			return s
		}
	}
	return ""
}

// podFiles are files the pod has (mounted by the chart) that berth config
// check reads; the test provides them.
func podFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	ca := filepath.Join(dir, "kubernetes-ca.crt")
	if err := os.WriteFile(ca, selfSignedCA(t), 0o644); err != nil {
		t.Fatal(err)
	}
	crt, key := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	certPEM, keyPEM := serverCert(t)
	if err := os.WriteFile(crt, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return map[string]string{"/etc/berth/kubernetes/ca.crt": ca, "/etc/berth/tls/tls.crt": crt, "/etc/berth/tls/tls.key": key}
}

// serverCert is a self-signed server certificate and its key, PEM.
func serverCert(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "berth.registry.svc"}, DNSNames: []string{"berth.registry.svc"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

// configCheck runs berth config check on the rendered berth.toml.
func configCheck(t *testing.T, bin string, r *rendered) {
	t.Helper()
	toml, ok := r.ConfigMap.Data["berth.toml"]
	if !ok || len(r.ConfigMap.Data) != 1 {
		t.Fatalf("ConfigMap data keys: %v", r.ConfigMap.Data)
	}
	dir := t.TempDir()
	for podPath, local := range podFiles(t, dir) {
		toml = strings.ReplaceAll(toml, strconv.Quote(podPath), strconv.Quote(local))
	}
	f := filepath.Join(dir, "berth.toml")
	if err := os.WriteFile(f, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "config", "check", "-c", f).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "config OK") {
		t.Fatalf("berth config check: %v\n%s\nberth.toml:\n%s", err, out, toml)
	}
}

func selfSignedCA(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-cluster-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// ---- the berth binary ----

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// berthBin builds ./cmd/berth of the product module once per test process.
func berthBin(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if bin := os.Getenv("BERTH_E2E_BIN"); bin != "" {
			builtBin = bin
			return
		}
		out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/berth-registry/berth").Output()
		if err != nil {
			buildErr = fmt.Errorf("go list -m: %w", err)
			return
		}
		dir, err := os.MkdirTemp("", "berth-helm-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "berth")
		build := exec.Command("go", "build", "-o", builtBin, "./cmd/berth")
		build.Dir = strings.TrimSpace(string(out))
		if o, err := build.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/berth: %w\n%s", err, o)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builtBin != "" && os.Getenv("BERTH_E2E_BIN") == "" {
		os.RemoveAll(filepath.Dir(builtBin))
	}
	os.Exit(code)
}

// startBerth runs an open berth on a free loopback port until the test ends.
func startBerth(t *testing.T) string {
	t.Helper()
	bin := berthBin(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "berth.toml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("[server]\nbind_address = \"127.0.0.1\"\nport = %d\n\n[blob_store.fs]\nroot_dir = %q\n", port, filepath.Join(dir, "data"))), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cmd := exec.Command(bin, "serve", "-c", cfg)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		<-exited
	})
	host := fmt.Sprintf("127.0.0.1:%d", port)
	for {
		select {
		case <-exited:
			t.Fatalf("berth exited:\n%s", logs.String())
		default:
		}
		if resp, err := http.Get("http://" + host + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return host
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}
