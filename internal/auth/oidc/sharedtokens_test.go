package oidc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-registry/berth/internal/auth"
	"github.com/berth-registry/berth/internal/devissuer"
	"github.com/berth-registry/berth/internal/testutil"
)

// memShared is an in-memory SharedCache shared by the verifiers of a test.
// It ignores TTLs (it records them), so that the verifier's own expiry check
// is what a test sees. getErr/setErr make it fail; block makes Set wait.
type memShared struct {
	mu     sync.Mutex
	m      map[string][]byte
	ttl    map[string]time.Duration
	gets   []string // keys read, in order
	sets   []string // keys written, in order
	getErr error
	setErr error
	// When block is not nil, Set sends its key on entered and then waits
	// for block to be closed (or its context).
	block   chan struct{}
	entered chan string
}

func newMemShared() *memShared {
	return &memShared{m: map[string][]byte{}, ttl: map[string]time.Duration{}}
}

func (c *memShared) Get(ctx context.Context, key string) ([]byte, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gets = append(c.gets, key)
	if c.getErr != nil {
		return nil, false, c.getErr
	}
	v, ok := c.m[key]
	return v, ok, nil
}

func (c *memShared) Set(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	c.mu.Lock()
	block, entered := c.block, c.entered
	c.mu.Unlock()
	if block != nil {
		entered <- key
		select {
		case <-block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sets = append(c.sets, key)
	if c.setErr != nil {
		return c.setErr
	}
	c.m[key], c.ttl[key] = val, ttl
	return nil
}

// tokenKeys returns the verified-token keys among keys.
func tokenKeys(keys []string) []string {
	var out []string
	for _, k := range keys {
		if strings.HasPrefix(k, sharedTokenPrefix) {
			out = append(out, k)
		}
	}
	return out
}

func (c *memShared) tokenGets() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return tokenKeys(c.gets)
}

func (c *memShared) tokenSets() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return tokenKeys(c.sets)
}

// forgetKeySets removes the shared key sets, so that a verifier without keys
// cannot take them from the shared cache either.
func (c *memShared) forgetKeySets() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.m {
		if strings.HasPrefix(k, "oidc:jwks:") {
			delete(c.m, k)
		}
	}
}

// replicas is a fake issuer and verifiers (replicas) sharing one memShared
// and one clock.
type replicas struct {
	t   *testing.T
	clk *testutil.Clock
	iss *devissuer.Issuer
	sc  *memShared
	log *slog.Logger // nil: discard
}

func newReplicas(t *testing.T) *replicas {
	clk := newClock()
	return &replicas{t: t, clk: clk, iss: newIssuer(t, devissuer.Options{KeyType: devissuer.EC, Now: clk.Now}), sc: newMemShared()}
}

// replica returns a verifier with provider "gen" of the issuer, changed by
// edit.
func (r *replicas) replica(edit func(*ProviderConfig)) *Verifier {
	pc := ProviderConfig{Name: "gen", Issuer: r.iss.URL(), Audiences: []string{"berth"}}
	if edit != nil {
		edit(&pc)
	}
	return newVerifier(r.t, Options{Now: r.clk.Now, Shared: r.sc, Logger: r.log}, pc)
}

// verified verifies tok on v, waits for its shared write and returns the identity.
func (r *replicas) verified(v *Verifier, tok string) *auth.Identity {
	r.t.Helper()
	id, err := v.Verify(context.Background(), tok)
	if err != nil {
		r.t.Fatal(err)
	}
	v.writing.Wait()
	return id
}

// down stops the issuer answering and removes the shared key sets: from now
// on a verifier without the keys in memory cannot verify a signature.
func (r *replicas) down() {
	r.iss.SetDown(true)
	r.sc.forgetKeySets()
}

func keysLoaded(v *Verifier) bool {
	k := v.providers["gen"].keys
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.loaded
}

