package manifestcache

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/storage"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func entry(s string) *Entry {
	data := []byte(s)
	return NewEntry(storage.Manifest{Digest: digest.FromBytes(data), MediaType: "application/vnd.oci.image.manifest.v1+json", Data: data})
}

// bus records what is published and can deliver it to other caches.
type bus struct {
	mu   sync.Mutex
	msgs []string
	subs []*Cache
}

func (b *bus) PublishManifestInvalidation(_ context.Context, msg string) error {
	b.mu.Lock()
	b.msgs = append(b.msgs, msg)
	subs := b.subs
	b.mu.Unlock()
	for _, c := range subs {
		c.Receive(msg)
	}
	return nil
}

func TestNilAndOff(t *testing.T) {
	var c *Cache
	c.AddManifest(c.Ticket("r"), "r", entry("x"))
	if _, ok := c.Manifest("r", entry("x").Digest); ok {
		t.Fatal("nil cache hit")
	}
	c.TagsChanged(t.Context(), "r", "v1")
	c.ManifestDeleted(t.Context(), "r", "sha256:x")
	if New(Options{}) != nil {
		t.Fatal("MaxBytes 0 without a bus must be nil")
	}
	// Budget 0 with a bus: stores nothing, still tells the others.
	b := &bus{}
	c = New(Options{Bus: b})
	e := entry("x")
	c.AddManifest(c.Ticket("r"), "r", e)
	if _, ok := c.Manifest("r", e.Digest); ok || c.Len() != 0 {
		t.Fatal("a budget of 0 stored an entry")
	}
	c.ManifestDeleted(t.Context(), "r", e.Digest)
	if len(b.msgs) != 1 {
		t.Fatalf("published %q", b.msgs)
	}
}

func TestHitMissAndHeaders(t *testing.T) {
	c := New(Options{MaxBytes: 1 << 20})
	e := entry(`{"schemaVersion":2}`)
	tk := c.Ticket("a/b")
	c.AddManifest(tk, "a/b", e)
	c.AddTag(tk, "a/b", "v1", e.Digest)
	got, ok := c.Manifest("a/b", e.Digest)
	if !ok || string(got.Data) != `{"schemaVersion":2}` {
		t.Fatalf("miss or wrong entry: %v %v", ok, got)
	}
	if d, ok := c.Tag("a/b", "v1"); !ok || d != e.Digest {
		t.Fatalf("tag: %v %s", ok, d)
	}
	if _, ok := c.Manifest("a/c", e.Digest); ok {
		t.Fatal("hit in another repository")
	}
	h := got.Header
	if h.Get("Content-Type") != e.MediaType || h.Get("Docker-Content-Digest") != e.Digest.String() ||
		h.Get("ETag") != `"`+e.Digest.String()+`"` || h.Get("Content-Length") != "19" {
		t.Fatalf("headers %v", h)
	}
	for k, v := range h {
		if cap(v) != 1 {
			t.Errorf("%s: cap %d: an append by a caller would write into the shared entry", k, cap(v))
		}
	}
}

// Every invalidation drops what it must, and a reader that read storage
// before an invalidation cannot put the old answer back (the ticket).
func TestInvalidation(t *testing.T) {
	ctx := t.Context()
	c := New(Options{MaxBytes: 1 << 20})
	e1, e2 := entry("one"), entry("two")
	fill := func() {
		tk := c.Ticket("r")
		c.AddManifest(tk, "r", e1)
		c.AddManifest(tk, "r", e2)
		c.AddTag(tk, "r", "v1", e1.Digest)
		c.AddTag(tk, "r", "v2", e2.Digest)
		c.AddTag(c.Ticket("other"), "other", "v1", e1.Digest)
	}
	has := func(tag string) bool { _, ok := c.Tag("r", tag); return ok }
	hasM := func(e *Entry) bool { _, ok := c.Manifest("r", e.Digest); return ok }

	fill()
	c.TagsChanged(ctx, "r", "v1")
	if has("v1") || !has("v2") || !hasM(e1) {
		t.Fatal("TagsChanged dropped the wrong entries")
	}
	fill()
	c.ManifestPut(ctx, "r", e2.Digest, []string{"v1"})
	if has("v1") || !has("v2") || hasM(e2) || !hasM(e1) {
		t.Fatal("ManifestPut dropped the wrong entries")
	}
	fill()
	c.ManifestDeleted(ctx, "r", e1.Digest)
	if hasM(e1) || has("v1") || has("v2") || !hasM(e2) {
		t.Fatal("ManifestDeleted must drop the manifest and every tag of the repository")
	}
	if _, ok := c.Tag("other", "v1"); !ok {
		t.Fatal("ManifestDeleted dropped another repository's tag")
	}
	fill()
	c.RepositoryChanged(ctx, "r")
	if hasM(e1) || hasM(e2) || has("v1") || has("v2") {
		t.Fatal("RepositoryChanged left entries")
	}
	fill()
	c.Flush()
	if c.Len() != 0 || c.Size() != 0 {
		t.Fatalf("Flush left %d entries, %d bytes", c.Len(), c.Size())
	}

	// A GET took its ticket and read storage; the delete ran and was
	// acknowledged; then the GET tries to cache what it read.
	tk := c.Ticket("r")
	c.ManifestDeleted(ctx, "r", e1.Digest)
	c.AddManifest(tk, "r", e1)
	c.AddTag(tk, "r", "v1", e1.Digest)
	if hasM(e1) || has("v1") {
		t.Fatal("a read that raced a delete put the deleted manifest back")
	}
	// Flush invalidates every outstanding ticket too.
	tk = c.Ticket("r")
	c.Flush()
	c.AddManifest(tk, "r", e1)
	if hasM(e1) {
		t.Fatal("a read that raced a flush was cached")
	}
}

