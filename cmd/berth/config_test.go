package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-registry/berth/docs"
	"github.com/berth-registry/berth/internal/config"
	"github.com/berth-registry/berth/internal/testutil"
)

// berth config example prints a file that berth config check accepts;
// berth config schema prints the JSON Schema.
func TestConfigExampleAndSchema(t *testing.T) {
	code, stdout, stderr := runCmd(t, "config", "example")
	if code != exitOK || stderr != "" {
		t.Fatalf("config example: %d %q", code, stderr)
	}
	if stdout != string(config.Example(docs.Configuration)) || !strings.Contains(stdout, "\n[server]\n") {
		t.Errorf("config example printed\n%s", stdout)
	}
	file := writeFile(t, stdout)
	if code, out, stderr := runCmd(t, "config", "check", "-c", file); code != exitOK || out != "config OK\n" {
		t.Errorf("config check of the example: %d %q %q", code, out, stderr)
	}

	code, stdout, stderr = runCmd(t, "config", "schema")
	if code != exitOK || stderr != "" {
		t.Fatalf("config schema: %d %q", code, stderr)
	}
	var s map[string]any
	if err := json.Unmarshal([]byte(stdout), &s); err != nil || s["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
		t.Errorf("config schema: %v, $schema %v", err, s["$schema"])
	}
	if code, _, stderr := runCmd(t, "config", "schema", "extra"); code != exitUsage || !strings.Contains(stderr, "config schema takes no arguments") {
		t.Errorf("config schema extra: %d %q", code, stderr)
	}
}

// BERTH_LOG_LEVEL sets the log level over [log] level; an invalid value
// stops serve and gc at start with a message naming the variable.
func TestLogLevelEnv(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, `[server]
bind_address = "127.0.0.1"
port = 0
[blob_store.fs]
root_dir = '`+filepath.Join(dir, "data")+`'
[log]
level = "error"
`)
	serveLog := func(env string) (int, string) {
		t.Setenv(config.LogLevelEnv, env)
		ctx, cancel := context.WithCancel(t.Context())
		cancel() // serve starts, logs, and stops at once
		var stdout, stderr testutil.Buffer
		code := run(ctx, []string{"serve", "-c", file}, strings.NewReader(""), &stdout, &stderr)
		return code, stderr.String()
	}
	if code, log := serveLog(""); code != exitOK || strings.Contains(log, "starting berth") {
		t.Errorf("[log] level error: exit %d, logged\n%s", code, log)
	}
	if code, log := serveLog("info"); code != exitOK || !strings.Contains(log, "level=INFO msg=\"starting berth\"") {
		t.Errorf("BERTH_LOG_LEVEL=info: exit %d, logged\n%s", code, log)
	}
	if code, log := serveLog("WARN"); code != exitOK || !strings.Contains(log, "level=WARN") || strings.Contains(log, "level=INFO") {
		t.Errorf("BERTH_LOG_LEVEL=WARN: exit %d, logged\n%s", code, log)
	}
	want := `berth: BERTH_LOG_LEVEL="verbose" is not one of debug, info, warn, error`
	if code, log := serveLog("verbose"); code != exitError || !strings.Contains(log, want) || strings.Contains(log, "starting") {
		t.Errorf("BERTH_LOG_LEVEL=verbose: exit %d, stderr\n%s", code, log)
	}
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), []string{"gc", "-c", file}, strings.NewReader(""), &stdout, &stderr); code != exitError || !strings.Contains(stderr.String(), `BERTH_LOG_LEVEL="verbose"`) {
		t.Errorf("gc with BERTH_LOG_LEVEL=verbose: exit %d, stderr %q", code, stderr.String())
	}
}