// Replica B accepts a token replica A verified while the issuer is down and B
// holds no keys, without fetching any; what is stored is neither the token
// nor its claims. A token A never saw is refused by B (503): B really could
// not verify it on its own.
func TestSharedTokenAcceptedByOtherReplica(t *testing.T) {
	r := newReplicas(t)
	a, b := r.replica(nil), r.replica(nil)
	tok := r.iss.Mint(map[string]any{"sub": "alice-7f3a", "aud": "berth", "email": "alice@example.test"})
	idA := r.verified(a, tok)

	sets := r.sc.tokenSets()
	if len(sets) != 1 {
		t.Fatalf("A wrote %d verified-token entries, want 1", len(sets))
	}
	val := string(r.sc.m[sets[0]])
	sig := tok[strings.LastIndexByte(tok, '.')+1:]
	for _, secret := range []string{tok, sig, tok[strings.IndexByte(tok, '.')+1 : strings.LastIndexByte(tok, '.')], "alice-7f3a", "alice@example.test"} {
		if strings.Contains(val, secret) || strings.Contains(sets[0], secret) {
			t.Fatalf("the shared entry %s = %s holds the token or a claim", sets[0], val)
		}
	}
	if want := 10*time.Minute + DefaultClockSkew; r.sc.ttl[sets[0]] != want {
		t.Fatalf("TTL %v, want %v (exp + skew - now)", r.sc.ttl[sets[0]], want)
	}

	r.down()
	jwks, disc := r.iss.JWKSFetches(), r.iss.DiscoveryFetches()
	idB, err := b.Verify(context.Background(), tok)
	if err != nil {
		t.Fatalf("B refused the token A verified: %v", err)
	}
	if idB.ID != idA.ID || idB.Username != idA.Username || idB.OIDC.Claims["email"] != "alice@example.test" || !idB.Expires.Equal(idA.Expires) {
		t.Fatalf("B's identity %+v, A's %+v", idB, idA)
	}
	if r.iss.JWKSFetches() != jwks || r.iss.DiscoveryFetches() != disc || keysLoaded(b) || b.providers["gen"].keys.sigChecks.Load() != 0 {
		t.Fatal("B fetched keys or checked a signature")
	}
	b.writing.Wait()
	if n := len(r.sc.tokenSets()); n != 1 {
		t.Fatalf("B wrote back a token it did not verify itself (%d writes)", n)
	}
	// Later uses hit B's local cache: no more shared reads.
	gets := len(r.sc.tokenGets())
	if _, err := b.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	if len(r.sc.tokenGets()) != gets {
		t.Fatal("a local cache hit read the shared cache")
	}

	// The control: a token A never verified.
	_, err = b.Verify(context.Background(), r.iss.Mint(map[string]any{"sub": "bob", "aud": "berth"}))
	refused(t, err, auth.ErrUnavailable, "no keys cached", "")
}

// A replica holding the issuer's keys verifies a token itself: it never
// reads the shared cache for it (no Redis round trip on that path), and
// shares its own verification.
func TestSharedTokenNotReadWithKeys(t *testing.T) {
	r := newReplicas(t)
	a, b := r.replica(nil), r.replica(nil)
	r.verified(b, r.iss.Mint(map[string]any{"sub": "first", "aud": "berth"})) // B loads the keys
	tok := r.iss.Mint(map[string]any{"sub": "second", "aud": "berth"})
	r.verified(a, tok)
	gets := len(r.sc.tokenGets())
	checks := b.providers["gen"].keys.sigChecks.Load()
	r.verified(b, tok)
	if len(r.sc.tokenGets()) != gets {
		t.Fatal("B read the shared cache although it holds the key")
	}
	if b.providers["gen"].keys.sigChecks.Load() != checks+1 {
		t.Fatal("B did not check the signature itself")
	}
	if n := len(r.sc.tokenSets()); n != 3 {
		t.Fatalf("%d verified-token writes, want 3 (one per local verification)", n)
	}
}

