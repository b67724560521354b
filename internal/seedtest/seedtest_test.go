package seedtest

import (
	"strings"
	"testing"
)

func TestHelpers(t *testing.T) {
	if !strings.Contains(AngosComplete, `[repository."production".access_policy]`) {
		t.Fatal("example not embedded")
	}
	d := Without(AngosComplete, "server.tls", "server")
	if strings.Contains(d, "[server") || strings.Contains(d, "server_private_key") || !strings.Contains(d, "[blob_store.fs]") {
		t.Fatalf("Without:\n%s", d)
	}
	d = WithProviderKeys(AngosComplete, `issuer = "http://127.0.0.1:1"`)
	if !strings.Contains(d, "[auth.oidc.github-actions]\nissuer = \"http://127.0.0.1:1\"\nprovider") {
		t.Fatalf("WithProviderKeys:\n%s", d)
	}
}
