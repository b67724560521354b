package server

import (
	"context"
	"sync"
	"time"

	"github.com/berth-registry/berth/internal/gc"
)

// runTasks starts the background tasks in wg; they run until ctx is done:
// the purge of expired upload sessions, the pruning of dead token records,
// the signing keys' rotation, garbage collection and the configuration's
// reload.
func (a *app) runTasks(ctx context.Context, wg *sync.WaitGroup) {
	u := a.cfg.Uploads
	// Expired upload sessions: once at startup, then periodically.
	wg.Go(func() {
		a.try(ctx, "purging expired uploads", a.purgeUploads)
		a.every(ctx, u.PurgeInterval, "purging expired uploads", a.purgeUploads)
	})
	if a.tokens != nil {
		// Without Redis, dead refresh/session token records are files:
		// remove them as often as expired uploads, not only at startup
		// (token.New prunes once).
		wg.Go(func() {
			a.every(ctx, u.PurgeInterval, "pruning dead refresh/session tokens", a.pruneTokens(a.tokens))
		})
		// Generated signing keys: rotate when due, follow other replicas
		// (its own schedule: the next key's due time).
		wg.Go(func() { a.tokens.RunKeyRotation(ctx) })
	}
	if a.cfg.GC.Interval > 0 {
		if st, ok := a.store.(gc.Store); !ok {
			a.log.Warn("gc.interval is set but the storage backend does not support garbage collection")
		} else {
			wg.Go(func() { a.every(ctx, a.cfg.GC.Interval, "garbage collection", a.collectGarbage(st)) })
		}
	}
	if a.shared != nil && a.manifests != nil {
		wg.Go(func() { a.receiveInvalidations(ctx) })
	}
	if a.hup != nil {
		wg.Go(func() { a.every(ctx, reloadPoll, "checking the configuration file", a.pollConfig) })
		wg.Go(func() { a.onSIGHUP(ctx) })
	}
}

// every runs fn every interval until ctx is done, the first time one
// interval from now. A failure is logged as "<name> failed" and does not
// stop the schedule.
func (a *app) every(ctx context.Context, interval time.Duration, name string, fn func(context.Context) error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		a.try(ctx, name, fn)
	}
}

// try runs fn once and logs its failure, unless ctx ended meanwhile.
func (a *app) try(ctx context.Context, name string, fn func(context.Context) error) {
	if err := fn(ctx); err != nil && ctx.Err() == nil {
		a.log.Warn(name+" failed", "err", err)
	}
}

// purgeUploads removes upload sessions older than [uploads] expiry.
func (a *app) purgeUploads(ctx context.Context) error {
	n, err := a.store.PurgeUploads(ctx, a.now().Add(-a.cfg.Uploads.Expiry))
	if err == nil && n > 0 {
		a.log.Info("purged expired uploads", "count", n, "expiry", a.cfg.Uploads.Expiry)
	}
	return err
}

// tokenPruner removes dead refresh/session token records (*token.Service).
type tokenPruner interface {
	Prune() (int, error)
}

// pruneTokens is the task that prunes p's dead token records.
func (a *app) pruneTokens(p tokenPruner) func(context.Context) error {
	return func(context.Context) error {
		n, err := p.Prune()
		if err == nil && n > 0 {
			a.log.Info("pruned dead refresh/session tokens", "count", n)
		}
		return err
	}
}

// collectGarbage is the task that collects st's garbage with the [gc]
// settings and reports each finished run to the metrics.
func (a *app) collectGarbage(st gc.Store) func(context.Context) error {
	return func(ctx context.Context) error {
		rep, err := gc.Run(ctx, collectorWithCache(st, a.manifests), gcOptions(a.cfg.GC, false, a.now, a.log))
		if ctx.Err() == nil {
			a.metrics.ObserveGC(rep.Blobs, rep.Bytes+rep.TempBytes, rep.Manifests, rep.Duration, err)
		}
		return err
	}
}
