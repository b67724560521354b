package server

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/berth-registry/berth/internal/config"
	"github.com/berth-registry/berth/internal/gc"
	"github.com/berth-registry/berth/internal/storage/s3"
)

// CollectGarbage runs garbage collection once on the storage cfg names, with
// cfg's [gc] settings and now as the clock (berth gc).
func CollectGarbage(ctx context.Context, cfg *config.Config, dryRun bool, now func() time.Time, logger *slog.Logger) (gc.Report, error) {
	var locker s3.Locker
	if cfg.BlobStore.S3 != nil && cfg.Cache.Redis == nil && !dryRun {
		logger.Warn("gc: S3 without [cache.redis]: this process's blob locks do not reach a running server's, " +
			"so a push reusing a blob unused for the whole grace period could race its deletion; " +
			"run collection in the server ([gc] interval) or configure [cache.redis] (docs/gc.md)")
	}
	// The same blob locks as the replicas: no push can slip between a
	// deletion's check and the deletion (internal/storage/s3/gc.go).
	red, err := openShared(ctx, cfg, logger)
	if err != nil {
		return gc.Report{}, err
	}
	if red != nil {
		defer red.Close()
		locker = red
	}
	store, err := OpenStore(ctx, cfg, logger, locker)
	if err != nil {
		return gc.Report{}, err
	}
	c, ok := store.(gc.Store)
	if !ok {
		return gc.Report{}, fmt.Errorf("server: %T does not support garbage collection", store)
	}
	// With Redis, the running replicas drop what this run unlinks from
	// their manifest caches; without, their manifest_ttl bounds it.
	return gc.Run(ctx, collectorWithCache(c, newManifestCache(config.Cache{}, red, now, logger)), gcOptions(cfg.GC, dryRun, now, logger))
}

func gcOptions(c config.GC, dryRun bool, now func() time.Time, logger *slog.Logger) gc.Options {
	return gc.Options{GracePeriod: c.GracePeriod, DeleteUntagged: c.DeleteUntagged, DryRun: dryRun, Now: now, Logger: logger}
}
