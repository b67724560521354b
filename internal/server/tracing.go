package server

import (
	"context"
	"time"

	"github.com/berth-registry/berth/internal/registry"
)

// traceRegistry puts the tracing decorators around what the /v2 API is
// built with: its store, its authorizer and the gate's authentication and
// policy steps. With tracing off it changes nothing.
func (a *app) traceRegistry(o *registry.Options) {
	if a.tracer == nil {
		return
	}
	o.Store = a.tracer.Store(o.Store)
	o.Authorizer = a.tracer.Authorizer(o.Authorizer)
	a.gate.Tracer = a.tracer.Access()
}

// closeTracer exports the spans still buffered, for at most 5 s.
func (a *app) closeTracer() {
	if a.tracer == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.tracer.Shutdown(ctx); err != nil {
		a.log.Warn("tracing: spans not exported at shutdown", "err", err)
	}
}
