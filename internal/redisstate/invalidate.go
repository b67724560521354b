package redisstate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/redis/go-redis/v9"
)

// ---------------------------------------------------------------------------
// manifest cache invalidations (manifestcache.Bus), channel
// <prefix>manifest-cache. Pub/sub delivers to the replicas subscribed at
// that moment, at most once: a replica that is reconnecting misses the
// message, so the subscriber flushes its cache at every (re)subscription and
// the cache's TTL bounds what is lost in between.

const manifestChannel = "manifest-cache"

// subscriptionCheck is how long a quiet subscription waits before it pings.
const subscriptionCheck = 15 * time.Second

// PublishManifestInvalidation sends msg to every replica's cache.
func (r *Redis) PublishManifestInvalidation(ctx context.Context, msg string) error {
	if err := r.c.Publish(ctx, r.prefix+manifestChannel, msg).Err(); err != nil {
		return fmt.Errorf("shared: redis publish: %w", err)
	}
	return nil
}

// ManifestInvalidations subscribes until ctx is done: fn receives each
// message, and reset is called at each (re)subscription, the first
// included, since messages published while unsubscribed are lost.
func (r *Redis) ManifestInvalidations(ctx context.Context, fn func(msg string), reset func()) {
	for ctx.Err() == nil {
		r.receive(ctx, fn, reset)
		select { // Redis is down: try again shortly
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// receive subscribes once and delivers until the subscription fails or ctx
// is done.
func (r *Redis) receive(ctx context.Context, fn func(msg string), reset func()) {
	ps := r.c.Subscribe(ctx, r.prefix+manifestChannel)
	defer ps.Close()
	// A blocked read does not watch ctx: closing the subscription ends it.
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
	defer stop()
	for {
		m, err := ps.ReceiveTimeout(ctx, subscriptionCheck)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() && ctx.Err() == nil {
			// Quiet channel: a ping proves the connection is alive (a
			// half-open one fails it, and the next receive reconnects).
			if err = ps.Ping(ctx); err == nil {
				continue
			}
		}
		if err != nil {
			if ctx.Err() == nil {
				r.log.Debug("manifest cache: redis subscription lost; resubscribing", "err", err)
			}
			return
		}
		switch m := m.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				reset()
			}
		case *redis.Message:
			fn(m.Payload)
		}
	}
}
