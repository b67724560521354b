package token

// Signing keys and their rotation.
//
// The Service signs access tokens with one key, the current key, and verifies
// them with the key their kid names, among:
//
//   - the current key;
//   - with generated keys (no KeyFile or KeyPEM), the next key: generated one
//     rotation interval before it starts signing, so every replica knows it
//     before any replica signs with it;
//   - keys retired less than AccessTTL + clockSkew ago: a token they signed
//     may still be valid. A token signed by a key retired longer ago is
//     refused, like any bad token;
//   - PreviousKeyFiles, for as long as they are configured (an operator
//     rotating a KeyFile by hand);
//   - a KeyFile key that ReloadKeys replaced, for AccessTTL + clockSkew.
//
// Generated keys live in a keyring document in a KeyringStore: Redis for
// replicas sharing one, a directory (NewFileKeyring), or process memory.
// RefreshKeys reads it and, when the current key is due, rotates it with a
// compare-and-swap of the whole document: replicas that race to rotate agree
// on the one document that won, so exactly one new key is created.

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// KeyringStore keeps the keyring document of generated signing keys where
// every replica of one registry sees it. The document holds private keys:
// stores MUST keep it from anyone but berth.
type KeyringStore interface {
	// LoadKeyring returns the stored document, nil when there is none.
	LoadKeyring(ctx context.Context) ([]byte, error)
	// SwapKeyring stores next if the stored document is still old (nil:
	// none is stored), atomically; false when another writer came first.
	SwapKeyring(ctx context.Context, old, next []byte) (bool, error)
}

// DefaultKeyRotationInterval is how often generated signing keys are
// rotated when Options.KeyRotationInterval is zero; a negative interval
// disables rotation.
const DefaultKeyRotationInterval = 24 * time.Hour

// keyringPoll is how often RunKeyRotation reads the keyring besides the
// moment the current key is due: it picks up a rotation another replica made
// (which it could already verify: it knew the next key).
const keyringPoll = 30 * time.Second

// ringDoc is the keyring document (JSON).
type ringDoc struct {
	Keys []ringKey `json:"keys"`
}

// ringKey is one generated key. Without Activated it is the next key; with
// Activated and no Retired the current one; with Retired a previous one.
type ringKey struct {
	// PEM is the PKCS#8 private key while the key is next or current, its
	// PKIX public key once retired.
	PEM       string     `json:"pem"`
	Created   time.Time  `json:"created"`
	Activated *time.Time `json:"activated,omitempty"`
	Retired   *time.Time `json:"retired,omitempty"`
}

// verifyKey is a key access tokens are verified with.
type verifyKey struct {
	*signingKey
	until time.Time // tokens are refused after this; zero: no limit
}

// keySet is what signing and verification use; it is replaced as a whole.
type keySet struct {
	current *signingKey
	byKid   map[string]verifyKey
	headers []string  // protected headers of every key in byKid (IsBerthToken)
	due     time.Time // when the current key is to be rotated; zero: never
}

func (ks *keySet) add(k *signingKey, until time.Time) {
	if old, ok := ks.byKid[k.kid]; ok {
		// The same key twice (a previous key file that is the current key):
		// the longer validity wins.
		if old.until.IsZero() || (!until.IsZero() && until.Before(old.until)) {
			return
		}
	} else {
		ks.headers = append(ks.headers, k.header)
	}
	ks.byKid[k.kid] = verifyKey{signingKey: k, until: until}
}

// keyState is the Service's key material besides the active keySet.
type keyState struct {
	mu       sync.Mutex // serialises RefreshKeys and ReloadKeys
	ring     KeyringStore
	interval time.Duration // of generated keys; <= 0: never rotated
	fixed    *signingKey   // the KeyFile/KeyPEM key; nil with generated keys
	previous []*signingKey // PreviousKeyFiles
	replaced []verifyKey   // fixed keys ReloadKeys replaced, with their end
	lastDoc  []byte        // the keyring document the active set came from
}