// After a key rotation, a replica whose keys lack the new kid (and that may
// not refetch yet: cooldown) accepts a token another replica verified.
func TestSharedTokenUnknownKid(t *testing.T) {
	r := newReplicas(t)
	b := r.replica(nil)
	r.verified(b, r.iss.Mint(map[string]any{"sub": "old", "aud": "berth"}))
	if err := r.iss.Rotate(true); err != nil {
		t.Fatal(err)
	}
	r.sc.forgetKeySets() // A fetches the new keys from the issuer
	a := r.replica(nil)
	tok := r.iss.Mint(map[string]any{"sub": "new", "aud": "berth"})
	r.verified(a, tok)
	r.down()
	if _, err := b.Verify(context.Background(), tok); err != nil {
		t.Fatalf("B refused a token with the new kid that A verified: %v", err)
	}
	// The control: another token with the new kid.
	_, err := b.Verify(context.Background(), r.iss.Mint(map[string]any{"sub": "new2", "aud": "berth"}))
	refused(t, err, auth.ErrInvalidCredentials, "unknown kid", "")
}

// A replica whose provider is configured differently never uses another's
// entry, even for a token its own configuration would accept.
func TestSharedTokenConfigChange(t *testing.T) {
	r := newReplicas(t)
	a := r.replica(nil)
	b := r.replica(func(pc *ProviderConfig) { pc.Audiences = []string{"other"} })
	tok := r.iss.Mint(map[string]any{"sub": "x", "aud": []string{"berth", "other"}})
	r.verified(a, tok)
	r.down()
	before := len(r.sc.tokenGets())
	_, err := b.Verify(context.Background(), tok)
	refused(t, err, auth.ErrUnavailable, "no keys cached", "")
	if got, wrote := r.sc.tokenGets()[before:], r.sc.tokenSets(); len(got) != 1 || got[0] == wrote[0] {
		t.Fatalf("B read %v, A wrote %v: want one read of another key", got, wrote)
	}

	// Every setting verification depends on changes the fingerprint; the
	// claim mapping (applied again on every hit) does not.
	base := ProviderConfig{Name: "gen", Issuer: r.iss.URL(), Audiences: []string{"berth"}}
	fp := func(edit func(*ProviderConfig)) string {
		pc := base
		if edit != nil {
			edit(&pc)
		}
		v := newVerifier(t, Options{}, pc)
		return v.providers[pc.Name].fingerprint
	}
	want := fp(nil)
	if fp(nil) != want {
		t.Fatal("fingerprint not deterministic")
	}
	if fp(func(pc *ProviderConfig) { pc.ClaimMapping.Username = "claims.sub" }) != want {
		t.Fatal("the claim mapping changed the fingerprint")
	}
	for name, edit := range map[string]func(*ProviderConfig){
		"name":           func(pc *ProviderConfig) { pc.Name = "other" },
		"issuer":         func(pc *ProviderConfig) { pc.Issuer += "/" },
		"jwks_uri":       func(pc *ProviderConfig) { pc.JWKSURI = r.iss.JWKSURL() },
		"audiences":      func(pc *ProviderConfig) { pc.Audiences = []string{"berth", "more"} },
		"algorithms":     func(pc *ProviderConfig) { pc.Algorithms = []string{"ES256"} },
		"clock_skew":     func(pc *ProviderConfig) { pc.ClockSkew = time.Second },
		"max_token_age":  func(pc *ProviderConfig) { pc.MaxTokenAge = time.Hour },
		"required":       func(pc *ProviderConfig) { pc.RequiredClaims = []string{"sub"} },
		"preset":         func(pc *ProviderConfig) { pc.Preset = "kubernetes" },
		"certificate_ca": func(pc *ProviderConfig) { pc.CACertPEM = r.iss.CAPEM() },
	} {
		if name == "certificate_ca" && len(r.iss.CAPEM()) == 0 {
			tls := newIssuer(t, devissuer.Options{TLS: true})
			edit = func(pc *ProviderConfig) { pc.CACertPEM = tls.CAPEM() }
		}
		if fp(edit) == want {
			t.Errorf("changing %s keeps the fingerprint", name)
		}
	}
}

