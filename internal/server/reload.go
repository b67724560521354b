package server

import (
	"bytes"
	"context"
	"github.com/berth-registry/berth/internal/auth/oidc"
	"log/slog"
	"os"
	"reflect"
	"sync/atomic"
	"time"

	"github.com/berth-registry/berth/internal/auth/token"
	"github.com/berth-registry/berth/internal/authn"
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

// watchConfig reloads the configuration on SIGHUP and when the file changes:
// providers, users, policies and immutable tags are swapped atomically. A file
// with errors is refused and the old configuration keeps serving. Changes that
// need a restart (listener, storage, token service, limits) are logged.
//
// last is the file's content the running configuration came from (read
// before the watcher starts, so a change made meanwhile is not missed).
// hup delivers SIGHUP (registered by the caller before the watcher starts,
// so an early signal does not terminate the process).
func watchConfig(ctx context.Context, path string, last []byte, hup <-chan os.Signal, running *config.Config, gate *authn.Gate, cur *atomic.Pointer[runState],
	tokens *token.Service, logger *slog.Logger, now func() time.Time, sc oidc.SharedCache) {
	tick := time.NewTicker(reloadPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			logger.Info("SIGHUP: reloading configuration", "file", path)
		case <-tick.C:
			data, err := os.ReadFile(path)
			if err != nil || bytes.Equal(data, last) {
				continue
			}
			logger.Info("configuration file changed: reloading", "file", path)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			logger.Error("reload refused: the old configuration keeps serving", "err", err)
			continue
		}
		last = data
		reload(data, path, running, gate, cur, tokens, logger, now, sc)
	}
}

// reload applies one configuration document; see watchConfig.
func reload(data []byte, path string, running *config.Config, gate *authn.Gate, cur *atomic.Pointer[runState],
	tokens *token.Service, logger *slog.Logger, now func() time.Time, sc oidc.SharedCache) bool {
	cfg, err := config.Parse(data, path)
	if err == nil && PolicyConfig(cfg).Open != PolicyConfig(running).Open {
		logger.Error("reload refused: switching between open mode and authenticated mode needs a restart; the old configuration keeps serving")
		return false
	}
	if err == nil && (cfg.Auth.Token.Enabled && cfg.Auth.Enabled()) != (tokens != nil) {
		logger.Error("reload refused: turning the token service on or off needs a restart; the old configuration keeps serving")
		return false
	}
	var st *runState
	if err == nil {
		st, err = buildState(cfg, logger, now, sc)
	}
	if err != nil {
		logger.Error("reload refused: the old configuration keeps serving", "err", err)
		return false
	}
	if tokens != nil {
		// New key files apply now; the key they replace keeps verifying
		// the tokens it signed until they expire.
		if (cfg.Auth.Token.KeyFile == "") == (running.Auth.Token.KeyFile == "") {
			if err := tokens.ReloadKeys(cfg.Auth.Token.KeyFile, cfg.Auth.Token.PreviousKeyFiles); err != nil {
				st.close()
				logger.Error("reload refused: the old configuration keeps serving", "err", err)
				return false
			}
		}
		st.gate.Authn.Tokens = tokens
	}
	st.failures = cur.Load().failures
	st.limitFailures(cfg, st.failures, logger)
	old := cur.Swap(st)
	gate.Store(st.gate)
	old.close()
	for _, k := range restartOnly(running, cfg) {
		logger.Warn("configuration change needs a restart to take effect", "key", k)
	}
	logger.Info("configuration reloaded", "file", path, "providers", len(cfg.Auth.OIDC),
		"users", len(cfg.Auth.Identities), "repository_policies", len(cfg.Repositories))
	return true
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
