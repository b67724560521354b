package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestAngosConfigAndActionNames: a file written for Angos — its [global]
// key names and a policy in Angos's action vocabulary — runs as meant. The
// pusher's rule names Angos's upload steps (update-upload,
// complete-upload) and put-manifest; the reader's get-manifest, get-blob
// and list-tags. Before, the keys were unknown (berth refused to start) and
// the rules never matched (every request denied).
func TestAngosConfigAndActionNames(t *testing.T) {
	p := startBerthWith(t, t.TempDir(), fmt.Sprintf(`
[global]
trusted_proxies = ["10.0.0.1"]
max_manifest_size = "2KiB"

[auth.identity.ci]
username = "ci"
password = %q

[auth.identity.reader]
username = "reader"
password = %q

[global.access_policy]
default_allow = false
rules = [
  "identity.username == 'reader' && request.action in ['get-manifest', 'get-blob', 'list-tags']",
  "identity.username == 'ci' && (request.action.startsWith('put-') || request.action in ['get-manifest', 'get-blob', 'start-upload', 'update-upload', 'complete-upload', 'get-upload'])",
]
`, polHash(t, "ci-secret"), polHash(t, "reader-secret")))
	ci := &authn.Basic{Username: "ci", Password: "ci-secret"}
	reader := &authn.Basic{Username: "reader", Password: "reader-secret"}

	img := polImage(t)
	if err := polPush(t, p, "app:v1", img, ci); err != nil {
		t.Fatalf("push by ci (Angos's upload and put-manifest actions): %v", err)
	}
	got, err := remote.Image(polRef(t, p, "app:v1"), remote.WithAuth(reader))
	if err != nil {
		t.Fatalf("pull by reader (get-manifest): %v", err)
	}
	if _, err := got.Layers(); err != nil {
		t.Fatal(err)
	}
	if d := digestOf(t, got); d != digestOf(t, img) {
		t.Errorf("pulled %s, pushed %s", d, digestOf(t, img))
	}
	layers, _ := img.Layers()
	rc, err := layers[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()
	ld, _ := layers[0].Digest()
	resp, body := doReq(t, http.MethodGet, p.url("/v2/app/blobs/"+ld.String()), nil, polBasic("reader", "reader-secret"))
	wantStatus(t, "GET blob by reader (get-blob)", resp, body, http.StatusOK)
	resp, body = doReq(t, http.MethodGet, p.url("/v2/app/tags/list"), nil, polBasic("reader", "reader-secret"))
	wantStatus(t, "GET tags by reader (list-tags)", resp, body, http.StatusOK)

	// What no rule names stays denied.
	polWantRefused(t, "push by reader", polPush(t, p, "app:v2", polImage(t), reader))
	resp, body = doReq(t, http.MethodDelete, p.url("/v2/app/manifests/"+digestOf(t, img).String()), nil, polBasic("ci", "ci-secret"))
	wantStatus(t, "DELETE manifest by ci", resp, body, http.StatusForbidden)

	// global.max_manifest_size applies: a 3 KiB manifest is too large.
	big := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","annotations":{"x":"` + strings.Repeat("a", 3<<10) + `"}}`)
	hdr := polBasic("ci", "ci-secret")
	hdr["Content-Type"] = "application/vnd.oci.image.manifest.v1+json"
	resp, body = doReq(t, http.MethodPut, p.url("/v2/app/manifests/big"), bytes.NewReader(big), hdr)
	wantStatus(t, "PUT a 3 KiB manifest with global.max_manifest_size = 2KiB", resp, body, http.StatusRequestEntityTooLarge)
}