// window is how long after its retirement a key still verifies tokens.
func (s *Service) window() time.Duration { return s.o.AccessTTL + clockSkew }

// publicKeyHeader is the protected header go-jose writes for a token signed
// by a key with this algorithm and kid (map keys in order, as encoding/json
// marshals go-jose's header map).
func publicKeyHeader(alg jose.SignatureAlgorithm, kid string) string {
	h := fmt.Sprintf(`{"alg":%q,"kid":%q,"typ":%q}`, alg, kid, accessTokenTyp)
	return base64.RawURLEncoding.EncodeToString([]byte(h))
}

// newVerifyingKey returns a verification-only key for pub.
func newVerifyingKey(pub crypto.PublicKey) (*signingKey, error) {
	k := &signingKey{pub: pub}
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		if p.Curve != elliptic.P256() {
			return nil, fmt.Errorf("ECDSA key on %s: want P-256 (ES256)", p.Curve.Params().Name)
		}
		k.alg = jose.ES256
	case ed25519.PublicKey:
		k.alg = jose.EdDSA
	default:
		return nil, fmt.Errorf("unsupported key type %T: want ECDSA P-256 or Ed25519", pub)
	}
	tp, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("key thumbprint: %w", err)
	}
	k.kid = base64.RawURLEncoding.EncodeToString(tp)
	k.header = publicKeyHeader(k.alg, k.kid)
	return k, nil
}

// parseAnyKeyPEM returns a signing key for a private key PEM, and a
// verification-only key for a "PUBLIC KEY" PEM.
func parseAnyKeyPEM(b []byte) (*signingKey, error) {
	blk, _ := pem.Decode(b)
	if blk != nil && blk.Type == "PUBLIC KEY" {
		pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, err
		}
		return newVerifyingKey(pub)
	}
	priv, err := parseKeyPEM(b)
	if err != nil {
		return nil, err
	}
	return newSigningKey(priv)
}

func publicPEM(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), nil
}

// loadPreviousKeys reads verification-only key files (private or public PEM).
func loadPreviousKeys(paths []string) ([]*signingKey, error) {
	var out []*signingKey
	var errs []error
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("token: previous key file: %w", err))
			continue
		}
		k, err := parseAnyKeyPEM(b)
		if err != nil {
			errs = append(errs, fmt.Errorf("token: previous key file %s: %w", p, err))
			continue
		}
		out = append(out, k)
	}
	return out, errors.Join(errs...)
}

// advance returns doc brought up to date at now: keys retired longer than
// window ago dropped, a current key (and with rotation a next key) present,
// the current key rotated when due. changed reports whether it differs.
func advance(doc ringDoc, now time.Time, interval, window time.Duration) (out ringDoc, changed bool, err error) {
	now = now.UTC().Round(0)
	for _, k := range doc.Keys {
		if k.Retired != nil && !now.Before(k.Retired.Add(window)) {
			changed = true
			continue
		}
		out.Keys = append(out.Keys, k)
	}
	cur, next := -1, -1
	for i, k := range out.Keys {
		switch {
		case k.Activated == nil:
			next = i
		case k.Retired == nil:
			if cur >= 0 { // two current keys (never written by berth): retire the older
				if err := retire(&out.Keys[cur], now); err != nil {
					return out, false, err
				}
				changed = true
			}
			cur = i
		}
	}
	activate := func() error {
		if next >= 0 {
			out.Keys[next].Activated = &now
			cur, next = next, -1
			return nil
		}
		k, err := newRingKey(now)
		if err != nil {
			return err
		}
		k.Activated = &now
		out.Keys = append(out.Keys, k)
		cur = len(out.Keys) - 1
		return nil
	}
	if cur < 0 {
		if err := activate(); err != nil {
			return out, false, err
		}
		changed = true
	}
	if interval > 0 {
		if !now.Before(out.Keys[cur].Activated.Add(interval)) {
			if err := retire(&out.Keys[cur], now); err != nil {
				return out, false, err
			}
			if err := activate(); err != nil {
				return out, false, err
			}
			changed = true
		}
		if next < 0 {
			k, err := newRingKey(now)
			if err != nil {
				return out, false, err
			}
			out.Keys = append(out.Keys, k)
			changed = true
		}
	}
	return out, changed, nil
}

