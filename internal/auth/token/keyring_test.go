package token

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/berth-registry/berth/internal/auth"
	"github.com/berth-registry/berth/internal/testutil"
)

// issue signs an access token for alice now.
func issue(t *testing.T, s *Service) string {
	t.Helper()
	raw, _, _, err := s.signAccess(&auth.Identity{ID: "user:alice", Username: "alice"},
		[]auth.Access{{Type: "repository", Name: "alice/app", Actions: []string{"pull"}}})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// kidOf returns the kid in raw's protected header.
func kidOf(t *testing.T, raw string) string {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.SplitN(raw, ".", 2)[0])
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(b, &h); err != nil || h.Kid == "" {
		t.Fatalf("no kid in header %s: %v", b, err)
	}
	return h.Kid
}

// forgeWith signs claims like the service would, with key k, expiring in ttl.
func forgeWith(t *testing.T, f *fixture, k *signingKey, ttl time.Duration) string {
	t.Helper()
	now := f.clock.Now()
	claims := map[string]any{
		"iss": "berth", "aud": "berth", "sub": "user:alice", "access": []any{},
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(ttl).Unix(),
	}
	b, _ := json.Marshal(claims)
	jws, err := k.signer.Sign(b)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := jws.CompactSerialize()
	return s
}

func mustVerify(t *testing.T, s *Service, raw, what string) {
	t.Helper()
	if _, err := s.VerifyAccessToken(context.Background(), raw); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if !s.IsBerthToken(raw) {
		t.Fatalf("%s: IsBerthToken is false", what)
	}
}

func mustRefuse(t *testing.T, s *Service, raw, what, reason string) {
	t.Helper()
	_, err := s.VerifyAccessToken(context.Background(), raw)
	if !isInvalid(err) || !strings.Contains(err.Error(), reason) {
		t.Fatalf("%s: got %v, want invalid credentials (%s)", what, err, reason)
	}
}

