package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/berth-registry/berth/internal/access"
	"github.com/berth-registry/berth/internal/auth/oidc"
	"github.com/berth-registry/berth/internal/auth/token"
	"github.com/berth-registry/berth/internal/config"
	"github.com/berth-registry/berth/internal/manifestcache"
	"github.com/berth-registry/berth/internal/metrics"
	"github.com/berth-registry/berth/internal/redisstate"
	"github.com/berth-registry/berth/internal/registry"
	"github.com/berth-registry/berth/internal/storage"
	"github.com/berth-registry/berth/internal/storage/s3"
	"github.com/berth-registry/berth/internal/tracing"
	"github.com/berth-registry/berth/internal/ui"
)

// app is berth built from one configuration: what serve listens with and
// runs in the background. build makes it, close releases it. Use it by
// pointer only (it holds an atomic.Pointer).
type app struct {
	cfg          *config.Config // as at startup: reloads compare against it
	log          *slog.Logger
	now          func() time.Time
	readyTimeout time.Duration

	store  storage.Store
	shared *redisstate.Redis // [cache.redis], opened once here; nil without

	cur     atomic.Pointer[runState] // the running configuration's authentication and policies
	gate    *access.Gate             // serves cur's state to the handlers
	tokens  *token.Service           // nil when the token service is off
	metrics *metrics.Metrics         // nil when [metrics] is off
	// manifests caches manifest reads ([cache] manifest_bytes); nil when off.
	manifests *manifestcache.Cache
	ui        *ui.UI // nil when [ui] is off

	tlsConfig *tls.Config  // nil: plain HTTP
	handler   http.Handler // the API listener's: /v2/, /token, the UI, probes

	// configPath is reloaded on SIGHUP (hup) and when it changes; "" disables.
	configPath string
	hup        chan os.Signal
	reloadMu   sync.Mutex // one reload at a time; guards lastConfig
	lastConfig []byte     // configPath's content the running state came from

	tracer *tracing.Tracer // nil when [tracing] is off (see tracing.go)
}

// build opens storage and shared state and builds verifiers, policies, the
// token service, the UI and the handlers for cfg. Nothing listens yet. On
// an error, everything opened so far is closed again.
func build(ctx context.Context, cfg *config.Config, logger *slog.Logger, o options) (*app, error) {
	// Refuse a broken configuration before opening any socket: a bad TLS
	// table must never degrade to plain HTTP.
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("server: invalid configuration:\n%w", err)
	}
	a := &app{cfg: cfg, log: logger, now: o.now, readyTimeout: o.readyTimeout, configPath: o.configPath, store: o.store}
	if err := a.open(ctx); err != nil {
		a.close()
		return nil, err
	}
	return a, nil
}

func (a *app) open(ctx context.Context) error {
	var err error
	if a.tlsConfig, err = loadTLS(a.cfg); err != nil {
		return err
	}
	if a.tracer, err = tracing.New(ctx, a.cfg.Tracing, "", a.log); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	if a.shared, err = openShared(ctx, a.cfg, a.log); err != nil {
		return err
	}
	if a.store == nil {
		if a.store, err = OpenStore(ctx, a.cfg, a.log, a.locker()); err != nil {
			return err
		}
	}
	if err := a.buildAuth(); err != nil {
		return err
	}
	if err := a.buildHandler(ctx); err != nil {
		return err
	}
	a.handler = a.tracer.Handler(a.handler) // itself when tracing is off
	if a.configPath != "" {
		// Read before anything can change it, and catch SIGHUP from now
		// on so that an early signal does not terminate the process.
		a.lastConfig, _ = os.ReadFile(a.configPath)
		a.hup = make(chan os.Signal, 1)
		signal.Notify(a.hup, syscall.SIGHUP)
	}
	return nil
}

// close releases what build opened.
func (a *app) close() {
	if a.hup != nil {
		signal.Stop(a.hup)
	}
	if st := a.cur.Load(); st != nil {
		st.close()
	}
	if a.shared != nil {
		_ = a.shared.Close()
	}
	a.closeTracer()
}