func newRingKey(now time.Time) (ringKey, error) {
	b, err := GenerateKeyPEM()
	if err != nil {
		return ringKey{}, err
	}
	return ringKey{PEM: string(b), Created: now}, nil
}

// retire marks k retired at now and keeps only its public key.
func retire(k *ringKey, now time.Time) error {
	sk, err := parseAnyKeyPEM([]byte(k.PEM))
	if err != nil {
		return fmt.Errorf("token: keyring: %w", err)
	}
	p, err := publicPEM(sk.pub)
	if err != nil {
		return fmt.Errorf("token: keyring: %w", err)
	}
	k.PEM, k.Retired = p, &now
	return nil
}

// setFromDoc builds the key set of a keyring document.
func (s *Service) setFromDoc(doc ringDoc) (*keySet, error) {
	ks := &keySet{byKid: map[string]verifyKey{}}
	var activated time.Time
	for _, rk := range doc.Keys {
		k, err := parseAnyKeyPEM([]byte(rk.PEM))
		if err != nil {
			return nil, fmt.Errorf("token: keyring: %w", err)
		}
		var until time.Time
		switch {
		case rk.Retired != nil:
			until = rk.Retired.Add(s.window())
		case rk.Activated != nil:
			if k.signer == nil {
				return nil, errors.New("token: keyring: the current key has no private key")
			}
			if ks.current == nil || rk.Activated.After(activated) {
				ks.current, activated = k, *rk.Activated
				if s.keys.interval > 0 {
					ks.due = rk.Activated.Add(s.keys.interval)
				}
			}
		}
		ks.add(k, until)
	}
	if ks.current == nil {
		return nil, errors.New("token: keyring: no current key")
	}
	return ks, nil
}

// install makes ks (completed with the previous and replaced keys) the
// active set. Callers hold s.keys.mu.
func (s *Service) install(ks *keySet) {
	now := s.o.Now()
	for _, k := range s.keys.previous {
		ks.add(k, time.Time{})
	}
	live := s.keys.replaced[:0]
	for _, r := range s.keys.replaced {
		if now.Before(r.until) {
			ks.add(r.signingKey, r.until)
			live = append(live, r)
		}
	}
	s.keys.replaced = live
	old := s.active.Swap(ks)
	if old == nil {
		return
	}
	if old.current.kid != ks.current.kid {
		s.log.Info("token: signing access tokens with a new key", "kid", ks.current.kid, "previous_kid", old.current.kid)
	}
	for kid := range old.byKid {
		if _, ok := ks.byKid[kid]; !ok {
			// Tokens verified with a key that is gone must be checked again.
			s.verified.reset()
			break
		}
	}
}

