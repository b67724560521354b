package token

import (
	"context"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-registry/berth/internal/redisstate"
	"github.com/berth-registry/berth/internal/redistest"
)

// Two services (two replicas) on one real Redis: records, use counts,
// revocations and the signing key are shared.
func TestSharedRedisStore(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	replica := func() *fixture {
		r, err := redisstate.Open(ctx, srv.URL(), "test:", nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		return newFixture(t, func(f *fixture) {
			f.limits = Limits{TTL: time.Hour, MaxUses: 5}
			f.opts.Store = r.Tokens()
			f.opts.StateDir = ""
			f.opts.KeyFile = ""
			f.opts.Keyring = r.Keyring("token-keyring")
		})
	}
	a, b := replica(), replica()
	if a.svc.KeyID() != b.svc.KeyID() {
		t.Fatalf("replicas sign with different keys: %s, %s", a.svc.KeyID(), b.svc.KeyID())
	}

	// A refresh token issued by A works on B, and so does the access token.
	r := a.get("offline_token=true&service=berth&scope=repository:alice/x:pull", "alice", testPassword)
	wantStatus(t, r, 200)
	rt := r.str("refresh_token")
	if got := b.verify(r.str("token")); got.ID != "user:alice" {
		t.Fatalf("access token from A on B: %+v", got)
	}
	wantStatus(t, b.post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}), 200)

	// MaxUses = 5 holds across replicas under concurrency: one use above,
	// four more of twenty concurrent ones alternating between A and B.
	var ok atomic.Int32
	var wg sync.WaitGroup
	for i := range 20 {
		svc := a.svc
		if i%2 == 1 {
			svc = b.svc
		}
		wg.Go(func() {
			if _, err := svc.VerifySessionToken(ctx, rt, "1.2.3.4"); err == nil {
				ok.Add(1)
			} else if !isInvalid(err) || !strings.Contains(err.Error(), "use limit") {
				t.Errorf("refusal: %v", err)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 4 {
		t.Fatalf("%d uses succeeded, want exactly 4", ok.Load())
	}

	// Revoked on B, refused on A.
	st := a.post("/token", url.Values{"grant_type": {GrantTokenExchange}, "subject_token": {testIDToken},
		"subject_token_type": {TokenTypeIDToken}, "requested_token_type": {TokenTypeSession}}).str("access_token")
	if _, err := b.svc.VerifySessionToken(ctx, st, "1.2.3.4"); err != nil {
		t.Fatalf("session token from A on B: %v", err)
	}
	wantStatus(t, b.post("/token/revoke", url.Values{"token": {st}}), 200)
	if _, err := a.svc.VerifySessionToken(ctx, st, "1.2.3.4"); !isInvalid(err) || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("revoked on B, on A: %v", err)
	}
	// A tampered secret is unknown, not an error.
	if _, err := a.svc.VerifySessionToken(ctx, st[:len(st)-1]+"a", "1.2.3.4"); !isInvalid(err) {
		t.Fatalf("tampered: %v", err)
	}

	// Redis down: uses are refused as unavailable, never let through uncounted.
	srv.Stop()
	if _, err := a.svc.VerifySessionToken(ctx, rt, "1.2.3.4"); err == nil || isInvalid(err) {
		t.Fatalf("Redis down: %v, want unavailable", err)
	}
}

// Generated signing keys shared through one real Redis by replicas that each
// have their own connection: one key, rotation by one seen by the others
// (which verify its new key's tokens even before they read the keyring
// again), and replicas rotating at once create exactly one new key (the
// compare-and-swap script).
func TestSharedRedisKeyring(t *testing.T) {
	srv := redistest.Start(t)
	replicas(t, func() KeyringStore {
		r, err := redisstate.Open(context.Background(), srv.URL(), "test:", nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		return r.Keyring("token-keyring")
	})
}
