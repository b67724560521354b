package server

import (
	"encoding/json"
	"errors"
	"expvar"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime"
	"syscall"
	"time"

	"github.com/berth-registry/berth/internal/config"
)

// defaultAdminPort is config.DefaultAdminAddress's port.
const defaultAdminPort = 5001

// adminHandler serves the admin listener ([admin] bind_address): pprof,
// expvar and the runtime statistics. It is never part of the API listener's
// handler: pprof exposes memory contents.
func adminHandler(started time.Time) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index) // and the named profiles: heap, goroutine, allocs, ...
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.Handle("GET /debug/vars", expvar.Handler())
	mux.HandleFunc("GET /debug/runtime", func(w http.ResponseWriter, r *http.Request) {
		writeRuntimeStats(w, started)
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		writeText(w, http.StatusOK, "berth admin: /debug/pprof/ /debug/runtime /debug/vars\n")
	})
	return mux
}

// runtimeStats is what /debug/runtime answers.
type runtimeStats struct {
	Goroutines    int              `json:"goroutines"`
	GOMAXPROCS    int              `json:"gomaxprocs"`
	NumCPU        int              `json:"num_cpu"`
	GoVersion     string           `json:"go_version"`
	UptimeSeconds float64          `json:"uptime_seconds"`
	MemStats      runtime.MemStats `json:"memstats"`
}

func writeRuntimeStats(w http.ResponseWriter, started time.Time) {
	s := runtimeStats{Goroutines: runtime.NumGoroutine(), GOMAXPROCS: runtime.GOMAXPROCS(0), NumCPU: runtime.NumCPU(),
		GoVersion: runtime.Version(), UptimeSeconds: time.Since(started).Seconds()}
	runtime.ReadMemStats(&s.MemStats)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(&s)
}

// listenAdmin opens the admin listener's socket into l, unless [admin] is
// off. The default address is best effort: taken (another berth on the
// host), it is logged and skipped; an address written in the file that
// cannot be bound is an error.
func (a *app) listenAdmin(l *listeners) error {
	cfg := a.cfg
	if !cfg.AdminEnabled() {
		return nil
	}
	if !cfg.AdminExplicit() && cfg.Admin.BindAddress == config.DefaultAdminAddress && cfg.Server.Port == defaultAdminPort {
		a.log.Info("admin listener off: the registry listens on its default port; set [admin] bind_address", "addr", cfg.Admin.BindAddress)
		return nil
	}
	ln, err := net.Listen("tcp", cfg.Admin.BindAddress)
	if err != nil {
		if !cfg.AdminExplicit() && errors.Is(err, syscall.EADDRINUSE) {
			a.log.Info("admin listener off: its default address is in use; set [admin] bind_address", "addr", cfg.Admin.BindAddress)
			return nil
		}
		return fmt.Errorf("server: admin: %w", err)
	}
	srv := &http.Server{
		Handler:           adminHandler(a.now()),
		ReadHeaderTimeout: cfg.Server.ReadHeaderTimeout,
		IdleTimeout:       cfg.Server.IdleTimeout,
		ErrorLog:          l.servers[0].ErrorLog,
	}
	l.servers = append(l.servers, srv)
	l.sockets = append(l.sockets, ln)
	l.admin = srv
	return nil
}