// RefreshKeys reads the keyring of generated keys and rotates the current
// key when it is due (see KeyRotationInterval). With a KeyFile or KeyPEM it
// does nothing. On an error the keys in use stay.
func (s *Service) RefreshKeys(ctx context.Context) error {
	if s.keys.fixed != nil {
		return nil
	}
	s.keys.mu.Lock()
	defer s.keys.mu.Unlock()
	for range maxKeyringRetries {
		raw, err := s.keys.ring.LoadKeyring(ctx)
		if err != nil {
			return fmt.Errorf("token: load keyring: %w", err)
		}
		var doc ringDoc
		if raw != nil {
			if err := json.Unmarshal(raw, &doc); err != nil {
				return fmt.Errorf("token: keyring is damaged: %w", err)
			}
		}
		legacy := false
		if raw == nil && s.o.LegacyKey != nil {
			if doc, legacy, err = s.legacyDoc(ctx); err != nil {
				return err
			}
		}
		next, changed, err := advance(doc, s.o.Now(), s.keys.interval, s.window())
		if err != nil {
			return err
		}
		changed = changed || legacy
		if !changed {
			if bytes.Equal(raw, s.keys.lastDoc) && s.active.Load() != nil {
				return nil
			}
			ks, err := s.setFromDoc(doc)
			if err != nil {
				return err
			}
			s.install(ks)
			s.keys.lastDoc = raw
			return nil
		}
		b, err := json.Marshal(next)
		if err != nil {
			return fmt.Errorf("token: keyring: %w", err)
		}
		ks, err := s.setFromDoc(next)
		if err != nil {
			return err
		}
		ok, err := s.keys.ring.SwapKeyring(ctx, raw, b)
		if err != nil {
			return fmt.Errorf("token: store keyring: %w", err)
		}
		if !ok {
			continue // another replica rotated first: use its keyring
		}
		prev := ""
		if cur := s.active.Load(); cur != nil {
			prev = cur.current.kid
		}
		s.log.Info("token: keyring updated", "kid", ks.current.kid, "previous_kid", prev, "keys", len(next.Keys))
		s.install(ks)
		s.keys.lastDoc = b
		return nil
	}
	return errors.New("token: keyring: too much contention")
}

const maxKeyringRetries = 10

// legacyDoc is a keyring whose current key is Options.LegacyKey's, if any.
func (s *Service) legacyDoc(ctx context.Context) (ringDoc, bool, error) {
	b, err := s.o.LegacyKey(ctx)
	if err != nil || b == nil {
		return ringDoc{}, false, err
	}
	k, err := parseKeyPEM(b)
	if err != nil {
		return ringDoc{}, false, fmt.Errorf("token: previous signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return ringDoc{}, false, fmt.Errorf("token: previous signing key: %w", err)
	}
	now := s.o.Now().UTC().Round(0)
	s.log.Info("token: the keyring starts with the signing key in use before key rotation")
	return ringDoc{Keys: []ringKey{{PEM: string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), Created: now, Activated: &now}}}, true, nil
}

// RunKeyRotation keeps generated keys up to date until ctx ends: it calls
// RefreshKeys when the current key is due and every 30 seconds (to follow
// rotations by other replicas). With a KeyFile it returns at once.
func (s *Service) RunKeyRotation(ctx context.Context) {
	if s.keys.fixed != nil {
		return
	}
	for {
		wait := keyringPoll
		if due := s.active.Load().due; !due.IsZero() {
			wait = min(wait, max(due.Sub(s.o.Now()), time.Second))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if err := s.RefreshKeys(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("token: refreshing the signing keys failed; the current keys stay", "err", err)
		}
	}
}

// ReloadKeys applies a new KeyFile and PreviousKeyFiles (a configuration
// reload). A KeyFile key it replaces keeps verifying the tokens it signed
// for AccessTTL + 30s. Switching between a KeyFile and generated keys needs
// a new Service. On an error nothing changes.
func (s *Service) ReloadKeys(keyFile string, previousKeyFiles []string) error {
	if (keyFile == "") != (s.keys.fixed == nil) || len(s.o.KeyPEM) > 0 {
		return errors.New("token: switching between a key file and generated keys needs a restart")
	}
	prev, err := loadPreviousKeys(previousKeyFiles)
	if err != nil {
		return err
	}
	var fixed *signingKey
	if keyFile != "" {
		if fixed, err = loadOrCreateKey(keyFile, s.log); err != nil {
			return err
		}
	}
	s.keys.mu.Lock()
	defer s.keys.mu.Unlock()
	var ks *keySet
	if fixed != nil {
		ks = &keySet{byKid: map[string]verifyKey{}, current: fixed}
		ks.add(fixed, time.Time{})
	} else {
		// Generated keys: the same keyring, other previous keys.
		var doc ringDoc
		if err := json.Unmarshal(s.keys.lastDoc, &doc); err != nil {
			return fmt.Errorf("token: keyring: %w", err)
		}
		if ks, err = s.setFromDoc(doc); err != nil {
			return err
		}
	}
	if fixed != nil && fixed.kid != s.keys.fixed.kid {
		s.keys.replaced = append(s.keys.replaced, verifyKey{signingKey: s.keys.fixed, until: s.o.Now().Add(s.window())})
		s.keys.fixed = fixed
	}
	s.keys.previous = prev
	s.install(ks)
	return nil
}

// ---------------------------------------------------------------------------
// keyring stores

// memKeyring is a KeyringStore in process memory (no StateDir shared).
type memKeyring struct {
	mu  sync.Mutex
	doc []byte
}

func (m *memKeyring) LoadKeyring(context.Context) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.doc, nil
}