// An entry is used only until the token's validity ends, and a hit checks
// the token's times again with the local clock: a stale entry (left by a
// Redis that did not expire it, or by a replica with a wrong clock) does not
// make an expired token pass.
func TestSharedTokenExpiry(t *testing.T) {
	r := newReplicas(t)
	a, b := r.replica(nil), r.replica(nil)
	tok := r.iss.Mint(map[string]any{"sub": "x", "aud": "berth", "exp": r.clk.Now().Add(time.Minute).Unix()})
	r.verified(a, tok)
	r.down()
	r.clk.Advance(time.Minute + DefaultClockSkew)
	before := len(r.sc.tokenGets())
	_, err := b.Verify(context.Background(), tok)
	refused(t, err, auth.ErrUnavailable, "no keys cached", "") // the entry is a miss
	if len(r.sc.tokenGets()) != before+1 {
		t.Fatal("B did not read the entry")
	}

	// An entry whose until is still ahead, for an expired token.
	key := r.sc.tokenSets()[0]
	r.sc.mu.Lock()
	r.sc.m[key] = fmt.Appendf(nil, `{"v":1,"fp":%q,"until":%d}`, b.providers["gen"].fingerprint, r.clk.Now().Add(time.Hour).UnixMilli())
	r.sc.mu.Unlock()
	_, err = b.Verify(context.Background(), tok)
	refused(t, err, auth.ErrInvalidCredentials, "expired", "")

	// Undecodable entries, another version or another fingerprint: misses.
	for _, val := range []string{`{"v":1,"fp":`, `null`, `{}`,
		fmt.Sprintf(`{"v":2,"fp":%q,"until":%d}`, b.providers["gen"].fingerprint, r.clk.Now().Add(time.Hour).UnixMilli()),
		fmt.Sprintf(`{"v":1,"fp":"00","until":%d}`, r.clk.Now().Add(time.Hour).UnixMilli())} {
		fresh := r.iss.Mint(map[string]any{"sub": "y", "aud": "berth"})
		r.sc.mu.Lock()
		r.sc.m[sharedTokenKey(b.providers["gen"], fresh)] = []byte(val)
		r.sc.mu.Unlock()
		_, err = b.Verify(context.Background(), fresh)
		refused(t, err, auth.ErrUnavailable, "no keys cached", "")
	}
}

// The claim mapping runs again on the replica that uses an entry: its own
// username, groups and validations.
func TestSharedTokenMappingReapplied(t *testing.T) {
	r := newReplicas(t)
	a := r.replica(nil)
	b := r.replica(func(pc *ProviderConfig) {
		pc.ClaimMapping = ClaimMapping{Username: "'b:' + claims.sub", Groups: "[string(claims.team)]"}
	})
	c := r.replica(func(pc *ProviderConfig) {
		pc.ClaimMapping = ClaimMapping{Validations: []Validation{{Expression: "claims.team == 'ops'", Message: "ops only"}}}
	})
	tok := r.iss.Mint(map[string]any{"sub": "x", "aud": "berth", "team": "dev"})
	if id := r.verified(a, tok); id.Username != r.iss.URL()+"/x" {
		t.Fatalf("A: %q", id.Username)
	}
	r.down()
	id, err := b.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if id.Username != "b:x" || id.ID != "oidc:gen:b:x" || len(id.Groups) != 1 || id.Groups[0] != "dev" {
		t.Fatalf("B's identity %+v: its mapping was not applied", id)
	}
	_, err = c.Verify(context.Background(), tok)
	refused(t, err, auth.ErrInvalidCredentials, "ops only", tok)
}

