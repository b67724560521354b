package oidc

import (
	"container/list"
	"sync"
	"time"

	"github.com/berth-registry/berth/internal/auth"
)

// tokenCache maps SHA-256(raw token) to the identity it verified as, until
// the token's validity ends. Bounded LRU.
type tokenCache struct {
	mu  sync.Mutex
	max int
	ll  *list.List // front = most recent; values are *cacheEntry
	m   map[[32]byte]*list.Element
}

type cacheEntry struct {
	key   [32]byte
	p     *provider
	id    *auth.Identity
	until time.Time // exp (or iat + max age) plus skew
}

func newTokenCache(max int) *tokenCache {
	return &tokenCache{max: max, ll: list.New(), m: make(map[[32]byte]*list.Element)}
}

func (c *tokenCache) get(key [32]byte) (*cacheEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.m[key]
	if !ok {
		return nil, false
	}
	c.ll.MoveToFront(el)
	return el.Value.(*cacheEntry), true
}

func (c *tokenCache) add(e *cacheEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.m[e.key]; ok {
		el.Value = e
		c.ll.MoveToFront(el)
		return
	}
	c.m[e.key] = c.ll.PushFront(e)
	for c.ll.Len() > c.max {
		old := c.ll.Back()
		c.ll.Remove(old)
		delete(c.m, old.Value.(*cacheEntry).key)
	}
}

func (c *tokenCache) remove(key [32]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.m[key]; ok {
		c.ll.Remove(el)
		delete(c.m, key)
	}
}

func (c *tokenCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}