func (m *memKeyring) SwapKeyring(_ context.Context, old, next []byte) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !bytes.Equal(m.doc, old) || (m.doc == nil) != (old == nil) {
		return false, nil
	}
	m.doc = next
	return true, nil
}

// FileKeyring is a KeyringStore in a directory, shared by processes on one
// filesystem: each version of the document is a new file keyring-<n>.json,
// created with a hard link that fails when another process created version n
// first (the compare-and-swap). The newest 16 versions are kept.
type FileKeyring struct{ dir string }

// NewFileKeyring returns the keyring in dir (created 0700 when needed).
func NewFileKeyring(dir string) *FileKeyring { return &FileKeyring{dir: dir} }

const keepKeyringVersions = 16

// newest returns the highest version in the directory (0: none) and all versions.
func (f *FileKeyring) versions() ([]int64, error) {
	entries, err := os.ReadDir(f.dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var vs []int64
	for _, e := range entries {
		n, ok := strings.CutPrefix(e.Name(), "keyring-")
		if n, ok2 := strings.CutSuffix(n, ".json"); ok && ok2 {
			if v, err := strconv.ParseInt(n, 10, 64); err == nil && v > 0 {
				vs = append(vs, v)
			}
		}
	}
	sort.Slice(vs, func(i, j int) bool { return vs[i] < vs[j] })
	return vs, nil
}

func (f *FileKeyring) path(v int64) string {
	return filepath.Join(f.dir, fmt.Sprintf("keyring-%016d.json", v))
}

// load returns the newest version and its document.
func (f *FileKeyring) load() (int64, []byte, error) {
	for range maxKeyringRetries {
		vs, err := f.versions()
		if err != nil || len(vs) == 0 {
			return 0, nil, err
		}
		v := vs[len(vs)-1]
		b, err := os.ReadFile(f.path(v))
		if errors.Is(err, fs.ErrNotExist) {
			continue // pruned by a newer writer meanwhile
		}
		return v, b, err
	}
	return 0, nil, errors.New("keyring directory changes too fast")
}

// LoadKeyring returns the newest version of the document.
func (f *FileKeyring) LoadKeyring(context.Context) ([]byte, error) {
	_, b, err := f.load()
	return b, err
}

// SwapKeyring writes next as a new version if the newest is still old.
func (f *FileKeyring) SwapKeyring(_ context.Context, old, next []byte) (bool, error) {
	v, cur, err := f.load()
	if err != nil {
		return false, err
	}
	if !bytes.Equal(cur, old) || (cur == nil) != (old == nil) {
		return false, nil
	}
	if err := os.MkdirAll(f.dir, 0o700); err != nil {
		return false, err
	}
	tmp, err := writeTemp(f.dir, ".tmp-*", next)
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, f.path(v+1)); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		return false, err
	}
	if err := syncDir(f.dir); err != nil {
		return false, err
	}
	if vs, err := f.versions(); err == nil && len(vs) > keepKeyringVersions {
		for _, o := range vs[:len(vs)-keepKeyringVersions] {
			os.Remove(f.path(o))
		}
	}
	return true, nil
}