// A failing shared cache is a miss: verification goes on as without it, and
// never lets a token through that the replica cannot verify.
func TestSharedTokenCacheErrors(t *testing.T) {
	r := newReplicas(t)
	var logs bytes.Buffer
	r.log = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, b := r.replica(nil), r.replica(nil)
	tok := r.iss.Mint(map[string]any{"sub": "x-3b9f", "aud": "berth"})
	defer func() {
		out := logs.String()
		if !strings.Contains(out, "shared token cache unavailable") {
			t.Errorf("the shared cache errors were not logged:\n%s", out)
		}
		if strings.Contains(out, tok[strings.LastIndexByte(tok, '.')+1:]) || strings.Contains(out, "x-3b9f") ||
			strings.Contains(out, sharedTokenKey(a.providers["gen"], tok)) {
			t.Errorf("the log shows the token, a claim or the entry's key:\n%s", out)
		}
	}()
	r.verified(a, tok)
	r.sc.mu.Lock()
	r.sc.getErr = errors.New("connection refused")
	r.sc.setErr = errors.New("connection refused")
	r.sc.mu.Unlock()
	// Issuer up: B verifies with the issuer's keys.
	jwks := r.iss.JWKSFetches()
	if _, err := b.Verify(context.Background(), tok); err != nil {
		t.Fatalf("shared cache down, issuer up: %v", err)
	}
	b.writing.Wait()
	if r.iss.JWKSFetches() != jwks+1 {
		t.Fatal("B did not fetch the keys itself")
	}
	// Issuer down too: refused, although the entry exists.
	c := r.replica(nil)
	r.down()
	_, err := c.Verify(context.Background(), tok)
	refused(t, err, auth.ErrUnavailable, "no keys cached", "")
}

// Nothing is shared for a token that fails verification, whatever the step.
func TestSharedTokenNothingForRefused(t *testing.T) {
	r := newReplicas(t)
	a := r.replica(func(pc *ProviderConfig) {
		pc.ClaimMapping.Validations = []Validation{{Expression: "claims.sub != 'mallory'", Message: "not mallory"}}
	})
	mint := func(claims map[string]any, sign devissuer.Signing) string {
		tok, err := r.iss.MintWith(nil, claims, devissuer.MintOptions{Sign: sign})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	for _, tok := range []string{
		mint(map[string]any{"sub": "x", "aud": "berth"}, devissuer.SignCorrupt),
		mint(map[string]any{"sub": "x", "aud": "other"}, devissuer.SignKey),
		mint(map[string]any{"sub": "x", "aud": "berth", "exp": r.clk.Now().Add(-time.Hour).Unix()}, devissuer.SignKey),
		mint(map[string]any{"sub": "mallory", "aud": "berth"}, devissuer.SignKey),
	} {
		if _, err := a.Verify(context.Background(), tok); err == nil {
			t.Fatal("accepted")
		}
	}
	a.writing.Wait()
	if n := len(r.sc.tokenSets()); n != 0 {
		t.Fatalf("%d entries written for refused tokens", n)
	}
	r.verified(a, mint(map[string]any{"sub": "x", "aud": "berth"}, devissuer.SignKey))
	if n := len(r.sc.tokenSets()); n != 1 {
		t.Fatalf("%d entries for an accepted token, want 1", n)
	}
}

// The write never delays a verification: Verify returns while the shared
// cache's Set is blocked, verifications meanwhile queue up to
// sharedQueueMax, and further ones are not shared (dropped, not waited for).
func TestSharedTokenWriteAsync(t *testing.T) {
	r := newReplicas(t)
	a := r.replica(nil)
	r.verified(a, r.iss.Mint(map[string]any{"sub": "warm", "aud": "berth"})) // keys loaded
	release := make(chan struct{})
	entered := make(chan string, 2*sharedQueueMax)
	r.sc.mu.Lock()
	r.sc.block, r.sc.entered = release, entered
	r.sc.mu.Unlock()
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()

	done := make(chan error, 1)
	go func() {
		_, err := a.Verify(context.Background(), r.iss.Mint(map[string]any{"sub": "s0", "aud": "berth"}))
		done <- err
	}()
	<-entered // the writer is now blocked in Set
	watchdog := time.NewTimer(time.Minute)
	defer watchdog.Stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-watchdog.C:
		t.Fatal("Verify waits for the shared cache write")
	}

	// Fill the queue, then some: those are not queued.
	for i := 1; i <= sharedQueueMax+3; i++ {
		if _, err := a.Verify(context.Background(), r.iss.Mint(map[string]any{"sub": fmt.Sprintf("s%d", i), "aud": "berth"})); err != nil {
			t.Fatal(err)
		}
	}
	a.queue.mu.Lock()
	queued := len(a.queue.items)
	a.queue.mu.Unlock()
	if queued != sharedQueueMax {
		t.Fatalf("%d writes queued, want %d", queued, sharedQueueMax)
	}
	close(release)
	a.writing.Wait()
	if n := len(r.sc.tokenSets()); n != 2+sharedQueueMax {
		t.Fatalf("%d writes, want %d (warm-up, s0 and a full queue)", n, 2+sharedQueueMax)
	}
	// The writer ended with an empty queue; the next verification starts one.
	r.verified(a, r.iss.Mint(map[string]any{"sub": "after", "aud": "berth"}))
	if n := len(r.sc.tokenSets()); n != 3+sharedQueueMax {
		t.Fatalf("%d writes after the queue was drained, want %d", n, 3+sharedQueueMax)
	}
}

