package server

import (
	"log/slog"
	"time"

	"github.com/berth-registry/berth/internal/auth/token"
	"github.com/berth-registry/berth/internal/authn"
	"github.com/berth-registry/berth/internal/config"
	"github.com/berth-registry/berth/internal/storage"
	"github.com/berth-registry/berth/internal/ui"
)

// newUI builds the web UI ([ui] enabled): it reads the same store and asks
// the same gate as the /v2 API, and signs users in with the token service's
// session tokens (nobody can sign in when the token service is off).
func newUI(cfg *config.Config, store storage.Store, gate *authn.Gate, tokens *token.Service, logger *slog.Logger, now func() time.Time) (*ui.UI, error) {
	o := ui.Options{Name: cfg.UI.Name, Store: store, Gate: gate, Logger: logger, Now: now}
	if tokens != nil {
		o.Sessions = tokens // only when set: a typed nil would not be nil in the interface
	}
	return ui.New(o)
}