func loadTLS(cfg *config.Config) (*tls.Config, error) {
	if !cfg.TLSEnabled() {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(cfg.Server.TLS.CertificateBundle, cfg.Server.TLS.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("server: load TLS certificate: %w", err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}, nil
}

// locker returns the cross-replica upload lock, nil without Redis (never a
// typed nil in the interface).
func (a *app) locker() s3.Locker {
	if a.shared == nil {
		return nil
	}
	return a.shared
}

// sharedCache returns the OIDC key-set and verified-token cache shared by
// replicas, nil without Redis.
func (a *app) sharedCache() oidc.SharedCache {
	if a.shared == nil {
		return nil
	}
	return a.shared
}

// buildAuth compiles the configuration's verifiers, users and policies and
// puts them behind the gate.
func (a *app) buildAuth() error {
	st, err := buildState(a.cfg, a.log, a.now, a.sharedCache(), a.tracer.Transport)
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	st.failures = &access.LocalFailures{Now: a.now}
	if a.shared != nil {
		st.failures = a.shared // the failed-authentication limit holds across replicas
	}
	st.limitFailures(a.cfg, st.failures, a.log)
	a.cur.Store(st)
	a.gate = access.NewGate(st.gate, a.log)
	logStartupWarnings(a.cfg, a.log)
	return nil
}

// buildHandler builds the API listener's handler: /v2/, the token service,
// the UI, the probes and (without a metrics address of its own) /metrics.
func (a *app) buildHandler(ctx context.Context) error {
	reg, err := a.registry()
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/v2/", reg)
	if st := a.cur.Load(); st.service != "" {
		if a.tokens, err = a.newTokenService(); err != nil {
			return fmt.Errorf("server: token service: %w", err)
		}
		st.gate.Authn.Tokens = a.tokens
		mux.Handle("/token", a.tokens)
		mux.Handle("/token/", a.tokens)
	}
	if a.cfg.UI.Enabled {
		if a.ui, err = a.newUI(ctx); err != nil {
			return fmt.Errorf("server: web UI: %w", err)
		}
		mux.Handle("/", a.ui)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeText(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("GET /readyz", a.readyz)
	if a.metrics != nil && a.cfg.Metrics.Address == "" {
		mux.Handle("GET /metrics", a.metrics.Handler())
	}
	a.handler = access.Proxies(a.cfg.Server.TrustedProxies).Handler(v2First{v2: reg, mux: mux})
	return nil
}

// v2First sends a clean /v2/ path straight to the API, as the mux would,
// without the mux's pattern matching (a measurable share of a cached
// manifest GET); everything else, and any path the mux would clean or
// redirect, goes through the mux.
type v2First struct {
	v2, mux http.Handler
}

func (h v2First) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p := r.URL.Path; r.Method != http.MethodConnect && strings.HasPrefix(p, "/v2/") && path.Clean(p) == p {
		h.v2.ServeHTTP(w, r)
		return
	}
	h.mux.ServeHTTP(w, r)
}

// registry builds the /v2 API (and the metrics it reports to).
func (a *app) registry() (http.Handler, error) {
	cfg, gate := a.cfg, a.gate
	a.manifests = newManifestCache(cfg.Cache, a.shared, a.now, a.log)
	ropts := registry.Options{
		Manifests:       a.manifests,
		Store:           a.store,
		Logger:          a.log,
		MaxManifestSize: cfg.Limits.MaxManifestSize,
		MaxBlobSize:     cfg.Limits.MaxBlobSize,
		AllowSparse:     cfg.Manifests.AllowSparse,
		// In open mode every caller may read every repository, so a mount
		// without from leaks nothing; otherwise it would.
		MountWithoutFrom: PolicyConfig(cfg).Open,
		Now:              a.now,
		Authorizer:       gate,
		CanList:          gate.CanList,
		Immutable: func(repo, tag string) bool {
			imm := gate.Load().Immutable
			return imm != nil && imm.Protected(repo, tag)
		},
	}
	if cfg.Metrics.Enabled {
		a.metrics = metrics.New()
		ropts.Metrics = a.metrics // only when enabled: a typed nil would not be nil in the interface
	}
	if sc := cfg.BlobStore.S3; sc != nil && sc.EnableBlobRedirect {
		r, ok := a.store.(registry.BlobRedirector)
		if !ok {
			return nil, fmt.Errorf("server: blob_store.s3.enable_blob_redirect: %T cannot presign URLs", a.store)
		}
		ropts.BlobRedirect = r
	}
	a.traceRegistry(&ropts)
	return registry.New(ropts), nil
}

// readyz answers /readyz: ready while storage (and Redis, when configured)
// answer a ping within readyTimeout.
func (a *app) readyz(w http.ResponseWriter, r *http.Request) {
	pctx, cancel := context.WithTimeout(r.Context(), a.readyTimeout)
	defer cancel()
	if err := a.store.Ping(pctx); err != nil {
		a.log.Warn("not ready: storage ping failed", "err", err)
		writeText(w, http.StatusServiceUnavailable, "storage unavailable")
		return
	}
	if a.shared != nil {
		if err := a.shared.Ping(pctx); err != nil {
			a.log.Warn("not ready: redis ping failed", "err", err)
			writeText(w, http.StatusServiceUnavailable, "redis unavailable")
			return
		}
	}
	writeText(w, http.StatusOK, "ok")
}
