package server

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"reflect"
	"time"

	"github.com/berth-registry/berth/internal/config"
)

// reloadPoll is how often the config file is checked for changes.
const reloadPoll = 2 * time.Second

// logStartupWarnings says what the configuration leaves open.
func logStartupWarnings(cfg *config.Config, logger *slog.Logger) {
	for _, w := range StartupWarnings(cfg) {
		logger.Warn(w)
	}
}

// StartupWarnings are what the configuration leaves open or fragile, as serve
// logs them at startup after the OIDC providers' own warnings (see
// CheckWarnings, which `berth config check` prints).
func StartupWarnings(cfg *config.Config) []string {
	var out []string
	switch {
	case PolicyConfig(cfg).Open:
		out = append(out, OpenWarning)
	case !cfg.HasPolicies():
		out = append(out, "no access policy is configured: every request is denied; add [global.access_policy] or [repository.\"<name>\".access_policy] (docs/policies.md)")
	}
	if cfg.UI.Enabled && cfg.Auth.Enabled() && !cfg.Auth.Token.Enabled {
		out = append(out, "the web UI signs users in with session tokens from the token service, which is off ([auth.token] enabled = false): it shows only what anonymous users may see")
	}
	if cfg.BlobStore.S3 != nil && cfg.Cache.Redis == nil {
		out = append(out, S3WithoutRedisWarning)
	}
	return out
}

// S3WithoutRedisWarning is logged at startup when the storage is S3 and no
// [cache.redis] is configured.
const S3WithoutRedisWarning = "blob_store.s3 without [cache.redis]: run a single replica. " +
	"Several replicas on one bucket need Redis for: token_max_uses and revocations across replicas " +
	"(refresh/session token records are per replica, so a token issued by one is unknown to the others), " +
	"one token signing key (or the same auth.token.key_file on every replica), " +
	"serialised appends to one upload session (without Redis a concurrent append is refused, not waited for), " +
	"[auth.rate_limit] counts over all replicas, and the shared OIDC key-set and verified-ID-token caches, " +
	"so that a replica that cannot reach an issuer still accepts ID tokens another replica verified (docs/deploy/ha.md)"

// The configuration is reloaded on SIGHUP and when the file changes:
// providers, users, policies and immutable tags are swapped atomically. A file
// with errors is refused and the old configuration keeps serving. Changes that
// need a restart (listener, storage, token service, limits) are logged.

// pollConfig reloads the configuration file when its content changed.
func (a *app) pollConfig(context.Context) error {
	data, err := os.ReadFile(a.configPath)
	if err != nil {
		return nil // a file being replaced; SIGHUP reports read errors
	}
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	if bytes.Equal(data, a.lastConfig) {
		return nil
	}
	a.log.Info("configuration file changed: reloading", "file", a.configPath)
	a.lastConfig = data
	a.reload(data)
	return nil
}

// onSIGHUP reloads the configuration file on each SIGHUP until ctx is done.
func (a *app) onSIGHUP(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.hup:
		}
		a.log.Info("SIGHUP: reloading configuration", "file", a.configPath)
		data, err := os.ReadFile(a.configPath)
		if err != nil {
			a.log.Error("reload refused: the old configuration keeps serving", "err", err)
			continue
		}
		a.reloadMu.Lock()
		a.lastConfig = data
		a.reload(data)
		a.reloadMu.Unlock()
	}
}

// reload applies one configuration document (from a.configPath) and reports
// whether it did; a refused document changes nothing.
func (a *app) reload(data []byte) bool {
	running, logger := a.cfg, a.log
	cfg, err := config.Parse(data, a.configPath)
	if err == nil && PolicyConfig(cfg).Open != PolicyConfig(running).Open {
		logger.Error("reload refused: switching between open mode and authenticated mode needs a restart; the old configuration keeps serving")
		return false
	}
	if err == nil && (cfg.Auth.Token.Enabled && cfg.Auth.Enabled()) != (a.tokens != nil) {
		logger.Error("reload refused: turning the token service on or off needs a restart; the old configuration keeps serving")
		return false
	}
	var st *runState
	if err == nil {
		st, err = buildState(cfg, logger, a.now, a.sharedCache(), a.tracer.Transport)
	}
	if err == nil && a.tokens != nil {
		err = a.reloadKeys(cfg, st)
	}
	if err != nil {
		logger.Error("reload refused: the old configuration keeps serving", "err", err)
		return false
	}
	st.failures = a.cur.Load().failures
	st.limitFailures(cfg, st.failures, logger)
	old := a.cur.Swap(st)
	a.gate.Store(st.gate)
	old.close()
	for _, k := range restartOnly(running, cfg) {
		logger.Warn("configuration change needs a restart to take effect", "key", k)
	}
	logger.Info("configuration reloaded", "file", a.configPath, "providers", len(cfg.Auth.OIDC),
		"users", len(cfg.Auth.Identities), "repository_policies", len(cfg.Repositories))
	return true
}

// reloadKeys applies cfg's key files to the token service and routes st's
// tokens to it; on an error it closes st.
func (a *app) reloadKeys(cfg *config.Config, st *runState) error {
	// New key files apply now; the key they replace keeps verifying the
	// tokens it signed until they expire.
	if (cfg.Auth.Token.KeyFile == "") == (a.cfg.Auth.Token.KeyFile == "") {
		if err := a.tokens.ReloadKeys(cfg.Auth.Token.KeyFile, cfg.Auth.Token.PreviousKeyFiles); err != nil {
			st.close()
			return err
		}
	}
	st.gate.Authn.Tokens = a.tokens
	return nil
}

// restartOnly lists the sections that differ but are only read at startup.
func restartOnly(a, b *config.Config) []string {
	var out []string
	for _, c := range []struct {
		key  string
		x, y any
	}{
		{"server", a.Server, b.Server},
		{"blob_store", a.BlobStore, b.BlobStore},
		{"limits", a.Limits, b.Limits},
		{"manifests", a.Manifests, b.Manifests},
		{"uploads", a.Uploads, b.Uploads},
		{"log", a.Log, b.Log},
		{"metrics", a.Metrics, b.Metrics},
		{"cache", a.Cache, b.Cache},
		{"tracing", a.Tracing, b.Tracing},
		{"admin", a.Admin, b.Admin},
		{"auth.token", tokenRestartOnly(a.Auth.Token), tokenRestartOnly(b.Auth.Token)},
	} {
		if !reflect.DeepEqual(c.x, c.y) {
			out = append(out, c.key)
		}
	}
	return out
}

// tokenRestartOnly is t without what a reload applies: key_file (unless it
// switches between a file and generated keys) and previous_key_files.
func tokenRestartOnly(t config.Token) config.Token {
	if t.KeyFile != "" {
		t.KeyFile = "set"
	}
	t.PreviousKeyFiles = nil
	return t
}
