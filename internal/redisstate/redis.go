// Package redisstate keeps the state several berth replicas must share in Redis
// ([cache.redis]): refresh/session token records (so use counts and
// revocations hold across replicas), the token signing keyring, the OIDC
// discovery, key-set and verified-ID-token cache, and the locks that
// serialise appends to one upload session.
//
// Each consumer defines the small interface it needs (token.Store,
// oidc.SharedCache, s3.Locker) and *Redis implements them; without Redis the
// consumers keep their local, single-process implementations.
//
//	r, err := redisstate.Open(ctx, "redis://redis:6379/0", "berth:", logger)
//	defer r.Close()
//	svc, err := token.New(token.Options{..., Store: r.Tokens()})
//
// Caveats:
//   - The URL may hold a password: it MUST NEVER be logged or put in an
//     error. Open reports problems with the redacted URL only.
//   - Keys are <prefix>token:<id>, <prefix>lock:<name>, <prefix>cache:<key>
//     and <prefix>key:<name> (the token signing keyring, <prefix>key:token-keyring,
//     holds private keys). Several registries may share one Redis with
//     different prefixes.
//   - A lock is a lease (SET NX PX, renewed while held, released with a
//     compare-and-delete script). If Redis is unreachable for longer than the
//     lease the lock can be lost while its holder still works; consumers keep
//     their own safety net (the S3 backend's conditional state writes).
package redisstate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	dialTimeout = 2 * time.Second
	ioTimeout   = 3 * time.Second
	// maxTxRetries bounds optimistic-transaction retries under contention.
	maxTxRetries = 50
)

// Redis is the Redis-backed shared state. It is safe for concurrent use.
type Redis struct {
	c      *redis.Client
	prefix string
	log    *slog.Logger
}

// Open connects to the Redis at rawURL (redis://, rediss:// or unix://). It
// pings once: an unreachable server is logged, not fatal, so replicas start
// and report not-ready (Ping) until Redis answers.
func Open(ctx context.Context, rawURL, prefix string, log *slog.Logger) (*Redis, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	safe := redactURL(rawURL)
	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		// go-redis's errors can quote the URL: name the redacted one only.
		return nil, fmt.Errorf("shared: redis URL %s is not valid", safe)
	}
	// go-redis prints pool events (failed dials while Redis is down) with its
	// own process-wide logger on stderr; route them to ours at debug level.
	// berth opens one Redis per process, so "the last Open wins" is fine.
	setRedisLogger(log)
	opts.DialTimeout = dialTimeout
	opts.ReadTimeout = ioTimeout
	opts.WriteTimeout = ioTimeout
	opts.ContextTimeoutEnabled = true
	r := &Redis{c: redis.NewClient(opts), prefix: prefix, log: log}
	pctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	if err := r.Ping(pctx); err != nil {
		log.Warn("redis not reachable yet; /readyz reports not ready until it is", "url", safe, "err", err)
	}
	return r, nil
}

// Ping checks that Redis answers.
func (r *Redis) Ping(ctx context.Context) error {
	if err := r.c.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("shared: redis ping: %w", err)
	}
	return nil
}

// Close closes the connections.
func (r *Redis) Close() error { return r.c.Close() }

func (r *Redis) key(kind, name string) string { return r.prefix + kind + ":" + name }

// go-redis's logger is a process-wide variable that its clients read
// without synchronisation while they dial, so it is set exactly once (a
// second SetLogger would race with a client already dialling, as tests that
// open several clients in one process do); the slog.Logger it writes to is
// swapped atomically instead.
var (
	redisLoggerOnce sync.Once
	redisLog        atomic.Pointer[slog.Logger]
)

func setRedisLogger(log *slog.Logger) {
	redisLog.Store(log)
	redisLoggerOnce.Do(func() { redis.SetLogger(redisLogger{}) })
}

// redisLogger adapts go-redis's logger to the slog.Logger of the last Open.
type redisLogger struct{}

func (redisLogger) Printf(ctx context.Context, format string, v ...any) {
	if l := redisLog.Load(); l != nil {
		l.DebugContext(ctx, "redis: "+fmt.Sprintf(format, v...))
	}
}

// redactURL returns u without its password.
func redactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "[unparseable URL]"
	}
	return p.Redacted()
}

func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ---------------------------------------------------------------------------
// token records (token.Store)

// Tokens returns the token.Store on this Redis.
func (r *Redis) Tokens() *TokenStore { return &TokenStore{r: r} }

// TokenStore keeps refresh/session token records as Redis strings that expire
// with the token's maximum lifetime. It implements token.Store.
type TokenStore struct{ r *Redis }

// Create stores rec under id for ttl.
func (s *TokenStore) Create(ctx context.Context, id string, rec []byte, ttl time.Duration) error {
	ttl = max(ttl, time.Second)
	ok, err := s.r.c.SetNX(ctx, s.r.key("token", id), rec, ttl).Result()
	if err != nil {
		return fmt.Errorf("shared: store token record: %w", err)
	}
	if !ok {
		return fmt.Errorf("shared: token record %s already exists", id)
	}
	return nil
}

// Update runs fn on the record of id in an optimistic transaction (WATCH,
// GET, MULTI/SET/EXEC), retried when another replica changed the record in
// between: updates of one id are atomic across replicas. The record keeps its
// expiry.
func (s *TokenStore) Update(ctx context.Context, id string, fn func([]byte) ([]byte, error)) error {
	key := s.r.key("token", id)
	for range maxTxRetries {
		err := s.r.c.Watch(ctx, func(tx *redis.Tx) error {
			b, err := tx.Get(ctx, key).Bytes()
			if errors.Is(err, redis.Nil) {
				b, err = nil, nil
			}
			if err != nil {
				return fmt.Errorf("shared: read token record: %w", err)
			}
			out, err := fn(b)
			if err != nil || out == nil {
				return err
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.SetArgs(ctx, key, out, redis.SetArgs{KeepTTL: true, Mode: "XX"})
				return nil
			})
			return err
		}, key)
		if errors.Is(err, redis.TxFailedErr) {
			continue
		}
		return err
	}
	return fmt.Errorf("shared: token record %s: too much contention", id)
}

