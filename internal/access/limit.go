package access

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/berth-registry/berth/internal/auth"
)

// FailureCounter counts refused credentials per key (a client address) in
// fixed windows. The local implementation is LocalFailures; several replicas
// share one through Redis.
type FailureCounter interface {
	// AddFailures adds delta (0: just read) to key's count in the current
	// window, starting a window of length window if none is running, and
	// returns the count and the time left in the window.
	AddFailures(ctx context.Context, key string, delta int, window time.Duration) (n int, left time.Duration, err error)
}

// Limiter refuses credential checks from a client address that has had Max
// refused credentials within Window: brute force against static passwords
// gets nowhere, and nobody can make the registry run bcrypt at will. A counter
// that cannot be reached lets requests through (and the log says so): an
// outage of shared state must not lock everyone out.
//
// A credential the Authenticator remembers from an earlier success is not
// checked again, so it cannot consult a shared counter without putting a
// Redis round trip on every request of a pull; it is refused by the
// addresses this Limiter has itself seen over the limit (over), which every
// counter read and every counted refusal updates.
type Limiter struct {
	Counter FailureCounter
	Max     int
	Window  time.Duration
	Logger  *slog.Logger
	// Now is the clock of the addresses remembered over the limit; nil:
	// time.Now.
	Now func() time.Time

	over overSet
}

// check returns a *auth.RateLimitError while ip is over the limit.
func (l *Limiter) check(ctx context.Context, ip string) error {
	if l == nil || l.Max <= 0 {
		return nil
	}
	n, left, err := l.Counter.AddFailures(ctx, ip, 0, l.Window)
	if err != nil {
		l.warn(ctx, err)
		return nil
	}
	if n >= l.Max {
		l.markOver(ip, left)
		return &auth.RateLimitError{RetryAfter: max(left, time.Second)}
	}
	l.clearOver(ip)
	return nil
}

// checkRemembered is check for a remembered credential: process memory only.
func (l *Limiter) checkRemembered(ip string) error {
	if l == nil || l.Max <= 0 {
		return nil
	}
	if left := l.over.left(ip, l.now()); left > 0 {
		return &auth.RateLimitError{RetryAfter: max(left, time.Second)}
	}
	return nil
}

func (l *Limiter) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

func (l *Limiter) markOver(ip string, left time.Duration) { l.over.set(ip, l.now().Add(left)) }
func (l *Limiter) clearOver(ip string)                    { l.over.set(ip, time.Time{}) }

// overSet is the addresses a Limiter saw over the limit, and until when.
type overSet struct {
	mu sync.Mutex
	m  map[string]time.Time
}

func (o *overSet) left(ip string, now time.Time) time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	until, ok := o.m[ip]
	if !ok {
		return 0
	}
	if !now.Before(until) {
		delete(o.m, ip)
		return 0
	}
	return until.Sub(now)
}

// set remembers ip until until; a zero until forgets it.
func (o *overSet) set(ip string, until time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if until.IsZero() {
		delete(o.m, ip)
		return
	}
	if o.m == nil {
		o.m = make(map[string]time.Time)
	}
	if _, ok := o.m[ip]; !ok && len(o.m) >= maxLocalFailureKeys {
		for k := range o.m { // drop an arbitrary eighth: they are hints
			if len(o.m) < maxLocalFailureKeys-maxLocalFailureKeys/8 {
				break
			}
			delete(o.m, k)
		}
	}
	o.m[ip] = until
}

// record counts err against ip when it refused credentials.
func (l *Limiter) record(ctx context.Context, ip string, err error) {
	if l == nil || l.Max <= 0 || !errors.Is(err, auth.ErrInvalidCredentials) {
		return
	}
	n, left, cerr := l.Counter.AddFailures(ctx, ip, 1, l.Window)
	if cerr != nil {
		l.warn(ctx, cerr)
		return
	}
	if n >= l.Max {
		l.markOver(ip, left)
	}
	if n == l.Max && l.Logger != nil {
		l.Logger.WarnContext(ctx, "client address over the failed authentication limit", "client_ip", ip,
			"failures", n, "window", l.Window)
	}
}

func (l *Limiter) warn(ctx context.Context, err error) {
	if l.Logger != nil {
		l.Logger.WarnContext(ctx, "failed-authentication counter unavailable; not limiting", "err", err)
	}
}

// LocalFailures is a FailureCounter in process memory.
type LocalFailures struct {
	Now func() time.Time // nil: time.Now

	mu sync.Mutex
	m  map[string]failureWindow
}

type failureWindow struct {
	n   int
	end time.Time
}

// maxLocalFailureKeys bounds the map; past it, ended windows are dropped, then
// arbitrary ones.
const maxLocalFailureKeys = 100_000

// AddFailures implements FailureCounter.
func (c *LocalFailures) AddFailures(_ context.Context, key string, delta int, window time.Duration) (int, time.Duration, error) {
	now := time.Now()
	if c.Now != nil {
		now = c.Now()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	w, ok := c.m[key]
	if !ok || !now.Before(w.end) {
		if delta == 0 {
			return 0, 0, nil
		}
		w = failureWindow{end: now.Add(window)}
	}
	if delta == 0 {
		return w.n, w.end.Sub(now), nil
	}
	w.n += delta
	if c.m == nil {
		c.m = make(map[string]failureWindow)
	}
	if _, ok := c.m[key]; !ok && len(c.m) >= maxLocalFailureKeys {
		for k, old := range c.m {
			if !now.Before(old.end) {
				delete(c.m, k)
			}
		}
		for k := range c.m {
			if len(c.m) < maxLocalFailureKeys-maxLocalFailureKeys/8 {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[key] = w
	return w.n, w.end.Sub(now), nil
}
