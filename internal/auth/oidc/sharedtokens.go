package oidc

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"sync"
	"time"
)

// Verified tokens shared between replicas.
//
// A replica that verified a token's signature itself records that in the
// SharedCache, so that another replica that cannot verify it with the keys it
// holds in memory — no key set yet, a kid it does not know, the issuer
// unreachable — accepts the token without waiting for the issuer. A replica
// that holds the key verifies locally (~45 µs of CPU, less than a Redis round
// trip) and never reads the shared entry.
//
// The entry is keyed by SHA-256 over the provider's fingerprint (every setting
// verification depends on) and the raw token, and holds neither: only the
// fingerprint again, a format version and when the token stops being valid. A
// replica with a hit takes the claims from the token it was given (the key
// binds them) and checks everything but the signature again itself: claim
// types, issuer, times, audience, required claims and the claim mapping, with
// its own configuration and clock. So a changed provider configuration never
// reuses an entry, and a changed claim mapping or policy applies at once.
//
// MUST: the shared cache is trusted like the token signing key kept next to
// it; whoever can write to it can make any token of a configured issuer pass
// the signature check.

const (
	sharedTokenPrefix  = "oidc:token:"
	sharedTokenVersion = 1
	// sharedQueueMax bounds the writes waiting for the writer; a
	// verification finding the queue full is not shared (another replica
	// then verifies the token itself).
	sharedQueueMax = 128
	// sharedFlushDelay is how long the writer, once started, gathers
	// writes before it sends them: one goroutine start per batch instead of
	// one per verification (on a replica with idle cores, waking one costs
	// more CPU than the write itself).
	sharedFlushDelay   = 5 * time.Millisecond
	sharedWriteTimeout = 2 * time.Second
	// sharedReadTimeout bounds a read, which happens only where verification
	// would otherwise wait for the issuer. Redis answers in well under a
	// millisecond; a slower answer is a miss.
	sharedReadTimeout = 500 * time.Millisecond
	// sharedMaxTTL caps an entry's life for tokens valid for a very long
	// time: they are verified once a day, not stored for years.
	sharedMaxTTL = 24 * time.Hour
	// sharedWarnEvery rate-limits warnings about an unavailable shared cache
	// (one per request would flood the log while Redis is down).
	sharedWarnEvery = time.Minute
)

// sharedToken is a shared cache entry: "a replica with this provider
// configuration verified the signature of the token this key was derived from".
type sharedToken struct {
	V           int    `json:"v"`
	Fingerprint string `json:"fp"`
	Until       int64  `json:"until"` // unix milliseconds
}

