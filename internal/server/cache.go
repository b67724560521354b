package server

import (
	"context"
	"log/slog"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/config"
	"github.com/berth-registry/berth/internal/gc"
	"github.com/berth-registry/berth/internal/manifestcache"
	"github.com/berth-registry/berth/internal/redisstate"
	"github.com/berth-registry/berth/internal/storage"
)

// newManifestCache builds the [cache] manifest cache; with Redis it
// publishes its invalidations to the other replicas (also with a budget of
// 0, for the replicas that cache). nil: off.
func newManifestCache(c config.Cache, red *redisstate.Redis, now func() time.Time, logger *slog.Logger) *manifestcache.Cache {
	o := manifestcache.Options{MaxBytes: c.ManifestBytes, TTL: c.ManifestTTL, Now: now, Logger: logger}
	if red != nil {
		o.Bus = red // only when set: a typed nil would not be nil in the interface
	}
	return manifestcache.New(o)
}

// receiveInvalidations applies the other replicas' invalidations to the
// cache until ctx is done (with Redis and a cache only).
func (a *app) receiveInvalidations(ctx context.Context) {
	if a.shared == nil || a.manifests == nil {
		return
	}
	a.shared.ManifestInvalidations(ctx, a.manifests.Receive, a.manifests.Flush)
}

// cacheInvalidatingStore is the store the web UI writes through: its
// deletions drop the manifest cache's entries like the API's do.
type cacheInvalidatingStore struct {
	storage.Store
	c *manifestcache.Cache
}

func (s cacheInvalidatingStore) DeleteTag(ctx context.Context, repo, tag string) error {
	err := s.Store.DeleteTag(ctx, repo, tag)
	s.c.TagsChanged(ctx, repo, tag)
	return err
}

func (s cacheInvalidatingStore) DeleteManifest(ctx context.Context, repo string, d digest.Digest) error {
	err := s.Store.DeleteManifest(ctx, repo, d)
	s.c.ManifestDeleted(ctx, repo, d)
	return err
}

func (s cacheInvalidatingStore) PutManifest(ctx context.Context, repo string, req storage.PutManifestRequest) error {
	err := s.Store.PutManifest(ctx, repo, req)
	s.c.ManifestPut(ctx, repo, req.Manifest.Digest, req.Tags)
	return err
}

// gcStore is what garbage collection deletes through: each manifest it
// unlinks leaves the manifest cache (here and, through Redis, on every
// replica) before the run goes on.
type gcStore struct {
	gc.Store
	c *manifestcache.Cache
}

func (s gcStore) DeleteUntaggedManifest(ctx context.Context, repo string, d digest.Digest, cutoff time.Time) error {
	err := s.Store.DeleteUntaggedManifest(ctx, repo, d, cutoff)
	if err == nil {
		s.c.ManifestDeleted(ctx, repo, d)
	}
	return err
}

// gcTempStore keeps the optional storage.TempCollector of the backend.
type gcTempStore struct {
	gcStore
	t storage.TempCollector
}

func (s gcTempStore) WalkTempFiles(ctx context.Context, fn func(storage.TempFile) error) error {
	return s.t.WalkTempFiles(ctx, fn)
}

func (s gcTempStore) DeleteTempFile(ctx context.Context, path string, cutoff time.Time) (int64, error) {
	return s.t.DeleteTempFile(ctx, path, cutoff)
}

// collectorWithCache wraps st so that garbage collection invalidates c (nil:
// st itself).
func collectorWithCache(st gc.Store, c *manifestcache.Cache) gc.Store {
	if c == nil {
		return st
	}
	g := gcStore{Store: st, c: c}
	if t, ok := st.(storage.TempCollector); ok {
		return gcTempStore{gcStore: g, t: t}
	}
	return g
}