// An entry is served for at most the TTL, whatever happens elsewhere.
func TestTTL(t *testing.T) {
	clk := &clock{t: time.Unix(1e9, 0)}
	c := New(Options{MaxBytes: 1 << 20, TTL: 5 * time.Second, Now: clk.now})
	e := entry("m")
	c.AddManifest(c.Ticket("r"), "r", e)
	c.AddTag(c.Ticket("r"), "r", "v1", e.Digest)
	clk.advance(4999 * time.Millisecond)
	if _, ok := c.Tag("r", "v1"); !ok {
		t.Fatal("expired early")
	}
	clk.advance(time.Millisecond)
	if _, ok := c.Tag("r", "v1"); ok {
		t.Fatal("tag served after the TTL")
	}
	if _, ok := c.Manifest("r", e.Digest); ok {
		t.Fatal("manifest served after the TTL")
	}
}

// Invalidations reach the other replicas through the bus; a cache ignores
// its own messages and garbage.
func TestBus(t *testing.T) {
	ctx := t.Context()
	b := &bus{}
	a := New(Options{MaxBytes: 1 << 20, Bus: b})
	r := New(Options{MaxBytes: 1 << 20, Bus: b})
	b.subs = []*Cache{a, r}
	e := entry("m")
	for _, c := range []*Cache{a, r} {
		c.AddManifest(c.Ticket("x/y"), "x/y", e)
		c.AddTag(c.Ticket("x/y"), "x/y", "v1", e.Digest)
	}
	a.TagsChanged(ctx, "x/y", "v1")
	if _, ok := r.Tag("x/y", "v1"); ok {
		t.Fatal("the other replica still resolves the moved tag")
	}
	a.ManifestDeleted(ctx, "x/y", e.Digest)
	if _, ok := r.Manifest("x/y", e.Digest); ok {
		t.Fatal("the other replica still serves the deleted manifest")
	}
	r.AddTag(r.Ticket("x/y"), "x/y", "v2", e.Digest)
	a.ManifestPut(ctx, "x/y", e.Digest, []string{"v2", "v3"})
	if _, ok := r.Tag("x/y", "v2"); ok {
		t.Fatal("a push did not reach the other replica")
	}
	r.AddManifest(r.Ticket("x/y"), "x/y", e)
	a.RepositoryChanged(ctx, "x/y")
	if r.Len() != 0 {
		t.Fatal("RepositoryChanged did not reach the other replica")
	}
	for _, m := range b.msgs {
		if !strings.HasPrefix(m, a.origin+" ") {
			t.Fatalf("message %q lacks the origin", m)
		}
	}
	r.AddManifest(r.Ticket("x/y"), "x/y", e)
	for _, junk := range []string{"", "x", "x t", "x q a b", "x m", "x t a b c d"} {
		r.Receive(junk)
	}
	if r.Len() != 1 {
		t.Fatal("a malformed message dropped an entry")
	}
}

// The budget holds whatever is added: the accounted size never exceeds it,
// the memory actually retained stays near it, and entries used since the
// sweep last passed survive.
func TestBudget(t *testing.T) {
	const budget = 4 << 20
	c := New(Options{MaxBytes: budget, TTL: time.Hour})
	hot := entry(strings.Repeat("h", 1000))
	c.AddManifest(c.Ticket("hot"), "hot", hot)

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	big := strings.Repeat("m", 20_000)
	for i := range 5000 { // 100 MB offered, 25× the budget
		e := entry(fmt.Sprint(i, big))
		repo := fmt.Sprint("repo/", i%50)
		c.AddManifest(c.Ticket(repo), repo, e)
		c.AddTag(c.Ticket(repo), repo, fmt.Sprint("t", i), e.Digest)
		if c.Size() > budget {
			t.Fatalf("after %d entries: %d bytes accounted, budget %d", i, c.Size(), budget)
		}
		if _, ok := c.Manifest("hot", hot.Digest); !ok {
			t.Fatalf("after %d entries: the entry read all along was evicted", i)
		}
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 2*budget {
		t.Fatalf("heap grew by %d bytes for a budget of %d", grown, budget)
	}
	if c.Len() < 100 {
		t.Fatalf("only %d entries kept of a %d budget", c.Len(), budget)
	}
	// One manifest over an eighth of the budget is never cached.
	huge := entry(strings.Repeat("x", budget/8+1))
	c.AddManifest(c.Ticket("r"), "r", huge)
	if _, ok := c.Manifest("r", huge.Digest); ok {
		t.Fatal("a manifest over an eighth of the budget was cached")
	}
	runtime.KeepAlive(c)
}

// Concurrent readers, writers and invalidations (run with -race).
func TestConcurrent(t *testing.T) {
	c := New(Options{MaxBytes: 64 << 10})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				repo := fmt.Sprint("r", i%7)
				e := entry(fmt.Sprint(g, "-", i%300))
				tk := c.Ticket(repo)
				if _, ok := c.Manifest(repo, e.Digest); !ok {
					c.AddManifest(tk, repo, e)
				}
				c.AddTag(tk, repo, "v1", e.Digest)
				switch i % 97 {
				case 0:
					c.TagsChanged(t.Context(), repo, "v1")
				case 1:
					c.ManifestDeleted(t.Context(), repo, e.Digest)
				case 2:
					c.Flush()
				}
			}
		})
	}
	wg.Wait()
	if c.Size() > 64<<10 {
		t.Fatalf("size %d over the budget", c.Size())
	}
}