// providerFingerprint is SHA-256 (hex) over every provider setting that
// verifyWith checks, so that entries of another configuration are never used.
// The claim mapping is not part of it: it runs again on every hit.
func providerFingerprint(p *provider, pc ProviderConfig) string {
	ca := sha256.Sum256(pc.CACertPEM)
	b, err := json.Marshal(struct {
		V          int
		Name       string
		Preset     string
		Issuer     string
		JWKSURI    string
		CA         string
		Audiences  []string
		Algorithms []string
		Skew       time.Duration
		MaxAge     time.Duration
		Required   []string
	}{sharedTokenVersion, p.name, p.preset, p.issuer, pc.JWKSURI, hex.EncodeToString(ca[:]),
		p.audiences, p.algList, p.skew, p.maxAge, p.required})
	if err != nil {
		panic("oidc: fingerprint: " + err.Error()) // strings, slices and ints always marshal
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// sharedTokenKey names a token's entry; the raw token is only hashed.
func sharedTokenKey(p *provider, raw string) string {
	var buf []byte
	return sharedTokenKeyBuf(&buf, p, raw)
}

// sharedTokenKeyBuf is sharedTokenKey hashing in *buf, reused by the writer.
func sharedTokenKeyBuf(buf *[]byte, p *provider, raw string) string {
	b := append(append((*buf)[:0], p.fingerprint...), raw...) // fixed-length fingerprint: no separator needed
	*buf = b
	sum := sha256.Sum256(b)
	var key [len(sharedTokenPrefix) + 2*sha256.Size]byte
	copy(key[:], sharedTokenPrefix)
	hex.Encode(key[len(sharedTokenPrefix):], sum[:])
	return string(key[:])
}

// encode returns the entry as JSON, as encoding/json would write it (the
// fingerprint is hex: nothing to escape).
func (e sharedToken) encode() []byte {
	b := make([]byte, 0, 32+len(e.Fingerprint)+20)
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, int64(e.V), 10)
	b = append(b, `,"fp":"`...)
	b = append(b, e.Fingerprint...)
	b = append(b, `","until":`...)
	b = strconv.AppendInt(b, e.Until, 10)
	return append(b, '}')
}

// sharesTokens reports whether verified tokens are shared: with a shared
// cache and the local token cache on.
func (v *Verifier) sharesTokens() bool { return v.shared != nil && v.cache != nil }

// sharedVerified reports whether another replica with this provider
// configuration verified the signature of raw and the token is still valid.
// A shared-cache error or an unreadable entry is a miss: it never lets a
// token through.
func (v *Verifier) sharedVerified(ctx context.Context, p *provider, raw string) bool {
	rctx, cancel := context.WithTimeout(ctx, sharedReadTimeout)
	defer cancel()
	b, found, err := v.shared.Get(rctx, sharedTokenKey(p, raw))
	if err != nil {
		if ctx.Err() == nil { // else the caller gave up: not Redis's fault
			v.sharedFailed(p, "read", err)
		}
		return false
	}
	if !found {
		return false
	}
	var e sharedToken
	if err := json.Unmarshal(b, &e); err != nil || e.V != sharedTokenVersion || e.Fingerprint != p.fingerprint {
		v.log.Debug("oidc: ignoring an unreadable shared token cache entry", "provider", p.name)
		return false
	}
	return v.now().Before(time.UnixMilli(e.Until))
}

// shareQueue holds the writes for the one background writer.
type shareQueue struct {
	mu      sync.Mutex
	items   []shareItem
	running bool // a writer is started and will take items
}

type shareItem struct {
	p     *provider
	raw   string
	until time.Time
}

// share records, in the background, that this replica verified the signature
// of raw, valid until until. It never delays the caller: it queues the write
// for the one writer (started if none runs), and when sharedQueueMax writes
// are waiting the verification is not shared.
func (v *Verifier) share(p *provider, raw string, until time.Time) {
	if !v.now().Before(until) {
		return
	}
	q := &v.queue
	q.mu.Lock()
	if len(q.items) >= sharedQueueMax {
		q.mu.Unlock()
		v.log.Debug("oidc: shared token cache write queue full; this verification is not shared", "provider", p.name)
		return
	}
	q.items = append(q.items, shareItem{p: p, raw: raw, until: until})
	v.writing.Add(1)
	start := !q.running
	q.running = true
	q.mu.Unlock()
	if start && !v.background(v.writeShared) {
		v.dropShared() // closed
	}
}

// writeShared is the writer: after sharedFlushDelay it writes the queued
// entries one at a time until the queue is empty, then ends.
func (v *Verifier) writeShared(base context.Context) {
	t := time.NewTimer(sharedFlushDelay)
	select {
	case <-t.C:
	case <-base.Done():
		t.Stop()
		v.dropShared()
		return
	}
	q := &v.queue
	var buf []byte // hashing buffer, reused
	for {
		q.mu.Lock()
		batch := q.items
		q.items = nil
		if len(batch) == 0 || base.Err() != nil {
			q.running = false
			q.mu.Unlock()
			for range batch {
				v.writing.Done()
			}
			return
		}
		q.mu.Unlock()
		for _, it := range batch {
			v.writeOne(base, it, &buf)
			v.writing.Done()
		}
	}
}

// dropShared forgets the queued writes (the Verifier is closed).
func (v *Verifier) dropShared() {
	q := &v.queue
	q.mu.Lock()
	n := len(q.items)
	q.items, q.running = nil, false
	q.mu.Unlock()
	for range n {
		v.writing.Done()
	}
}

func (v *Verifier) writeOne(base context.Context, it shareItem, buf *[]byte) {
	ttl := min(it.until.Sub(v.now()), sharedMaxTTL)
	if ttl <= 0 || base.Err() != nil {
		return
	}
	b := sharedToken{V: sharedTokenVersion, Fingerprint: it.p.fingerprint, Until: it.until.UnixMilli()}.encode()
	ctx, cancel := context.WithTimeout(base, sharedWriteTimeout)
	defer cancel()
	if err := v.shared.Set(ctx, sharedTokenKeyBuf(buf, it.p, it.raw), b, ttl); err != nil && base.Err() == nil {
		v.sharedFailed(it.p, "write", err)
	}
}

// sharedFailed logs a shared token cache error: a warning at most once per
// sharedWarnEvery, else at debug level. Errors name the hashed key at most.
func (v *Verifier) sharedFailed(p *provider, op string, err error) {
	now := v.now().UnixNano()
	last := v.lastWarn.Load()
	if (last == 0 || now-last >= int64(sharedWarnEvery) || now < last) && v.lastWarn.CompareAndSwap(last, now) {
		v.log.Warn("oidc: shared token cache unavailable; verifying with this replica's keys", "provider", p.name, "op", op, "err", err)
		return
	}
	v.log.Debug("oidc: shared token cache unavailable", "provider", p.name, "op", op, "err", err)
}
