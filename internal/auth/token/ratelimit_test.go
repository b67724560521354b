package token

import (
	"context"
	"errors"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/berth-registry/berth/internal/auth"
)

// countingLimiter is a Limiter over a plain count per address, like
// access.Limiter without windows.
type countingLimiter struct {
	mu  sync.Mutex
	n   map[string]int
	max int
}

func (l *countingLimiter) LimitCredentials(_ context.Context, ip string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n[ip] >= l.max {
		return &auth.RateLimitError{RetryAfter: 42 * time.Second}
	}
	return nil
}

func (l *countingLimiter) CountRefusal(_ context.Context, ip string, err error) {
	if !errors.Is(err, auth.ErrInvalidCredentials) {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n[ip]++
}

func (l *countingLimiter) count(ip string) int { l.mu.Lock(); defer l.mu.Unlock(); return l.n[ip] }

// TestRateLimitEveryGrant: every grant counts the credentials it refuses,
// and over the limit answers 429 with Retry-After even to good credentials.
func TestRateLimitEveryGrant(t *testing.T) {
	const max = 3
	exchange := func(subject, want string) url.Values {
		v := url.Values{"grant_type": {GrantTokenExchange}, "subject_token": {subject},
			"subject_token_type": {TokenTypeIDToken}, "service": {"berth"}, "scope": {"repository:org/app:pull"}}
		if want != "" {
			v.Set("requested_token_type", want)
		}
		return v
	}
	for _, tc := range []struct {
		name string
		// good and bad make one request; good may use what setup returned.
		good, bad func(f *fixture, setup string) response
		setup     func(f *fixture) string
	}{
		{name: "docker GET with Basic",
			good: func(f *fixture, _ string) response {
				return f.get("service=berth&scope=repository:alice/a:pull", "alice", testPassword)
			},
			bad: func(f *fixture, _ string) response {
				return f.get("service=berth&scope=repository:alice/a:pull", "alice", "guess")
			}},
		{name: "docker GET with a session token as the password",
			setup: func(f *fixture) string {
				return f.post("/token", exchange(testIDToken, TokenTypeSession)).str("access_token")
			},
			good: func(f *fixture, st string) response { return f.get("service=berth", "x", st) },
			bad:  func(f *fixture, _ string) response { return f.get("service=berth", "x", SessionPrefix+"bogus_bogus") }},
		{name: "password",
			good: func(f *fixture, _ string) response {
				return f.post("/token", url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {testPassword}})
			},
			bad: func(f *fixture, _ string) response {
				return f.post("/token", url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"guess"}})
			}},
		{name: "refresh_token",
			setup: func(f *fixture) string {
				return f.get("service=berth&offline_token=true", "alice", testPassword).str("refresh_token")
			},
			good: func(f *fixture, rt string) response {
				return f.post("/token", url.Values{"grant_type": {GrantRefreshToken}, "refresh_token": {rt}})
			},
			bad: func(f *fixture, _ string) response {
				return f.post("/token", url.Values{"grant_type": {GrantRefreshToken}, "refresh_token": {RefreshPrefix + "bogus_bogus"}})
			}},
		{name: "token exchange",
			good: func(f *fixture, _ string) response { return f.post("/token", exchange(testIDToken, "")) },
			bad:  func(f *fixture, _ string) response { return f.post("/token", exchange("forged", "")) }},
		{name: "token exchange for a session token",
			good: func(f *fixture, _ string) response { return f.post("/token", exchange(testIDToken, TokenTypeSession)) },
			bad:  func(f *fixture, _ string) response { return f.post("/token", exchange("forged", TokenTypeSession)) }},
		{name: "jwt-bearer",
			good: func(f *fixture, _ string) response {
				return f.post("/token", url.Values{"grant_type": {GrantJWTBearer}, "assertion": {testIDToken}})
			},
			bad: func(f *fixture, _ string) response {
				return f.post("/token", url.Values{"grant_type": {GrantJWTBearer}, "assertion": {"forged"}})
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lim := &countingLimiter{n: map[string]int{}, max: max}
			f := newFixture(t, func(f *fixture) {
				f.opts.Limiter = lim
				// Authenticate is limited by its implementation
				// (access.Authenticator.Basic): the same here.
				basic := f.opts.Authenticate
				f.opts.Authenticate = func(ctx context.Context, user, pass, ip string) (*auth.Identity, error) {
					if err := lim.LimitCredentials(ctx, ip); err != nil {
						return nil, err
					}
					id, err := basic(ctx, user, pass, ip)
					lim.CountRefusal(ctx, ip, err)
					return id, err
				}
			})
			var setup string
			if tc.setup != nil {
				if setup = tc.setup(f); setup == "" {
					t.Fatal("setup returned no credential")
				}
			}
			wantStatus(t, tc.good(f, setup), 200)
			for i := range max {
				r := tc.bad(f, setup)
				if r.status != 400 && r.status != 401 {
					t.Fatalf("refusal %d: status %d %s", i+1, r.status, r.raw)
				}
			}
			if n := lim.count("127.0.0.1"); n != max {
				t.Fatalf("%d refusals counted, want %d", n, max)
			}
			r := tc.good(f, setup)
			wantStatus(t, r, 429)
			if r.header.Get("Retry-After") != "42" || r.str("error") != "slow_down" {
				t.Errorf("Retry-After %q error %q, want 42 and slow_down", r.header.Get("Retry-After"), r.str("error"))
			}
			if errs, _ := r.body["errors"].([]any); len(errs) != 1 || errs[0].(map[string]any)["code"] != "TOOMANYREQUESTS" {
				t.Errorf("errors = %v, want TOOMANYREQUESTS", r.body["errors"])
			}
			if r.str("access_token") != "" {
				t.Error("429 carries a token")
			}
		})
	}
}
