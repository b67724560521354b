// Package manifestcache keeps manifests and tag resolutions in memory for the
// registry's manifest GET and HEAD, within a bytes budget.
//
// Manifests are content addressed, so an entry (repository, digest) never
// changes; it can only stop existing (a delete, garbage collection). Tags
// move. Every write that can change an answer drops the entries it affects
// before the request is acknowledged:
//
//	tag push or delete          → TagsChanged(repo, tags...)
//	manifest delete, gc unlink  → ManifestDeleted(repo, d) (and every tag of repo:
//	                              a manifest delete removes the tags pointing at it)
//
// and, with a Bus (Redis pub/sub between replicas), publishes the same
// invalidation so the other replicas drop theirs; Receive applies one.
//
// Correctness rules (MUST):
//   - A reader takes a Ticket BEFORE it reads storage and passes it to Add.
//     An invalidation of the repository between the two makes Add a no-op, so a
//     read that raced a delete can never put the deleted manifest back.
//   - Every entry expires after the TTL: that bounds how long a replica can
//     serve an answer whose invalidation message was lost (pub/sub drops
//     messages while a subscriber reconnects; berth gc in another process
//     without Redis publishes nothing). A resubscribe calls Flush.
//
// Entries are evicted by a second-chance (CLOCK) sweep: a hit only sets a flag
// under the read lock, so concurrent GETs do not serialize on a list update.
// A nil *Cache is valid and caches nothing.
package manifestcache

import (
	"container/list"
	"context"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/storage"
)

// Bus carries invalidations to the other replicas. *redisstate.Redis
// implements it through pub/sub.
type Bus interface {
	PublishManifestInvalidation(ctx context.Context, msg string) error
}

// Options configures a cache.
type Options struct {
	// MaxBytes is the memory budget (manifest bytes plus a fixed overhead
	// per entry). 0 or less caches nothing; the cache then still publishes
	// invalidations on Bus, for the replicas that cache (and berth gc).
	MaxBytes int64
	// TTL bounds the age of an entry (default 5s).
	TTL time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Bus, when set, publishes every local invalidation to the other replicas.
	Bus    Bus
	Logger *slog.Logger
}

// DefaultTTL is the TTL when none is configured.
const DefaultTTL = 5 * time.Second

// entryOverhead is what an entry costs beyond its bytes and strings: the
// item, its list element, its map slot and the shared header map.
const entryOverhead = 512

// stripes is the number of invalidation generations (repositories hash onto them).
const stripes = 64

// publishTimeout bounds a Publish on the request path: an unreachable Redis
// delays a write by at most this; the TTL then bounds the other replicas.
const publishTimeout = 500 * time.Millisecond

// Entry is a cached manifest with its response headers prebuilt. Entries are
// shared by concurrent requests: NEVER modify one (nor its Header's slices).
type Entry struct {
	storage.Manifest
	// Header holds Content-Type, Docker-Content-Digest, ETag and
	// Content-Length, each a one-element slice with no spare capacity (an
	// append copies), ready to be put into a response's header map.
	Header http.Header
	// ETag is the quoted digest, for If-None-Match.
	ETag string
}

// NewEntry builds the entry of m.
func NewEntry(m storage.Manifest) *Entry {
	d := m.Digest.String()
	etag := `"` + d + `"`
	one := func(s string) []string { return []string{s}[:1:1] }
	return &Entry{Manifest: m, ETag: etag, Header: http.Header{
		"Content-Type":          one(m.MediaType),
		"Docker-Content-Digest": one(d),
		"Etag":                  one(etag),
		"Content-Length":        one(strconv.Itoa(len(m.Data))),
	}}
}

// Ticket is the invalidation generation of a repository when a reader
// started reading storage.
type Ticket struct {
	stripe uint32
	gen    uint64
	ok     bool
}

// Cache is the cache. Its methods are safe for concurrent use.
type Cache struct {
	max    int64
	ttl    time.Duration
	now    func() time.Time
	bus    Bus
	log    *slog.Logger
	origin string // prefixes published messages; Receive skips its own

	gens [stripes]atomic.Uint64

	mu    sync.RWMutex
	repos map[string]*repoItems
	clock *list.List // of *item, oldest insert first
	size  int64
}

type repoItems struct {
	manifests map[digest.Digest]*item
	tags      map[string]*item
}

type item struct {
	repo  string
	tag   string        // "" for a manifest
	d     digest.Digest // the manifest's digest, or the tag's target
	e     *Entry        // nil for a tag
	size  int64
	added time.Time
	used  atomic.Bool
	elem  *list.Element
}

