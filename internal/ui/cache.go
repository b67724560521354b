package ui

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/singleflight"

	"github.com/berth-registry/berth/internal/storage"
)

// maxCached bounds each cache; when full, expired entries go first, then all.
const maxCached = 4096

// ttlCache is a small map with expiry and one load per key at a time.
type ttlCache[V any] struct {
	mu    sync.Mutex
	ttl   time.Duration
	now   func() time.Time
	items map[string]entry[V]
	group singleflight.Group
}

type entry[V any] struct {
	v       V
	expires time.Time
}

func (c *ttlCache[V]) get(ctx context.Context, key string, load func(ctx context.Context) (V, error)) (V, error) {
	now := c.now()
	c.mu.Lock()
	if e, ok := c.items[key]; ok && now.Before(e.expires) {
		c.mu.Unlock()
		return e.v, nil
	}
	c.mu.Unlock()
	v, err, _ := c.group.Do(key, func() (any, error) {
		v, err := load(context.WithoutCancel(ctx))
		if err != nil {
			return v, err
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if len(c.items) >= maxCached {
			for k, e := range c.items {
				if !now.Before(e.expires) {
					delete(c.items, k)
				}
			}
			if len(c.items) >= maxCached {
				clear(c.items)
			}
		}
		c.items[key] = entry[V]{v: v, expires: c.now().Add(c.ttl)}
		return v, nil
	})
	return v.(V), err
}

func (c *ttlCache[V]) forget(key string) {
	c.mu.Lock()
	delete(c.items, key)
	c.mu.Unlock()
}

// statsCache caches storage.StatRepository per repository.
type statsCache struct {
	ttlCache[storage.RepositoryInfo]
	store storage.Store
}

func newStatsCache(st storage.Store, ttl time.Duration, now func() time.Time) *statsCache {
	return &statsCache{ttlCache: ttlCache[storage.RepositoryInfo]{ttl: ttl, now: now, items: map[string]entry[storage.RepositoryInfo]{}}, store: st}
}

// page returns the summaries of repos (one page), loading up to 8 at once.
func (c *statsCache) page(ctx context.Context, repos []string) ([]storage.RepositoryInfo, error) {
	out := make([]storage.RepositoryInfo, len(repos))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, repo := range repos {
		g.Go(func() error {
			info, err := c.get(gctx, repo, func(ctx context.Context) (storage.RepositoryInfo, error) {
				return c.store.StatRepository(ctx, repo)
			})
			out[i] = info
			out[i].Name = repo
			return err
		})
	}
	return out, g.Wait()
}

// tagMapCache caches, per repository, which tags point at each manifest:
// the manifests view marks untagged manifests with it. Building it resolves
// every tag of the repository (that one repository only).
type tagMapCache struct {
	ttlCache[map[digest.Digest][]string]
	store storage.Store
}

func newTagMapCache(st storage.Store, ttl time.Duration, now func() time.Time) *tagMapCache {
	return &tagMapCache{ttlCache: ttlCache[map[digest.Digest][]string]{ttl: ttl, now: now, items: map[string]entry[map[digest.Digest][]string]{}}, store: st}
}

func (c *tagMapCache) tags(ctx context.Context, repo string) (map[digest.Digest][]string, error) {
	return c.get(ctx, repo, func(ctx context.Context) (map[digest.Digest][]string, error) {
		tags, err := c.store.ListTags(ctx, repo, "", -1)
		if err != nil {
			return nil, err
		}
		ds := make([]digest.Digest, len(tags))
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(8)
		for i, t := range tags {
			g.Go(func() error {
				d, err := c.store.ResolveTag(gctx, repo, t)
				if err == nil {
					ds[i] = d
				}
				return nil // a tag deleted meanwhile is simply absent
			})
		}
		_ = g.Wait()
		m := map[digest.Digest][]string{}
		for i, d := range ds {
			if d != "" {
				m[d] = append(m[d], tags[i])
			}
		}
		for _, v := range m {
			slices.Sort(v)
		}
		return m, nil
	})
}