func refresh(t *testing.T, s *Service) {
	t.Helper()
	if err := s.RefreshKeys(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func loadDoc(t *testing.T, ring KeyringStore) ringDoc {
	t.Helper()
	b, err := ring.LoadKeyring(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var doc ringDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

// generated is a fixture with generated keys rotated every interval.
func generated(ring KeyringStore, interval time.Duration, c *testutil.Clock) func(f *fixture) {
	return func(f *fixture) {
		f.opts.KeyFile = ""
		f.opts.Keyring = ring
		f.opts.KeyRotationInterval = interval
		if c != nil {
			f.clock = c
			f.opts.Now = c.Now
		}
	}
}

func TestKeyRotation(t *testing.T) {
	ring := NewFileKeyring(filepath.Join(t.TempDir(), "keys"))
	f := newFixture(t, generated(ring, time.Hour, nil))
	window := f.svc.window() // access TTL + clock skew
	if window != DefaultAccessTTL+clockSkew {
		t.Fatalf("window = %s", window)
	}
	k1 := f.svc.active.Load().current
	if doc := loadDoc(t, ring); len(doc.Keys) != 2 || doc.Keys[1].Activated != nil {
		t.Fatalf("a new keyring holds %d keys (want current and next): %+v", len(doc.Keys), doc)
	}

	f.clock.Advance(59 * time.Minute)
	refresh(t, f.svc)
	if f.svc.KeyID() != k1.kid {
		t.Fatal("rotated before the interval")
	}
	tok1 := issue(t, f.svc) // signed by k1 a minute before its retirement
	if kidOf(t, tok1) != k1.kid {
		t.Fatalf("token kid %s, want %s", kidOf(t, tok1), k1.kid)
	}

	f.clock.Advance(time.Minute)
	refresh(t, f.svc)
	k2 := f.svc.KeyID()
	if k2 == k1.kid {
		t.Fatal("no rotation after the interval")
	}
	tok2 := issue(t, f.svc)
	if kidOf(t, tok2) != k2 {
		t.Fatalf("new token kid %s, want the new key %s", kidOf(t, tok2), k2)
	}
	mustVerify(t, f.svc, tok1, "a token of the retired key, within its TTL")
	mustVerify(t, f.svc, tok2, "a token of the new key")
	if doc := loadDoc(t, ring); len(doc.Keys) != 3 || doc.Keys[0].Retired == nil || strings.Contains(doc.Keys[0].PEM, "PRIVATE") {
		t.Fatalf("keyring after rotation: %+v", doc)
	}
	if !strings.Contains(f.logs.String(), "keyring updated") {
		t.Error("rotation not logged")
	}

	// A replica that lags behind still signs with k1 after its retirement:
	// its tokens verify until the window ends...
	f.clock.Advance(window - time.Second)
	lagging := forgeWith(t, f, k1, time.Hour)
	mustVerify(t, f.svc, lagging, "a token of the retired key within the window")
	// ... and are refused after, with the same error path as any bad token,
	// also when their verification was cached.
	f.clock.Advance(time.Second)
	mustRefuse(t, f.svc, forgeWith(t, f, k1, time.Hour), "a token of a key retired too long ago", "retired too long ago")
	mustRefuse(t, f.svc, lagging, "a cached token of a key retired too long ago", "retired too long ago")
	refresh(t, f.svc) // drops k1 from the keyring
	if doc := loadDoc(t, ring); len(doc.Keys) != 2 {
		t.Fatalf("keyring still holds %d keys after the window", len(doc.Keys))
	}
	mustRefuse(t, f.svc, forgeWith(t, f, k1, time.Hour), "a token of a dropped key", "unknown key")
	if f.svc.IsBerthToken(forgeWith(t, f, k1, time.Hour)) {
		t.Error("IsBerthToken still claims tokens of a dropped key")
	}
	mustVerify(t, f.svc, tok2, "a token of the current key")

	// The next rotation comes one interval after the last.
	f.clock.Advance(time.Hour - window)
	refresh(t, f.svc)
	if f.svc.KeyID() == k2 {
		t.Fatal("no second rotation")
	}
	tok3 := issue(t, f.svc)

	// A restart reads the same keyring: same key, its tokens verify.
	again, err := New(f.opts)
	if err != nil {
		t.Fatal(err)
	}
	if again.KeyID() != f.svc.KeyID() {
		t.Fatal("a restart changed the signing key")
	}
	mustVerify(t, again, tok3, "a token signed before a restart")
}

func TestKeyRotationDisabled(t *testing.T) {
	ring := &memKeyring{}
	f := newFixture(t, generated(ring, -1, nil))
	k := f.svc.KeyID()
	tok := issue(t, f.svc)
	f.clock.Advance(1000 * time.Hour)
	refresh(t, f.svc)
	if f.svc.KeyID() != k {
		t.Fatal("rotated with rotation disabled")
	}
	if doc := loadDoc(t, ring); len(doc.Keys) != 1 {
		t.Fatalf("keyring holds %d keys, want 1", len(doc.Keys))
	}
	// Expired, but by its exp, not its key.
	mustRefuse(t, f.svc, tok, "an expired token", "exp")
	mustVerify(t, f.svc, issue(t, f.svc), "a fresh token")
}

func TestKidSelection(t *testing.T) {
	f := newFixture(t, nil)
	// A key nobody configured, with its own kid and with ours.
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ok, err := newSigningKey(other)
	if err != nil {
		t.Fatal(err)
	}
	mustRefuse(t, f.svc, forgeWith(t, f, ok, time.Minute), "a token of an unknown key", "unknown key")
	claims := map[string]any{"iss": "berth", "aud": "berth", "sub": "x", "exp": f.clock.Now().Add(time.Minute).Unix()}
	mustRefuse(t, f.svc, forge(t, other, jose.ES256, "", accessTokenTyp, claims), "a token without kid", "unknown key")
	mustRefuse(t, f.svc, forge(t, other, jose.ES256, f.svc.KeyID(), accessTokenTyp, claims), "another key with our kid", "signature")
	// Our kid with another algorithm.
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	mustRefuse(t, f.svc, forge(t, edPriv, jose.EdDSA, f.svc.KeyID(), accessTokenTyp, claims), "our kid, EdDSA", "algorithm")
}

// The protected header computed for verification-only keys is the one
// go-jose writes (IsBerthToken routes on it).
func TestPublicKeyHeader(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	for _, k := range []any{ec, ed} {
		var sk *signingKey
		var err error
		switch k := k.(type) {
		case *ecdsa.PrivateKey:
			sk, err = newSigningKey(k)
		case ed25519.PrivateKey:
			sk, err = newSigningKey(k)
		}
		if err != nil {
			t.Fatal(err)
		}
		vk, err := newVerifyingKey(sk.pub)
		if err != nil {
			t.Fatal(err)
		}
		if vk.header != sk.header || vk.kid != sk.kid || vk.alg != sk.alg {
			t.Errorf("%s: computed header %s, go-jose writes %s", sk.alg, vk.header, sk.header)
		}
	}
}

func writeKey(t *testing.T, dir, name string, public bool) (path string, k *signingKey) {
	t.Helper()
	b, err := GenerateKeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	if k, err = parseAnyKeyPEM(b); err != nil {
		t.Fatal(err)
	}
	if public {
		der, _ := x509.MarshalPKIXPublicKey(k.pub)
		b = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	}
	path = filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, k
}

func TestPreviousKeyFiles(t *testing.T) {
	dir := t.TempDir()
	old := newFixture(t, nil)
	oldTok := issue(t, old.svc)
	oldPub := filepath.Join(dir, "old.pub")
	der, _ := x509.MarshalPKIXPublicKey(old.svc.active.Load().current.pub)
	if err := os.WriteFile(oldPub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	newKey := filepath.Join(dir, "new.pem")
	for _, prev := range []string{old.opts.KeyFile, oldPub} {
		f := newFixture(t, func(f *fixture) {
			f.opts.KeyFile = newKey
			f.opts.PreviousKeyFiles = []string{prev}
		})
		if f.svc.KeyID() == old.svc.KeyID() {
			t.Fatal("a previous key signs")
		}
		if kidOf(t, issue(t, f.svc)) == old.svc.KeyID() {
			t.Fatal("a previous key signs")
		}
		mustVerify(t, f.svc, oldTok, "a token of "+filepath.Base(prev))
		// Previous key files have no retirement time: they verify as long
		// as they are configured (tokens still expire).
		f.clock.Advance(DefaultAccessTTL)
		mustVerify(t, f.svc, forgeWith(t, f, old.svc.active.Load().current, time.Minute), "a fresh token of a previous key")
	}
	without := newFixture(t, func(f *fixture) { f.opts.KeyFile = newKey })
	mustRefuse(t, without.svc, oldTok, "a token of a key no longer configured", "unknown key")
	if without.svc.IsBerthToken(oldTok) {
		t.Error("IsBerthToken claims a token of an unknown key")
	}

	// Bad previous key files are all reported.
	o := old.opts
	o.PreviousKeyFiles = []string{filepath.Join(dir, "missing.pem"), newKey + ".junk"}
	if err := os.WriteFile(newKey+".junk", []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := New(o)
	if err == nil || !strings.Contains(err.Error(), "missing.pem") || !strings.Contains(err.Error(), "no PEM block") {
		t.Fatalf("New with bad previous key files: %v", err)
	}
}

func TestReloadKeys(t *testing.T) {
	dir := t.TempDir()
	f := newFixture(t, nil)
	k1 := f.svc.active.Load().current
	tok1 := issue(t, f.svc)
	k2File, k2 := writeKey(t, dir, "k2.pem", false)
	if err := f.svc.ReloadKeys(k2File, nil); err != nil {
		t.Fatal(err)
	}
	if f.svc.KeyID() != k2.kid {
		t.Fatal("reload did not switch the signing key")
	}
	mustVerify(t, f.svc, tok1, "a token of the replaced key after a reload")
	mustVerify(t, f.svc, issue(t, f.svc), "a token of the new key")

	// Errors change nothing.
	if err := f.svc.ReloadKeys(filepath.Join(dir, "k3.pem"), []string{filepath.Join(dir, "missing.pem")}); err == nil {
		t.Fatal("reload with a missing previous key file accepted")
	}
	if err := f.svc.ReloadKeys("", nil); err == nil || !strings.Contains(err.Error(), "restart") {
		t.Fatalf("switching to generated keys on reload: %v", err)
	}
	if f.svc.KeyID() != k2.kid {
		t.Fatal("a refused reload changed the key")
	}

	// The replaced key verifies for the access TTL + skew after the reload.
	f.clock.Advance(f.svc.window() - time.Second)
	mustVerify(t, f.svc, forgeWith(t, f, k1, time.Minute), "the replaced key within the window")
	f.clock.Advance(time.Second)
	mustRefuse(t, f.svc, forgeWith(t, f, k1, time.Minute), "the replaced key after the window", "retired too long ago")

	// Unless the operator keeps it as a previous key.
	if err := f.svc.ReloadKeys(k2File, []string{f.opts.KeyFile}); err != nil {
		t.Fatal(err)
	}
	mustVerify(t, f.svc, forgeWith(t, f, k1, time.Minute), "the replaced key kept in previous_key_files")
	// Removing it again forgets tokens verified with it.
	if err := f.svc.ReloadKeys(k2File, nil); err != nil {
		t.Fatal(err)
	}
	mustRefuse(t, f.svc, forgeWith(t, f, k1, time.Minute), "a previous key removed by a reload", "unknown key")

	// Generated keys: a reload changes the previous keys only.
	g := newFixture(t, generated(&memKeyring{}, time.Hour, nil))
	cur := g.svc.KeyID()
	if err := g.svc.ReloadKeys("", []string{f.opts.KeyFile}); err != nil {
		t.Fatal(err)
	}
	if g.svc.KeyID() != cur {
		t.Fatal("a reload changed the generated key")
	}
	mustVerify(t, g.svc, forgeWith(t, g, k1, time.Minute), "a previous key file next to generated keys")
	if err := g.svc.ReloadKeys(k2File, nil); err == nil {
		t.Fatal("switching to a key file on reload accepted")
	}
}

// replicas checks the keyring contract on ring with services made by newReplica
// (all on clock c): they share one key, each verifies the others' tokens
// across a rotation (before it has read the keyring again), and replicas
// rotating at once create exactly one new key.
func replicas(t *testing.T, ring func() KeyringStore) {
	c := testutil.NewClock(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	const interval = time.Hour
	newReplica := func() *Service { return newFixture(t, generated(ring(), interval, c)).svc }
	a, b := newReplica(), newReplica()
	if a.KeyID() != b.KeyID() {
		t.Fatalf("replicas sign with different keys: %s, %s", a.KeyID(), b.KeyID())
	}
	mustVerify(t, b, issue(t, a), "A's token on B")
	first := a.KeyID()

	c.Advance(interval)
	refresh(t, a)
	if a.KeyID() == first {
		t.Fatal("A did not rotate")
	}
	// B has not read the keyring since: it knew A's new key as the next one.
	mustVerify(t, b, issue(t, a), "a token of A's new key on B before B refreshes")
	oldB := issue(t, b) // B still signs with the retired key
	mustVerify(t, a, oldB, "B's token of the retired key on A")
	refresh(t, b)
	if b.KeyID() != a.KeyID() {
		t.Fatalf("B did not follow A's rotation: %s, %s", b.KeyID(), a.KeyID())
	}

	// Concurrent rotation: many replicas, one new key. They start before
	// the key is due (the race is in RefreshKeys, not in New), and all read
	// the keyring before any of them writes it.
	br := &barrierRing{KeyringStore: ring()}
	var svcs []*Service
	for range 6 {
		svcs = append(svcs, newFixture(t, generated(br, interval, c)).svc)
	}
	c.Advance(interval)
	known := map[string]bool{}
	for kid := range a.active.Load().byKid {
		known[kid] = true
	}
	before := len(loadDoc(t, ring()).Keys)
	br.arm(len(svcs))
	var wg sync.WaitGroup
	errs := make(chan error, len(svcs)+2)
	for _, s := range svcs {
		wg.Go(func() { errs <- s.RefreshKeys(context.Background()) })
	}
	wg.Wait()
	errs <- a.RefreshKeys(context.Background())
	errs <- b.RefreshKeys(context.Background())
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	doc := loadDoc(t, ring())
	stored := map[string]bool{}
	for _, rk := range doc.Keys {
		k, err := parseAnyKeyPEM([]byte(rk.PEM))
		if err != nil {
			t.Fatal(err)
		}
		stored[k.kid] = true
	}
	created := map[string]bool{}
	for _, s := range append(svcs, a, b) {
		for kid := range s.active.Load().byKid {
			if !known[kid] {
				created[kid] = true
			}
			if !stored[kid] {
				t.Errorf("a replica verifies with key %s that is not in the stored keyring", kid)
			}
		}
	}
	if len(created) != 1 {
		t.Fatalf("concurrent rotation created %d keys, want 1 (keyring held %d keys before, %d after)", len(created), before, len(doc.Keys))
	}
	for _, s := range append(svcs, b) {
		if s.KeyID() != a.KeyID() {
			t.Fatalf("replicas disagree after a concurrent rotation: %s, %s", s.KeyID(), a.KeyID())
		}
	}
}

func TestFileKeyringReplicas(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	replicas(t, func() KeyringStore { return NewFileKeyring(dir) })
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("keyring directory: %v, %v", fi, err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if i, _ := e.Info(); i.Mode().Perm() != 0o600 {
			t.Errorf("%s is %s, want 0600", e.Name(), i.Mode().Perm())
		}
	}
}

func TestMemKeyringReplicas(t *testing.T) {
	ring := &memKeyring{}
	replicas(t, func() KeyringStore { return ring })
}

// barrierRing holds every LoadKeyring, once armed with n, until n of them
// have read the keyring: n replicas then race to rotate the same document.
type barrierRing struct {
	KeyringStore
	mu      sync.Mutex
	waiting int
	release chan struct{}
}

func (b *barrierRing) arm(n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.waiting, b.release = n, make(chan struct{})
}

func (b *barrierRing) LoadKeyring(ctx context.Context) ([]byte, error) {
	doc, err := b.KeyringStore.LoadKeyring(ctx)
	b.mu.Lock()
	var wait chan struct{}
	if b.waiting > 0 {
		wait = b.release
		if b.waiting--; b.waiting == 0 {
			close(b.release)
		}
	}
	b.mu.Unlock()
	if wait != nil {
		<-wait
	}
	return doc, err
}

// An empty keyring starts with the key berth signed with before it rotated
// keys: tokens signed before an upgrade stay valid, and it is rotated like
// any generated key.
func TestLegacyKeyAdopted(t *testing.T) {
	path, legacy := writeKey(t, t.TempDir(), "token-key.pem", false)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ring := &memKeyring{}
	calls := 0
	mod := func(f *fixture) {
		generated(ring, time.Hour, nil)(f)
		f.opts.LegacyKey = func(context.Context) ([]byte, error) { calls++; return b, nil }
	}
	f := newFixture(t, mod)
	if f.svc.KeyID() != legacy.kid {
		t.Fatalf("signing with %s, want the legacy key %s", f.svc.KeyID(), legacy.kid)
	}
	oldTok := forgeWith(t, f, legacy, time.Minute) // issued before the upgrade
	mustVerify(t, f.svc, oldTok, "a token of the legacy key")
	if doc := loadDoc(t, ring); len(doc.Keys) != 2 {
		t.Fatalf("keyring: %d keys, want the legacy key and a next key", len(doc.Keys))
	}
	newFixture(t, mod) // a second replica: the keyring exists, the legacy key is not read
	if calls != 1 {
		t.Fatalf("LegacyKey called %d times, want 1", calls)
	}
	f.clock.Advance(time.Hour)
	refresh(t, f.svc)
	if f.svc.KeyID() == legacy.kid {
		t.Fatal("the legacy key is never rotated")
	}
}