// ---------------------------------------------------------------------------
// locks (s3.Locker)

const (
	lockTTL     = 30 * time.Second
	lockRenew   = 10 * time.Second
	lockPollMin = 5 * time.Millisecond
	lockPollMax = 200 * time.Millisecond
)

var (
	renewScript  = redis.NewScript(`if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("pexpire", KEYS[1], ARGV[2]) else return 0 end`)
	unlockScript = redis.NewScript(`if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end`)
)

// Lock takes the lock name, waiting while another holder (in any replica)
// has it, until ctx is done. The lease is renewed while held; unlock
// releases it only if it is still ours.
func (r *Redis) Lock(ctx context.Context, name string) (unlock func(), err error) {
	key := r.key("lock", name)
	tok := randomToken()
	wait := lockPollMin
	for {
		ok, err := r.c.SetNX(ctx, key, tok, lockTTL).Result()
		if err != nil {
			return nil, fmt.Errorf("shared: lock %s: %w", name, err)
		}
		if ok {
			break
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("shared: lock %s: %w", name, ctx.Err())
		case <-t.C:
		}
		wait = min(wait*2, lockPollMax)
	}
	stop, done := make(chan struct{}), make(chan struct{})
	bg := context.WithoutCancel(ctx)
	go func() {
		defer close(done)
		t := time.NewTicker(lockRenew)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				rctx, cancel := context.WithTimeout(bg, ioTimeout)
				n, err := renewScript.Run(rctx, r.c, []string{key}, tok, lockTTL.Milliseconds()).Int()
				cancel()
				if err != nil || n == 0 {
					r.log.Warn("shared: lock lease could not be renewed", "lock", name, "err", err)
				}
			}
		}
	}()
	return func() {
		close(stop)
		<-done
		uctx, cancel := context.WithTimeout(bg, ioTimeout)
		defer cancel()
		if err := unlockScript.Run(uctx, r.c, []string{key}, tok).Err(); err != nil {
			r.log.Warn("shared: unlock failed; the lease expires by itself", "lock", name, "err", err)
		}
	}, nil
}

// ---------------------------------------------------------------------------
// cache (oidc.SharedCache) and shared secrets

// Get returns the cached value of key; found is false when there is none.
func (r *Redis) Get(ctx context.Context, key string) (val []byte, found bool, err error) {
	b, err := r.c.Get(ctx, r.key("cache", key)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("shared: cache get: %w", err)
	}
	return b, true, nil
}

// Set caches val under key for ttl.
func (r *Redis) Set(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	if err := r.c.Set(ctx, r.key("cache", key), val, ttl).Err(); err != nil {
		return fmt.Errorf("shared: cache set: %w", err)
	}
	return nil
}

// LoadKey returns the value stored under name (see LoadOrCreate), nil when
// there is none.
func (r *Redis) LoadKey(ctx context.Context, name string) ([]byte, error) {
	b, err := r.c.Get(ctx, r.key("key", name)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("shared: load %s: %w", name, err)
	}
	return b, nil
}

// LoadOrCreate returns the value stored under name, or stores the value
// create returns when there is none. Replicas starting at once agree on one
// value: the first SET NX wins and the others read it.
func (r *Redis) LoadOrCreate(ctx context.Context, name string, create func() ([]byte, error)) ([]byte, error) {
	key := r.key("key", name)
	b, err := r.c.Get(ctx, key).Bytes()
	if err == nil {
		return b, nil
	}
	if !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("shared: load %s: %w", name, err)
	}
	v, err := create()
	if err != nil {
		return nil, err
	}
	if _, err := r.c.SetNX(ctx, key, v, 0).Result(); err != nil {
		return nil, fmt.Errorf("shared: store %s: %w", name, err)
	}
	b, err = r.c.Get(ctx, key).Bytes()
	if err != nil {
		return nil, fmt.Errorf("shared: load %s: %w", name, err)
	}
	return b, nil
}

// ---------------------------------------------------------------------------
// signing keyring (token.KeyringStore)

// Keyring returns the token signing keyring stored under <prefix>key:<name>.
func (r *Redis) Keyring(name string) *Keyring { return &Keyring{r: r, key: r.key("key", name)} }

// Keyring is one document in Redis replaced only by compare-and-swap (a
// script, atomic in Redis), so replicas rotating at once agree on one
// version. It implements token.KeyringStore.
type Keyring struct {
	r   *Redis
	key string
}

var swapScript = redis.NewScript(`local cur = redis.call("get", KEYS[1])
if cur == false then cur = "" end
if cur == ARGV[1] then redis.call("set", KEYS[1], ARGV[2]) return 1 end
return 0`)

// LoadKeyring returns the stored document, nil when there is none.
func (k *Keyring) LoadKeyring(ctx context.Context) ([]byte, error) {
	b, err := k.r.c.Get(ctx, k.key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("shared: load keyring: %w", err)
	}
	return b, nil
}

// SwapKeyring stores next if the stored document is still old (nil: none).
func (k *Keyring) SwapKeyring(ctx context.Context, old, next []byte) (bool, error) {
	n, err := swapScript.Run(ctx, k.r.c, []string{k.key}, old, next).Int()
	if err != nil {
		return false, fmt.Errorf("shared: store keyring: %w", err)
	}
	return n == 1, nil
}