// New returns a cache, or nil (nothing to cache, nobody to tell) when
// o.MaxBytes is 0 or less and o.Bus is nil.
func New(o Options) *Cache {
	if o.MaxBytes <= 0 && o.Bus == nil {
		return nil
	}
	o.MaxBytes = max(o.MaxBytes, 0)
	c := &Cache{max: o.MaxBytes, ttl: o.TTL, now: o.Now, bus: o.Bus, log: o.Logger,
		repos: map[string]*repoItems{}, clock: list.New()}
	if c.ttl <= 0 {
		c.ttl = DefaultTTL
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.origin = strconv.FormatInt(time.Now().UnixNano(), 36) + strconv.FormatUint(uint64(rand.Uint32()), 36)
	return c
}

// Size is the bytes the cache accounts for now (never more than the budget).
func (c *Cache) Size() int64 {
	if c == nil {
		return 0
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.size
}

// Len is the number of entries, manifests and tags.
func (c *Cache) Len() int {
	if c == nil {
		return 0
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.clock.Len()
}

func stripeOf(repo string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(repo); i++ {
		h = (h ^ uint32(repo[i])) * 16777619
	}
	return h % stripes
}

// Ticket returns repo's generation; take it before reading storage.
func (c *Cache) Ticket(repo string) Ticket {
	if c == nil {
		return Ticket{}
	}
	s := stripeOf(repo)
	return Ticket{stripe: s, gen: c.gens[s].Load(), ok: true}
}

// fresh reports whether it may still be served.
func (c *Cache) fresh(it *item, now time.Time) bool {
	return now.Sub(it.added) < c.ttl
}

// Manifest returns the cached manifest d of repo.
func (c *Cache) Manifest(repo string, d digest.Digest) (*Entry, bool) {
	if c == nil || c.max == 0 {
		return nil, false
	}
	now := c.now()
	c.mu.RLock()
	var it *item
	if r := c.repos[repo]; r != nil {
		it = r.manifests[d]
	}
	c.mu.RUnlock()
	if it == nil || !c.fresh(it, now) {
		return nil, false
	}
	if !it.used.Load() {
		it.used.Store(true)
	}
	return it.e, true
}

// Tag returns the cached target of repo:tag.
func (c *Cache) Tag(repo, tag string) (digest.Digest, bool) {
	if c == nil || c.max == 0 {
		return "", false
	}
	now := c.now()
	c.mu.RLock()
	var it *item
	if r := c.repos[repo]; r != nil {
		it = r.tags[tag]
	}
	c.mu.RUnlock()
	if it == nil || !c.fresh(it, now) {
		return "", false
	}
	if !it.used.Load() {
		it.used.Store(true)
	}
	return it.d, true
}

// AddManifest caches e under repo unless repo was invalidated since t was
// taken, or e is over an eighth of the budget.
func (c *Cache) AddManifest(t Ticket, repo string, e *Entry) {
	if c == nil {
		return
	}
	size := int64(entryOverhead + len(repo) + 2*len(e.Digest) + len(e.MediaType) + len(e.Data))
	c.add(t, &item{repo: repo, d: e.Digest, e: e, size: size})
}

// AddTag caches repo:tag → d unless repo was invalidated since t was taken.
func (c *Cache) AddTag(t Ticket, repo, tag string, d digest.Digest) {
	if c == nil {
		return
	}
	c.add(t, &item{repo: repo, tag: tag, d: d, size: int64(entryOverhead/2 + len(repo) + len(tag) + len(d))})
}

func (c *Cache) add(t Ticket, it *item) {
	if !t.ok || it.size > c.max/8 { // also: a budget of 0 stores nothing
		return
	}
	it.added = c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gens[t.stripe].Load() != t.gen {
		return // invalidated while the reader read storage
	}
	r := c.repos[it.repo]
	if r == nil {
		r = &repoItems{manifests: map[digest.Digest]*item{}, tags: map[string]*item{}}
		c.repos[it.repo] = r
	}
	if it.tag == "" {
		if old := r.manifests[it.d]; old != nil {
			c.unlink(old)
		}
		r.manifests[it.d] = it
	} else {
		if old := r.tags[it.tag]; old != nil {
			c.unlink(old)
		}
		r.tags[it.tag] = it
	}
	it.elem = c.clock.PushBack(it)
	c.size += it.size
	c.evict()
}

// evict sweeps from the oldest entry: one used since its last pass gets a
// second chance (moved to the back, flag cleared), others go, until the
// cache is within its budget. Called with mu held.
func (c *Cache) evict() {
	for c.size > c.max {
		el := c.clock.Front()
		it := el.Value.(*item)
		if it.used.Load() && c.fresh(it, c.now()) {
			it.used.Store(false)
			c.clock.MoveToBack(el)
			continue
		}
		c.remove(it)
	}
}

// unlink removes it from the clock and the size; the caller fixes the maps.
func (c *Cache) unlink(it *item) {
	c.clock.Remove(it.elem)
	c.size -= it.size
}

// remove removes it entirely. Called with mu held.
func (c *Cache) remove(it *item) {
	c.unlink(it)
	r := c.repos[it.repo]
	if it.tag == "" {
		delete(r.manifests, it.d)
	} else {
		delete(r.tags, it.tag)
	}
	if len(r.manifests) == 0 && len(r.tags) == 0 {
		delete(c.repos, it.repo)
	}
}

// Invalidation messages: "<origin> t <repo> <tag>" (tag deleted), "<origin>
// p <repo> <digest> [<tag>...]" (manifest pushed), "<origin> m <repo>
// <digest>" (manifest deleted), "<origin> r <repo>". Names, tags and digests
// contain no space.

// TagsChanged drops repo's entries of tags (pushed, moved or deleted) here
// and, through the bus, on the other replicas.
func (c *Cache) TagsChanged(ctx context.Context, repo string, tags ...string) {
	if c == nil || len(tags) == 0 {
		return
	}
	c.dropTags(repo, tags)
	for _, t := range tags {
		c.publish(ctx, "t "+repo+" "+t)
	}
}

// ManifestPut drops repo's entries of tags (now pointing at d) and of d
// itself (a re-push may record another media type) here and on the other
// replicas.
func (c *Cache) ManifestPut(ctx context.Context, repo string, d digest.Digest, tags []string) {
	if c == nil {
		return
	}
	c.dropPut(repo, d, tags)
	c.publish(ctx, "p "+repo+" "+string(d)+" "+strings.Join(tags, " "))
}

// ManifestDeleted drops manifest d of repo and every tag of repo (the delete
// removed the tags pointing at d) here and on the other replicas.
func (c *Cache) ManifestDeleted(ctx context.Context, repo string, d digest.Digest) {
	if c == nil {
		return
	}
	c.dropManifest(repo, d)
	c.publish(ctx, "m "+repo+" "+string(d))
}

// RepositoryChanged drops every entry of repo here and on the other replicas.
func (c *Cache) RepositoryChanged(ctx context.Context, repo string) {
	if c == nil {
		return
	}
	c.dropRepo(repo)
	c.publish(ctx, "r "+repo)
}

// Flush drops everything (a resubscribe to the bus: messages may have been
// lost while disconnected).
func (c *Cache) Flush() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.gens {
		c.gens[i].Add(1)
	}
	c.repos = map[string]*repoItems{}
	c.clock.Init()
	c.size = 0
}

// Receive applies an invalidation published by another replica. It ignores
// its own messages and anything it does not understand.
func (c *Cache) Receive(msg string) {
	if c == nil {
		return
	}
	origin, rest, _ := strings.Cut(msg, " ")
	if origin == c.origin {
		return
	}
	f := strings.Split(rest, " ")
	switch {
	case len(f) == 3 && f[0] == "t":
		c.dropTags(f[1], f[2:])
	case len(f) >= 3 && f[0] == "p":
		c.dropPut(f[1], digest.Digest(f[2]), f[3:])
	case len(f) == 3 && f[0] == "m":
		c.dropManifest(f[1], digest.Digest(f[2]))
	case len(f) == 2 && f[0] == "r":
		c.dropRepo(f[1])
	}
}

func (c *Cache) publish(ctx context.Context, msg string) {
	if c.bus == nil {
		return
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
	defer cancel()
	if err := c.bus.PublishManifestInvalidation(pctx, c.origin+" "+msg); err != nil {
		c.log.WarnContext(ctx, "manifest cache: invalidation not published; other replicas may serve the old answer until manifest_ttl",
			"ttl", c.ttl, "err", err)
	}
}

// bump invalidates repo's tickets. Called with mu held.
func (c *Cache) bump(repo string) { c.gens[stripeOf(repo)].Add(1) }

func (c *Cache) dropTags(repo string, tags []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.bump(repo)
	r := c.repos[repo]
	if r == nil {
		return
	}
	for _, t := range tags {
		if it := r.tags[t]; it != nil {
			c.remove(it)
		}
	}
}

func (c *Cache) dropPut(repo string, d digest.Digest, tags []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.bump(repo)
	r := c.repos[repo]
	if r == nil {
		return
	}
	if it := r.manifests[d]; it != nil {
		c.remove(it)
	}
	for _, t := range tags {
		if it := r.tags[t]; it != nil && c.repos[repo] != nil {
			c.remove(it)
		}
	}
}

func (c *Cache) dropManifest(repo string, d digest.Digest) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.bump(repo)
	r := c.repos[repo]
	if r == nil {
		return
	}
	if it := r.manifests[d]; it != nil {
		c.remove(it)
	}
	for _, it := range r.tags {
		c.remove(it)
	}
}

func (c *Cache) dropRepo(repo string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.bump(repo)
	r := c.repos[repo]
	if r == nil {
		return
	}
	for _, it := range r.manifests {
		c.remove(it)
	}
	for _, it := range r.tags {
		c.remove(it)
	}
}
