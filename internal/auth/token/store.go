package token

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/berth-registry/berth/internal/auth"
)

// Opaque token prefixes. The rest is <id>_<secret>, both lower-case base32.
const (
	RefreshPrefix = "berth_rt_"
	SessionPrefix = "berth_st_"
)

const (
	kindRefresh = "refresh"
	kindSession = "session"

	idBytes       = 12 // 20 base32 characters
	secretBytes   = 32 // 52 base32 characters
	maxRecordSize = 64 << 10
	recordVersion = 1
)

var b32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

var (
	idLen     = b32.EncodedLen(idBytes)
	secretLen = b32.EncodedLen(secretBytes)
)

// refusal is why an opaque token was refused; its text is safe to log and to
// show the client (it never contains the token).
type refusal string

func (r refusal) Error() string { return "token: " + string(r) }
func (r refusal) Unwrap() error { return auth.ErrInvalidCredentials }

const (
	refusedMalformed = refusal("malformed refresh/session token")
	refusedUnknown   = refusal("unknown refresh/session token")
	refusedRevoked   = refusal("refresh/session token revoked")
	refusedExpired   = refusal("refresh/session token expired")
	refusedIP        = refusal("refresh/session token not usable from this client IP")
	refusedUses      = refusal("refresh/session token use limit reached")
)

// record is the server-side state of one refresh or session token, stored as
// <StateDir>/<id>.json. It never holds the secret, only its SHA-256.
type record struct {
	V            int       `json:"v"`
	ID           string    `json:"id"`
	Kind         string    `json:"kind"`
	SecretSHA256 string    `json:"secret_sha256"`
	Identity     snapshot  `json:"identity"`
	Created      time.Time `json:"created"`
	Expires      time.Time `json:"expires"`
	MaxExpires   time.Time `json:"max_expires"`
	TTLSeconds   int64     `json:"ttl_seconds"`
	Uses         int       `json:"uses"`
	MaxUses      int       `json:"max_uses,omitempty"`
	TrustedIPs   []string  `json:"trusted_ips,omitempty"`
	LastUsed     time.Time `json:"last_used,omitzero"`
	Revoked      time.Time `json:"revoked,omitzero"`
}

// snapshot is the part of an Identity a token carries.
type snapshot struct {
	ID           string         `json:"id"`
	Username     string         `json:"username,omitempty"`
	Groups       []string       `json:"groups,omitempty"`
	OIDCProvider string         `json:"oidc_provider,omitempty"`
	OIDCClaims   map[string]any `json:"oidc_claims,omitempty"`
}

func snapshotOf(id *auth.Identity) snapshot {
	s := snapshot{ID: id.ID, Username: id.Username, Groups: id.Groups}
	if id.OIDC != nil {
		s.OIDCProvider, s.OIDCClaims = id.OIDC.ProviderName, id.OIDC.Claims
	}
	return s
}

func (s snapshot) identity(clientIP string) *auth.Identity {
	id := &auth.Identity{ID: s.ID, Username: s.Username, Groups: s.Groups, ClientIP: clientIP}
	if s.OIDCProvider != "" {
		id.OIDC = &auth.OIDC{ProviderName: s.OIDCProvider, Claims: s.OIDCClaims}
		if id.OIDC.Claims == nil {
			id.OIDC.Claims = map[string]any{}
		}
	}
	return id
}

// Store keeps the records of refresh and session tokens, as opaque bytes
// under their id. The file store (one JSON file per id in Options.StateDir)
// is the default; a store shared by several replicas (Redis) makes use
// counts and revocations hold across them.
type Store interface {
	// Create stores a new record under id. It must be kept at least for ttl
	// (the token's maximum lifetime); a store may drop it after.
	Create(ctx context.Context, id string, rec []byte, ttl time.Duration) error
	// Update calls fn with the record of id (nil when there is none) and, when
	// fn returns a non-nil record, stores it. Updates of one id MUST be
	// atomic with respect to each other, in this process and in every other
	// sharing the store: a use counted by one is seen by the next.
	Update(ctx context.Context, id string, fn func(rec []byte) ([]byte, error)) error
}

// pruner is implemented by stores that need dead records deleted (the file
// store); others expire them themselves.
type pruner interface {
	prune() (int, error)
}

// fileStore keeps records as files. Updates of one id are serialised by an
// in-process lock stripe; nothing coordinates separate processes, so two
// processes MUST NOT share one directory.
type fileStore struct {
	dir   string
	now   func() time.Time
	locks [64]sync.Mutex
}

