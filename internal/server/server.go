// Package server wires berth together and runs it: storage, the /v2 handler,
// health and readiness probes, metrics, the HTTP server and its graceful
// shutdown, and the purge of expired upload sessions.
//
//	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
//	defer stop()
//	err := server.Run(ctx, cfg, logger)
//
// The package holds no logic of its own beyond wiring: what a request means is
// decided in internal/registry, how bytes are kept in internal/storage.
//
// The server MUST NOT set a ReadTimeout or WriteTimeout: a blob upload or
// download can legitimately take hours. Slow-loris clients are bounded by
// ReadHeaderTimeout and idle connections by IdleTimeout.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/berth-registry/berth/internal/auth/oidc"
	"github.com/berth-registry/berth/internal/auth/token"
	"github.com/berth-registry/berth/internal/authn"
	"github.com/berth-registry/berth/internal/config"
	"github.com/berth-registry/berth/internal/metrics"
	"github.com/berth-registry/berth/internal/registry"
	"github.com/berth-registry/berth/internal/shared"
	"github.com/berth-registry/berth/internal/storage"
	"github.com/berth-registry/berth/internal/storage/fs"
	"github.com/berth-registry/berth/internal/storage/s3"
)

// OpenWarning is logged at startup while the registry has no authentication.
const OpenWarning = "registry is open: anyone who can reach it may push, pull and delete; configure [auth] before exposing it"

// readyTimeout bounds the storage ping behind /readyz.
const readyTimeout = 2 * time.Second

// The registry consumes metrics through its own small interface.
var _ registry.Metrics = (*metrics.Metrics)(nil)

// Run serves the registry described by cfg until ctx is cancelled, then shuts
// down gracefully: listeners close at once, in-flight requests get
// cfg.Server.ShutdownTimeout to finish. It returns nil after a clean shutdown.
//
// configPath, when not empty, is the file cfg came from: it is reloaded on
// SIGHUP and when it changes (see watchConfig).
func Run(ctx context.Context, cfg *config.Config, configPath string, logger *slog.Logger) error {
	o := options{configPath: configPath}
	if rc := cfg.Cache.Redis; rc != nil {
		// Never log rc.URL itself: it may hold a password.
		red, err := shared.Open(ctx, rc.URL, rc.KeyPrefix, logger)
		if err != nil {
			return fmt.Errorf("server: %w", err)
		}
		defer red.Close()
		o.shared = red
		logger.Info("shared state in redis", "redis", rc)
	}
	store, err := OpenStore(ctx, cfg, logger, o.locker())
	if err != nil {
		return err
	}
	return serve(ctx, cfg, logger, store, o)
}

// OpenStore opens the storage backend cfg names (also for berth gc). locker,
// when not nil, serializes S3 upload sessions across replicas.
func OpenStore(ctx context.Context, cfg *config.Config, logger *slog.Logger, locker s3.Locker) (storage.Store, error) {
	if sc := cfg.BlobStore.S3; sc != nil {
		// Never log sc.SecretKey. The token service's key and state stay
		// under blob_store.fs.root_dir (its default path) on local disk.
		st, err := s3.New(ctx, s3.Options{
			Endpoint:          sc.Endpoint,
			Bucket:            sc.Bucket,
			Region:            sc.Region,
			KeyPrefix:         sc.KeyPrefix,
			AccessKeyID:       sc.AccessKeyID,
			SecretKey:         sc.SecretKey,
			PathStyle:         sc.PathStyle,
			MultipartPartSize: sc.MultipartPartSize,
			Locker:            locker,
		})
		if err != nil {
			return nil, fmt.Errorf("server: open S3 storage (bucket %s): %w", sc.Bucket, err)
		}
		logger.Info("storage ready", "driver", "s3", "bucket", sc.Bucket, "endpoint", sc.Endpoint,
			"region", sc.Region, "key_prefix", sc.KeyPrefix, "local_state_dir", cfg.BlobStore.FS.RootDir)
		return st, nil
	}
	st, err := fs.New(cfg.BlobStore.FS.RootDir)
	if err != nil {
		return nil, fmt.Errorf("server: open storage %s: %w", cfg.BlobStore.FS.RootDir, err)
	}
	logger.Info("storage ready", "driver", "fs", "root_dir", cfg.BlobStore.FS.RootDir)
	return st, nil
}

// options are seams for tests.
type options struct {
	readyTimeout time.Duration    // default readyTimeout
	now          func() time.Time // default time.Now
	configPath   string           // reloaded on SIGHUP and on change; "" disables
	tokens       *token.Service   // set by serve
	// shared is the Redis of [cache.redis]; serve opens it when nil and the
	// configuration has one.
	shared *shared.Redis
}

// locker returns the cross-replica upload lock, nil without Redis (never a
// typed nil in the interface).
func (o options) locker() s3.Locker {
	if o.shared == nil {
		return nil
	}
	return o.shared
}