// Close drops the queued writes and ends the writer, even while a write is
// blocked.
func TestSharedTokenClose(t *testing.T) {
	r := newReplicas(t)
	a, err := func() (*Verifier, error) {
		v, _, err := New([]ProviderConfig{{Name: "gen", Issuer: r.iss.URL(), Audiences: []string{"berth"}}}, Options{Now: r.clk.Now, Shared: r.sc})
		return v, err
	}()
	if err != nil {
		t.Fatal(err)
	}
	r.verified(a, r.iss.Mint(map[string]any{"sub": "warm", "aud": "berth"}))
	entered := make(chan string, 8)
	r.sc.mu.Lock()
	r.sc.block, r.sc.entered = make(chan struct{}), entered // never released
	r.sc.mu.Unlock()
	for i := range 3 {
		if _, err := a.Verify(context.Background(), r.iss.Mint(map[string]any{"sub": fmt.Sprint(i), "aud": "berth"})); err != nil {
			t.Fatal(err)
		}
	}
	<-entered
	a.Close() // returns: the blocked Set sees its context end
	a.writing.Wait()
	// After Close nothing is queued.
	if _, err := a.Verify(context.Background(), r.iss.Mint(map[string]any{"sub": "late", "aud": "berth"})); err != nil {
		t.Fatal(err)
	}
	a.writing.Wait()
	if n := len(r.sc.tokenSets()); n != 1 {
		t.Fatalf("%d writes, want only the warm-up", n)
	}
}

// Without the local token cache nothing is shared either.
func TestSharedTokenOffWithoutCache(t *testing.T) {
	r := newReplicas(t)
	v := newVerifier(t, Options{Now: r.clk.Now, Shared: r.sc, CacheSize: -1},
		ProviderConfig{Name: "gen", Issuer: r.iss.URL(), Audiences: []string{"berth"}})
	r.verified(v, r.iss.Mint(map[string]any{"sub": "x", "aud": "berth"}))
	if len(r.sc.tokenSets())+len(r.sc.tokenGets()) != 0 {
		t.Fatal("shared token cache used with CacheSize < 0")
	}
}

// The entry's hand-written JSON is what encoding/json writes and reads back.
func TestSharedTokenEncode(t *testing.T) {
	e := sharedToken{V: sharedTokenVersion, Fingerprint: strings.Repeat("ab", 32), Until: 1_750_000_123_456}
	want, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	if got := e.encode(); string(got) != string(want) {
		t.Fatalf("encode %s, encoding/json %s", got, want)
	}
	var back sharedToken
	if err := json.Unmarshal(e.encode(), &back); err != nil || back != e {
		t.Fatalf("decoded %+v, %v", back, err)
	}
	// The key: prefix + hex SHA-256(fingerprint || raw), the same through the
	// reused buffer.
	p := &provider{fingerprint: strings.Repeat("0f", 32)}
	sum := sha256.Sum256([]byte(p.fingerprint + "a.b.c"))
	if got := sharedTokenKey(p, "a.b.c"); got != sharedTokenPrefix+hex.EncodeToString(sum[:]) {
		t.Fatalf("key %s", got)
	}
	buf := []byte("left over from a longer token, left over from a longer token")
	if sharedTokenKeyBuf(&buf, p, "a.b.c") != sharedTokenKey(p, "a.b.c") {
		t.Fatal("the reused buffer changes the key")
	}
}
