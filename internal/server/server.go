// Package server wires berth together and runs it.
//
//	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
//	defer stop()
//	err := server.Run(ctx, cfg, configPath, logger)
//
// Run goes through four steps. build (build.go) opens the shared state
// ([cache.redis], once) and the storage, and builds the verifiers, policies,
// token service, UI and handlers into an app. listen opens the sockets (the
// API's, and the metrics' when separate). runTasks (tasks.go) starts the
// background tasks: the periodic ones (purge of expired uploads, pruning of
// dead token records, garbage collection, the configuration file's check)
// through one helper, every, plus the signing keys' rotation and the SIGHUP
// reload. shutdown gives in-flight requests a fresh timeout once ctx is done.
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
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/berth-registry/berth/internal/config"
	"github.com/berth-registry/berth/internal/metrics"
	"github.com/berth-registry/berth/internal/redisstate"
	"github.com/berth-registry/berth/internal/registry"
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
// SIGHUP and when it changes (see app.watchConfig).
func Run(ctx context.Context, cfg *config.Config, configPath string, logger *slog.Logger) error {
	return serve(ctx, cfg, logger, options{configPath: configPath})
}

// openShared opens the Redis of [cache.redis], nil without one.
func openShared(ctx context.Context, cfg *config.Config, logger *slog.Logger) (*redisstate.Redis, error) {
	rc := cfg.Cache.Redis
	if rc == nil {
		return nil, nil
	}
	// Never log rc.URL or u itself: they may hold a password.
	u, err := rc.ConnURL()
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	red, err := redisstate.Open(ctx, u, rc.KeyPrefix, logger)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	logger.Info("shared state in redis", "redis", rc)
	return red, nil
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
			ReadAheadParts:    sc.ReadAheadParts,
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
	store        storage.Store    // default: OpenStore
}

// serve builds berth from cfg, listens, runs the background tasks until ctx
// is done (or a listener fails) and shuts down.
func serve(ctx context.Context, cfg *config.Config, logger *slog.Logger, o options) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if o.readyTimeout <= 0 {
		o.readyTimeout = readyTimeout
	}
	if o.now == nil {
		o.now = time.Now
	}
	a, err := build(ctx, cfg, logger, o)
	if err != nil {
		return err
	}
	defer a.close()
	l, err := a.listen()
	if err != nil {
		return err
	}
	errc := l.serve(logger)

	tasksCtx, stopTasks := context.WithCancel(ctx)
	var tasks sync.WaitGroup
	a.runTasks(tasksCtx, &tasks)

	var serveErr error
	select {
	case <-ctx.Done():
		logger.Info("shutting down", "timeout", cfg.Server.ShutdownTimeout)
	case serveErr = <-errc:
		// A listener failed; stop the others too.
		logger.Error("server failed", "err", serveErr)
	}
	stopTasks()
	shutdownErr := l.shutdown(ctx, cfg.Server.ShutdownTimeout, logger)
	tasks.Wait()
	if serveErr != nil {
		return fmt.Errorf("server: %w", serveErr)
	}
	if shutdownErr != nil {
		return shutdownErr
	}
	logger.Info("stopped")
	return nil
}

// listeners are the HTTP servers and their sockets: the API first, then
// the separate metrics listener when [metrics] address is set.
type listeners struct {
	servers []*http.Server
	sockets []net.Listener
	admin   *http.Server // the admin listener's, last; nil without
}

// listen opens the API's socket and, with [metrics] address, the metrics
// one. Nothing is served yet.
func (a *app) listen() (*listeners, error) {
	cfg := a.cfg
	errorLog := slog.NewLogLogger(a.log.Handler(), slog.LevelWarn)
	api := &http.Server{
		Handler:           a.handler,
		ReadHeaderTimeout: cfg.Server.ReadHeaderTimeout,
		IdleTimeout:       cfg.Server.IdleTimeout,
		TLSConfig:         a.tlsConfig,
		ErrorLog:          errorLog,
	}
	ln, err := net.Listen("tcp", cfg.ListenAddr())
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	l := &listeners{servers: []*http.Server{api}, sockets: []net.Listener{ln}}
	if a.metrics != nil && cfg.Metrics.Address != "" {
		mmux := http.NewServeMux()
		mmux.Handle("GET /metrics", a.metrics.Handler())
		msrv := &http.Server{
			Handler:           mmux,
			ReadHeaderTimeout: cfg.Server.ReadHeaderTimeout,
			IdleTimeout:       cfg.Server.IdleTimeout,
			ErrorLog:          errorLog,
		}
		mln, err := net.Listen("tcp", cfg.Metrics.Address)
		if err != nil {
			_ = ln.Close()
			return nil, fmt.Errorf("server: metrics: %w", err)
		}
		l.servers = append(l.servers, msrv)
		l.sockets = append(l.sockets, mln)
	}
	if err := a.listenAdmin(l); err != nil {
		for _, s := range l.sockets {
			_ = s.Close()
		}
		return nil, err
	}
	return l, nil
}

// serve serves every listener in its own goroutine; the channel receives
// each one's result (nil after Shutdown).
func (l *listeners) serve(logger *slog.Logger) <-chan error {
	errc := make(chan error, len(l.servers))
	for i, srv := range l.servers {
		ln := l.sockets[i]
		tlsOn := srv.TLSConfig != nil
		switch {
		case i == 0:
			logger.Info("listening", "addr", ln.Addr().String(), "tls", tlsOn)
		case srv == l.admin:
			logger.Info("admin listening", "addr", ln.Addr().String(), "serves", "/debug/pprof/ /debug/runtime /debug/vars")
		default:
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
	return errc
}

// shutdown closes the listeners and gives in-flight requests timeout to
// finish, then closes what is left.
func (l *listeners) shutdown(ctx context.Context, timeout time.Duration, logger *slog.Logger) error {
	// A fresh context: ctx is already cancelled, and in-flight requests must
	// get their time to finish.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	var shutdownErr error
	for _, srv := range l.servers {
		if err := srv.Shutdown(sctx); err != nil {
			logger.Warn("shutdown timed out; closing remaining connections", "err", err)
			_ = srv.Close()
			shutdownErr = fmt.Errorf("server: shutdown: %w", err)
		}
	}
	return shutdownErr
}

func writeText(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}