func newFileStore(dir string, now func() time.Time) (*fileStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("token: state directory: %w", err)
	}
	return &fileStore{dir: dir, now: now}, nil
}

func (st *fileStore) lock(id string) *sync.Mutex {
	h := fnv.New32a()
	h.Write([]byte(id))
	return &st.locks[h.Sum32()%uint32(len(st.locks))]
}

func (st *fileStore) path(id string) string { return filepath.Join(st.dir, id+".json") }

// Create writes the record file.
func (st *fileStore) Create(_ context.Context, id string, rec []byte, _ time.Duration) error {
	mu := st.lock(id)
	mu.Lock()
	defer mu.Unlock()
	if err := writeAtomic(st.path(id), rec); err != nil {
		return fmt.Errorf("token: store record: %w: %w", auth.ErrUnavailable, err)
	}
	return nil
}

// Update reads, changes and replaces the record file under the id's lock.
func (st *fileStore) Update(_ context.Context, id string, fn func([]byte) ([]byte, error)) error {
	mu := st.lock(id)
	mu.Lock()
	defer mu.Unlock()
	b, err := os.ReadFile(st.path(id))
	if errors.Is(err, fs.ErrNotExist) {
		b, err = nil, nil
	}
	if err != nil {
		return fmt.Errorf("token: read record: %w: %w", auth.ErrUnavailable, err)
	}
	out, err := fn(b)
	if err != nil || out == nil {
		return err
	}
	if err := writeAtomic(st.path(id), out); err != nil {
		return fmt.Errorf("token: store record: %w: %w", auth.ErrUnavailable, err)
	}
	return nil
}

// prune deletes records that can no longer be used (expired, revoked or not)
// and temporary files left by a crash. It returns how many records went.
func (st *fileStore) prune() (int, error) {
	entries, err := os.ReadDir(st.dir)
	if err != nil {
		return 0, fmt.Errorf("token: prune: %w", err)
	}
	now := st.now()
	n := 0
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".tmp-") {
			if fi, err := e.Info(); err == nil && now.Sub(fi.ModTime()) > time.Hour {
				os.Remove(filepath.Join(st.dir, name))
			}
			continue
		}
		id, ok := strings.CutSuffix(name, ".json")
		if !ok || len(id) != idLen || !isB32(id) {
			continue
		}
		mu := st.lock(id)
		mu.Lock()
		var rec record
		b, err := os.ReadFile(st.path(id))
		if err == nil && json.Unmarshal(b, &rec) == nil && !now.Before(rec.Expires) {
			if os.Remove(st.path(id)) == nil {
				n++
			}
		}
		mu.Unlock()
	}
	return n, nil
}

// tokens is the refresh/session token logic on top of a Store.
type tokens struct {
	st  Store
	now func() time.Time
}

// create issues a new opaque token of kind for id under lim (already defaulted).
func (t *tokens) create(ctx context.Context, kind string, id *auth.Identity, lim Limits) (string, *record, error) {
	buf := make([]byte, idBytes+secretBytes)
	if _, err := rand.Read(buf); err != nil {
		return "", nil, fmt.Errorf("token: random: %w", err)
	}
	tid, secret := b32.EncodeToString(buf[:idBytes]), b32.EncodeToString(buf[idBytes:])
	now := t.now().UTC()
	sum := sha256.Sum256([]byte(secret))
	rec := &record{
		V: recordVersion, ID: tid, Kind: kind, SecretSHA256: hex.EncodeToString(sum[:]),
		Identity: snapshotOf(id), Created: now,
		MaxExpires: now.Add(lim.MaxTTL), TTLSeconds: int64(lim.TTL / time.Second),
		MaxUses: lim.MaxUses,
	}
	rec.Expires = minTime(now.Add(lim.TTL), rec.MaxExpires)
	for _, p := range lim.TrustedIPs {
		rec.TrustedIPs = append(rec.TrustedIPs, p.String())
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return "", nil, fmt.Errorf("token: encode record: %w", err)
	}
	if len(b) > maxRecordSize {
		return "", nil, errTooLarge
	}
	if err := t.st.Create(ctx, tid, b, lim.MaxTTL); err != nil {
		return "", nil, fmt.Errorf("token: store record: %w: %w", auth.ErrUnavailable, err)
	}
	prefix := RefreshPrefix
	if kind == kindSession {
		prefix = SessionPrefix
	}
	return prefix + tid + "_" + secret, rec, nil
}

