package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTracingAndAdminDecoded(t *testing.T) {
	dir := t.TempDir()
	hf := filepath.Join(dir, "headers")
	if err := os.WriteFile(hf, []byte("# a comment\nAuthorization: Bearer s3cr3t\n\nX-Scope-OrgID: team\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Parse([]byte(`[tracing]
enabled = true
endpoint = "http://127.0.0.1:4318"
insecure = true
headers_file = "`+hf+`"
sample_ratio = 0.25
service_name = "registry"

[admin]
bind_address = "[::1]:6060"
`), "t.toml")
	if err != nil {
		t.Fatal(err)
	}
	want := Tracing{Enabled: true, Endpoint: "http://127.0.0.1:4318", Insecure: true, HeadersFile: hf, SampleRatio: 0.25, ServiceName: "registry"}
	if c.Tracing != want {
		t.Errorf("tracing = %+v", c.Tracing)
	}
	if !c.AdminEnabled() || !c.AdminExplicit() || c.Admin.BindAddress != "[::1]:6060" {
		t.Errorf("admin = %+v", c.Admin)
	}
	h, err := ReadHeadersFile(hf)
	if err != nil || h.Get("Authorization") != "Bearer s3cr3t" || h.Get("X-Scope-Orgid") != "team" {
		t.Errorf("headers = %v, %v", h, err)
	}
	// Off: the default is loopback and best effort; "off" and "" disable.
	for doc, on := range map[string]bool{"": true, "[admin]\nbind_address = \"off\"\n": false, "[admin]\nbind_address = \"\"\n": false} {
		c, err := Parse([]byte(doc), "a.toml")
		if err != nil {
			t.Fatal(err)
		}
		if c.AdminEnabled() != on || (doc == "" && c.AdminExplicit()) {
			t.Errorf("%q: enabled %t explicit %t", doc, c.AdminEnabled(), c.AdminExplicit())
		}
	}
	if c := Default(); c.Tracing.Enabled || c.Admin.BindAddress != "127.0.0.1:5001" {
		t.Errorf("defaults: %+v %+v", c.Tracing, c.Admin)
	}
}

// Every problem of [tracing] and [admin] at once, a headers file's bad line
// by number and never its value; the non-loopback refusal.
func TestTracingAndAdminProblems(t *testing.T) {
	dir := t.TempDir()
	hf := filepath.Join(dir, "headers")
	if err := os.WriteFile(hf, []byte("Authorization: Bearer ok\ntopsecretvalue\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Parse([]byte(`[server]
port = 5000

[tracing]
enabled = true
endpoint = "http://collector:4318"
sample_ratio = 1.5
certificate_authority_file = "`+filepath.Join(dir, "missing.pem")+`"
headers_file = "`+hf+`"
service_name = ""

[admin]
bind_address = "0.0.0.0:5000"
`), "bad.toml")
	got := problems(t, err)
	want := map[string]string{
		"tracing.endpoint":                   "is http://: spans would travel unencrypted; use https:// or set tracing.insecure = true",
		"tracing.sample_ratio":               "must be between 0 and 1, got 1.5",
		"tracing.service_name":               "must not be empty",
		"tracing.certificate_authority_file": "cannot be read",
		"tracing.headers_file":               "line 2: not a \"Name: value\" header line",
		"admin.bind_address":                 "",
	}
	seen := map[string]int{}
	for _, p := range got {
		seen[p.Key]++
		if strings.Contains(p.Message, "topsecretvalue") || strings.Contains(p.Message, "Bearer ok") {
			t.Errorf("%s: the message shows the headers file's content: %s", p.Key, p.Message)
		}
		if w, ok := want[p.Key]; !ok || !strings.Contains(p.Message, w) {
			t.Errorf("unexpected problem %+v", p)
		}
	}
	for k := range want {
		if seen[k] == 0 {
			t.Errorf("no problem for %s in %+v", k, got)
		}
	}
	if seen["admin.bind_address"] != 2 { // the registry's port, and not loopback
		t.Errorf("admin.bind_address problems: %+v", got)
	}

	for _, tc := range []struct{ doc, msg string }{
		{"[tracing]\nenabled = true\n", "is required when tracing is enabled"},
		{"[tracing]\nenabled = true\nendpoint = \"collector:4318\"\n", "is not an http:// or https:// URL"},
		{"[tracing]\nenabled = true\nendpoint = \"https://u:p@collector:4318\"\n", "must not hold credentials"},
		{"[tracing]\nsample_ratio = \"all\"\n", "must be a number"},
		{"[admin]\nbind_address = \"10.0.0.5:6060\"\n", "is not a loopback address"},
		{"[admin]\nbind_address = \"localhost\"\n", "is not a host:port address"},
	} {
		_, err := Parse([]byte(tc.doc), "x.toml")
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%q: %v, want %q", tc.doc, err, tc.msg)
		}
	}
	// The default admin address yields to a registry on its port.
	if _, err := Parse([]byte("[server]\nport = 5001\n"), "ok.toml"); err != nil {
		t.Errorf("server.port = 5001 with the default admin address: %v", err)
	}
	// Explicitly allowed, a non-loopback admin address is accepted.
	if _, err := Parse([]byte("[admin]\nbind_address = \"0.0.0.0:6060\"\nallow_non_loopback = true\n"), "ok.toml"); err != nil {
		t.Errorf("allowed non-loopback: %v", err)
	}
	if _, err := Parse([]byte("[tracing]\nenabled = true\nendpoint = \"https://collector:4318\"\nsample_ratio = 0\n"), "ok.toml"); err != nil {
		t.Errorf("https endpoint: %v", err)
	}
}
