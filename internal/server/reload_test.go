package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/berth-registry/berth/internal/access"
	"github.com/berth-registry/berth/internal/config"
)

// A reload that replaces auth.token.key_file signs with the new key at once
// and keeps verifying tokens of the old one; previous_key_files are applied
// too; switching to generated keys waits for a restart.
func TestReloadSigningKeys(t *testing.T) {
	dir := t.TempDir()
	h, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	doc := func(keyFile string, previous ...string) []byte {
		var b bytes.Buffer
		fmt.Fprintf(&b, "[blob_store.fs]\nroot_dir = %q\n[auth.identity.alice]\nusername = \"alice\"\npassword = %q\n", dir, h)
		fmt.Fprintf(&b, "[global.access_policy]\ndefault_allow = true\n[auth.token]\n")
		if keyFile != "" {
			fmt.Fprintf(&b, "key_file = %q\n", keyFile)
		}
		if len(previous) > 0 {
			fmt.Fprintf(&b, "previous_key_files = [%q]\n", previous[0])
		}
		return b.Bytes()
	}
	k1, k2 := filepath.Join(dir, "k1.pem"), filepath.Join(dir, "k2.pem")
	cfg, err := config.Parse(doc(k1), "b.toml")
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	st, err := buildState(cfg, logger, time.Now, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := &app{cfg: cfg, log: logger, now: time.Now, configPath: "b.toml"}
	a.cur.Store(st)
	a.gate = access.NewGate(st.gate, logger)
	gate := a.gate
	ts, err := a.newTokenService()
	if err != nil {
		t.Fatal(err)
	}
	st.gate.Authn.Tokens = ts
	a.tokens = ts
	first := ts.KeyID()
	tok := accessToken(t, ts)

	// Create k2 (a key file that does not exist is generated), then reload.
	if !a.reload(doc(k2)) {
		t.Fatalf("reload refused:\n%s", logs.String())
	}
	if ts.KeyID() == first {
		t.Fatal("the reload did not switch to the new key file")
	}
	if _, err := ts.VerifyAccessToken(context.Background(), tok); err != nil {
		t.Fatalf("a token of the replaced key after the reload: %v", err)
	}
	if strings.Contains(logs.String(), `key=auth.token`) {
		t.Errorf("a key file change is reported as needing a restart:\n%s", logs.String())
	}
	if !gate.Load().Authn.Tokens.IsBerthToken(tok) {
		t.Error("the reloaded gate does not route tokens of the replaced key to the token service")
	}

	// A broken previous key file refuses the whole reload.
	if a.reload(doc(k1, filepath.Join(dir, "missing.pem"))) {
		t.Fatal("a reload with a missing previous key file was applied")
	}
	// Back to k1 with k2 as a previous key.
	if !a.reload(doc(k1, k2)) || ts.KeyID() != first {
		t.Fatalf("reload back to k1: %s\n%s", ts.KeyID(), logs.String())
	}
	// Generated keys need a restart: the keys stay, the change is reported.
	if !a.reload(doc("")) || ts.KeyID() != first {
		t.Fatal("a switch to generated keys changed the key without a restart")
	}
	if !strings.Contains(logs.String(), `key=auth.token`) {
		t.Errorf("a switch to generated keys is not reported as needing a restart:\n%s", logs.String())
	}
}

// accessToken gets an access token for alice from the token endpoint.
func accessToken(t *testing.T, ts http.Handler) string {
	t.Helper()
	req := httptest.NewRequest("GET", "/token?service=berth&scope=repository:alice/app:pull", nil)
	req.SetBasicAuth("alice", "pw")
	rec := httptest.NewRecorder()
	ts.ServeHTTP(rec, req)
	var body struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || rec.Code != 200 || body.Token == "" {
		t.Fatalf("token endpoint: %d %s", rec.Code, rec.Body)
	}
	return body.Token
}