// parseOpaque splits a refresh/session token. Only well-formed ids reach the
// store, so no path or key can be smuggled in.
func parseOpaque(raw string) (id, secret string, ok bool) {
	rest, ok := strings.CutPrefix(raw, RefreshPrefix)
	if !ok {
		if rest, ok = strings.CutPrefix(raw, SessionPrefix); !ok {
			return "", "", false
		}
	}
	id, secret, ok = strings.Cut(rest, "_")
	if !ok || len(id) != idLen || len(secret) != secretLen || !isB32(id) || !isB32(secret) {
		return "", "", false
	}
	return id, secret, true
}

func isB32(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '2' || c > '7') {
			return false
		}
	}
	return true
}

// decode parses the stored record b of id and checks secret.
func decode(b []byte, id, secret string) (*record, error) {
	if b == nil {
		return nil, refusedUnknown
	}
	var rec record
	if err := json.Unmarshal(b, &rec); err != nil || rec.V != recordVersion || rec.ID != id {
		return nil, fmt.Errorf("token: record %s is corrupt: %w", id, auth.ErrUnavailable)
	}
	sum := sha256.Sum256([]byte(secret))
	want, err := hex.DecodeString(rec.SecretSHA256)
	if err != nil || subtle.ConstantTimeCompare(sum[:], want) != 1 {
		return nil, refusedUnknown
	}
	return &rec, nil
}

func encode(rec *record) ([]byte, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("token: encode record: %w", err)
	}
	return b, nil
}

// use checks a refresh/session token presented from clientIP and counts the
// use: not revoked, not expired, from a trusted IP, under MaxUses. A
// successful use renews the expiry by the TTL, never beyond MaxExpires.
func (t *tokens) use(ctx context.Context, raw, clientIP string) (*record, error) {
	id, secret, ok := parseOpaque(raw)
	if !ok {
		return nil, refusedMalformed
	}
	var out *record
	err := t.st.Update(ctx, id, func(b []byte) ([]byte, error) {
		rec, err := decode(b, id, secret)
		if err != nil {
			return nil, err
		}
		now := t.now().UTC()
		switch {
		case !rec.Revoked.IsZero():
			return nil, refusedRevoked
		case !now.Before(rec.Expires):
			return nil, refusedExpired
		case !ipTrusted(rec.TrustedIPs, clientIP):
			return nil, refusedIP
		case rec.MaxUses > 0 && rec.Uses >= rec.MaxUses:
			return nil, refusedUses
		}
		rec.Uses++
		rec.LastUsed = now
		rec.Expires = minTime(now.Add(time.Duration(rec.TTLSeconds)*time.Second), rec.MaxExpires)
		out = rec
		return encode(rec)
	})
	if err != nil {
		var ref refusal
		if !errors.As(err, &ref) && !errors.Is(err, auth.ErrUnavailable) {
			err = fmt.Errorf("token: %w: %w", auth.ErrUnavailable, err)
		}
		return nil, err
	}
	return out, nil
}

// revoke marks the token revoked. Unknown or malformed tokens are not an
// error (RFC 7009 §2.2): the caller answers 200 either way.
func (t *tokens) revoke(ctx context.Context, raw string) (bool, error) {
	id, secret, ok := parseOpaque(raw)
	if !ok {
		return false, nil
	}
	known := false
	err := t.st.Update(ctx, id, func(b []byte) ([]byte, error) {
		rec, err := decode(b, id, secret)
		if err != nil {
			return nil, err
		}
		known = true
		if !rec.Revoked.IsZero() {
			return nil, nil
		}
		rec.Revoked = t.now().UTC()
		return encode(rec)
	})
	if errors.Is(err, auth.ErrInvalidCredentials) {
		return false, nil
	}
	if err != nil {
		if !errors.Is(err, auth.ErrUnavailable) {
			err = fmt.Errorf("token: %w: %w", auth.ErrUnavailable, err)
		}
		return known, err
	}
	return true, nil
}

// ipTrusted is auth.AddrTrusted over a record's stored prefixes; one that
// no longer parses trusts nothing.
func ipTrusted(prefixes []string, clientIP string) bool {
	if len(prefixes) == 0 {
		return true
	}
	parsed := make([]netip.Prefix, 0, len(prefixes))
	for _, s := range prefixes {
		if p, err := netip.ParsePrefix(s); err == nil {
			parsed = append(parsed, p)
		}
	}
	return len(parsed) > 0 && auth.AddrTrusted(parsed, clientIP)
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