// sharedCache returns the OIDC key-set and verified-token cache shared by
// replicas, nil without Redis.
func (o options) sharedCache() oidc.SharedCache {
	if o.shared == nil {
		return nil
	}
	return o.shared
}

func serve(ctx context.Context, cfg *config.Config, logger *slog.Logger, store storage.Store, o options) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if o.readyTimeout <= 0 {
		o.readyTimeout = readyTimeout
	}
	if o.now == nil {
		o.now = time.Now
	}

	// Refuse a broken configuration before opening any socket: a bad TLS
	// table must never degrade to plain HTTP.
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("server: invalid configuration:\n%w", err)
	}
	var tlsConfig *tls.Config
	if cfg.TLSEnabled() {
		cert, err := tls.LoadX509KeyPair(cfg.Server.TLS.CertificateBundle, cfg.Server.TLS.PrivateKey)
		if err != nil {
			return fmt.Errorf("server: load TLS certificate: %w", err)
		}
		tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	}

	if o.shared == nil && cfg.Cache.Redis != nil {
		red, err := shared.Open(ctx, cfg.Cache.Redis.URL, cfg.Cache.Redis.KeyPrefix, logger)
		if err != nil {
			return fmt.Errorf("server: %w", err)
		}
		defer red.Close()
		o.shared = red
	}

	st, err := buildState(cfg, logger, o.now, o.sharedCache())
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	st.failures = &authn.LocalFailures{Now: o.now}
	if o.shared != nil {
		st.failures = o.shared // the failed-authentication limit holds across replicas
	}
	st.limitFailures(cfg, st.failures, logger)
	var cur atomic.Pointer[runState]
	cur.Store(st)
	defer func() { cur.Load().close() }()
	gate := authn.NewGate(st.gate, logger)
	logStartupWarnings(cfg, logger)

	var m *metrics.Metrics
	ropts := registry.Options{
		Store:           store,
		Logger:          logger,
		MaxManifestSize: cfg.Limits.MaxManifestSize,
		MaxBlobSize:     cfg.Limits.MaxBlobSize,
		AllowSparse:     cfg.Manifests.AllowSparse,
		// In open mode every caller may read every repository, so a mount
		// without from leaks nothing; otherwise it would.
		MountWithoutFrom: PolicyConfig(cfg).Open,
		Now:              o.now,
		Authorizer:       gate,
		CanList:          gate.CanList,
		Immutable: func(repo, tag string) bool {
			imm := gate.Load().Immutable
			return imm != nil && imm.Protected(repo, tag)
		},
	}
	if cfg.Metrics.Enabled {
		m = metrics.New()
		ropts.Metrics = m // only when enabled: a typed nil would not be nil in the interface
	}
	if sc := cfg.BlobStore.S3; sc != nil && sc.EnableBlobRedirect {
		r, ok := store.(registry.BlobRedirector)
		if !ok {
			return fmt.Errorf("server: blob_store.s3.enable_blob_redirect: %T cannot presign URLs", store)
		}
		ropts.BlobRedirect = r
	}

	mux := http.NewServeMux()
	mux.Handle("/v2/", registry.New(ropts))
	if st.service != "" {
		ts, err := newTokenService(ctx, cfg, gate, cur.Load, logger, o.now, o.shared)
		if err != nil {
			return fmt.Errorf("server: token service: %w", err)
		}
		st.gate.Authn.Tokens = ts
		mux.Handle("/token", ts)
		mux.Handle("/token/", ts)
		o.tokens = ts
	}
	if cfg.UI.Enabled {
		h, err := newUI(cfg, store, gate, o.tokens, logger, o.now)
		if err != nil {
			return fmt.Errorf("server: web UI: %w", err)
		}
		mux.Handle("/", h)
	}
	if o.configPath != "" {
		last, _ := os.ReadFile(o.configPath)
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		go watchConfig(ctx, o.configPath, last, hup, cfg, gate, &cur, o.tokens, logger, o.now, o.sharedCache())
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeText(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		pctx, cancel := context.WithTimeout(r.Context(), o.readyTimeout)
		defer cancel()
		if err := store.Ping(pctx); err != nil {
			logger.Warn("not ready: storage ping failed", "err", err)
			writeText(w, http.StatusServiceUnavailable, "storage unavailable")
			return
		}
		if o.shared != nil {
			if err := o.shared.Ping(pctx); err != nil {
				logger.Warn("not ready: redis ping failed", "err", err)
				writeText(w, http.StatusServiceUnavailable, "redis unavailable")
				return
			}
		}
		writeText(w, http.StatusOK, "ok")
	})
	if m != nil && cfg.Metrics.Address == "" {
		mux.Handle("GET /metrics", m.Handler())
	}

	errorLog := slog.NewLogLogger(logger.Handler(), slog.LevelWarn)
	api := &http.Server{
		Handler:           authn.Proxies(cfg.Server.TrustedProxies).Handler(mux),
		ReadHeaderTimeout: cfg.Server.ReadHeaderTimeout,
		IdleTimeout:       cfg.Server.IdleTimeout,
		TLSConfig:         tlsConfig,
		ErrorLog:          errorLog,
	}
	ln, err := net.Listen("tcp", cfg.ListenAddr())
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	servers := []*http.Server{api}
	listeners := []net.Listener{ln}

	if m != nil && cfg.Metrics.Address != "" {
		mmux := http.NewServeMux()
		mmux.Handle("GET /metrics", m.Handler())
		msrv := &http.Server{
			Handler:           mmux,
			ReadHeaderTimeout: cfg.Server.ReadHeaderTimeout,
			IdleTimeout:       cfg.Server.IdleTimeout,
			ErrorLog:          errorLog,
		}
		mln, err := net.Listen("tcp", cfg.Metrics.Address)
		if err != nil {
			_ = ln.Close()
			return fmt.Errorf("server: metrics: %w", err)
		}
		servers = append(servers, msrv)
		listeners = append(listeners, mln)
	}

	errc := make(chan error, len(servers))
	for i, srv := range servers {
		ln := listeners[i]
		tlsOn := srv.TLSConfig != nil
		if i == 0 {
			logger.Info("listening", "addr", ln.Addr().String(), "tls", tlsOn)
		} else {
			logger.Info("metrics listening", "addr", ln.Addr().String())
		}
		go func() {
			var err error
			if tlsOn {
				err = srv.ServeTLS(ln, "", "")
			} else {
				err = srv.Serve(ln)
			}
			if errors.Is(err, http.ErrServerClosed) {
				err = nil
			}
			errc <- err
		}()
	}

	// Purge expired upload sessions until shutdown.
	purgeCtx, stopPurge := context.WithCancel(ctx)
	var purging sync.WaitGroup
	purging.Go(func() { purge(purgeCtx, store, cfg.Uploads, o.now, logger) })
	if o.tokens != nil {
		// Without Redis, dead refresh/session token records are files:
		// remove them as often as expired uploads, not only at startup.
		purging.Go(func() { pruneTokens(purgeCtx, o.tokens, cfg.Uploads.PurgeInterval, logger) })
		// Generated signing keys: rotate when due, follow other replicas.
		purging.Go(func() { o.tokens.RunKeyRotation(purgeCtx) })
	}
	if cfg.GC.Interval > 0 {
		purging.Go(func() { collectGarbage(purgeCtx, store, cfg.GC, m, o.now, logger) })
	}

	var serveErr error
	select {
	case <-ctx.Done():
		logger.Info("shutting down", "timeout", cfg.Server.ShutdownTimeout)
	case serveErr = <-errc:
		// A listener failed; stop the others too.
		logger.Error("server failed", "err", serveErr)
	}
	stopPurge()

	// A fresh context: ctx is already cancelled, and in-flight requests must
	// get their time to finish.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.Server.ShutdownTimeout)
	defer cancel()
	var shutdownErr error
	for _, srv := range servers {
		if err := srv.Shutdown(sctx); err != nil {
			logger.Warn("shutdown timed out; closing remaining connections", "err", err)
			_ = srv.Close()
			shutdownErr = fmt.Errorf("server: shutdown: %w", err)
		}
	}
	purging.Wait()
	if serveErr != nil {
		return fmt.Errorf("server: %w", serveErr)
	}
	if shutdownErr != nil {
		return shutdownErr
	}
	logger.Info("stopped")
	return nil
}

// purge removes upload sessions older than u.Expiry, once at startup and then
// every u.PurgeInterval, until ctx is done.
func purge(ctx context.Context, store storage.Store, u config.Uploads, now func() time.Time, logger *slog.Logger) {
	t := time.NewTicker(u.PurgeInterval)
	defer t.Stop()
	for {
		n, err := store.PurgeUploads(ctx, now().Add(-u.Expiry))
		switch {
		case err != nil && ctx.Err() == nil:
			logger.Warn("purging expired uploads failed", "err", err)
		case n > 0:
			logger.Info("purged expired uploads", "count", n, "expiry", u.Expiry)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// tokenPruner removes dead refresh/session token records (*token.Service).
type tokenPruner interface {
	Prune() (int, error)
}

// pruneTokens prunes every interval until ctx ends (the first run is at
// startup, in token.New).
func pruneTokens(ctx context.Context, p tokenPruner, interval time.Duration, logger *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := p.Prune()
		switch {
		case err != nil && ctx.Err() == nil:
			logger.Warn("pruning dead refresh/session tokens failed", "err", err)
		case n > 0:
			logger.Info("pruned dead refresh/session tokens", "count", n)
		}
	}
}

func writeText(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}
