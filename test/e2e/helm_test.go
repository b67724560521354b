package e2e

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// helm 3 stores charts as OCI artifacts: push, pull (byte compare), show, and
// the workload-identity login path — `helm registry login -u <provider>
// --password-stdin` with an OIDC ID token — against a berth with policies.
func TestHelm(t *testing.T) {
	helm := needClient(t, "helm")

	t.Run("open", func(t *testing.T) {
		p := startBerth(t, t.TempDir())
		s := newClientSandbox(t, p)
		host := p.host()
		s.run(helm, "create", "mychart")
		s.run(helm, "package", "mychart", "--version", "0.1.0")
		pushed := s.exec(nil, nil, helm, "push", "mychart-0.1.0.tgz", "oci://"+host+"/charts", "--plain-http")
		if pushed.err != nil {
			t.Fatalf("helm push:\n%s", pushed)
		}
		dg := digestIn(t, "helm push", pushed.stdout+pushed.stderr) // helm reports on stderr

		raw, m := httpManifest(t, p, "charts/mychart", "0.1.0")
		wantEqual(t, "pushed digest", dg, sha256Digest(raw))
		wantEqual(t, "config media type", m.Config.MediaType, "application/vnd.cncf.helm.config.v1+json")
		wantEqual(t, "layers", len(m.Layers), 1)
		wantEqual(t, "chart layer media type", m.Layers[0].MediaType, "application/vnd.cncf.helm.chart.content.v1.tar+gzip")
		chart := readFile(t, s.path("mychart-0.1.0.tgz"))
		wantEqual(t, "chart layer digest", m.Layers[0].Digest, sha256Digest(chart))

		s.in(s.path("out"))
		s.run(helm, "pull", "oci://"+host+"/charts/mychart", "--version", "0.1.0", "--plain-http", "-d", s.path("out"))
		if got := readFile(t, s.path("out", "mychart-0.1.0.tgz")); !bytes.Equal(got, chart) {
			t.Fatalf("helm pull: chart differs (%d bytes, want %d)", len(got), len(chart))
		}
		show := s.run(helm, "show", "chart", "oci://"+host+"/charts/mychart", "--version", "0.1.0", "--plain-http")
		if !strings.Contains(show, "name: mychart") || !strings.Contains(show, "version: 0.1.0") {
			t.Fatalf("helm show chart:\n%s", show)
		}
		wantContains(t, "tags", httpTags(t, p, "charts/mychart"), "0.1.0")
	})

	t.Run("oidc login", func(t *testing.T) {
		iss := newIssuer(t)
		p := authBerth(t, iss, "")
		s := newClientSandbox(t, p)
		host := p.host()
		s.run(helm, "create", "mychart")
		s.run(helm, "package", "mychart", "--version", "1.2.3")

		// Not logged in: refused.
		r := s.fail(helm, "push", "mychart-1.2.3.tgz", "oci://"+host+"/charts", "--plain-http")
		if !strings.Contains(strings.ToLower(r.stderr), "unauthorized") && !strings.Contains(r.stderr, "401") {
			t.Fatalf("anonymous push: want a 401, got:\n%s", r)
		}
		// Logged in with the provider name and an ID token, as a CI job would.
		login := s.exec([]byte(ciToken(iss, 5*time.Minute)), nil, helm, "registry", "login", host, "-u", "ci", "--password-stdin", "--plain-http")
		if login.err != nil {
			t.Fatalf("helm registry login:\n%s", login)
		}
		s.run(helm, "push", "mychart-1.2.3.tgz", "oci://"+host+"/charts", "--plain-http")
		s.in(s.path("out"))
		s.run(helm, "pull", "oci://"+host+"/charts/mychart", "--version", "1.2.3", "--plain-http", "-d", s.path("out"))
		if got, want := readFile(t, s.path("out", "mychart-1.2.3.tgz")), readFile(t, s.path("mychart-1.2.3.tgz")); !bytes.Equal(got, want) {
			t.Fatalf("helm pull after login: chart differs")
		}
		s.run(helm, "registry", "logout", host)
		s.fail(helm, "pull", "oci://"+host+"/charts/mychart", "--version", "1.2.3", "--plain-http", "-d", s.path("out2"))
	})
}
