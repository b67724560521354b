package users

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
	"unicode"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sync/singleflight"

	"github.com/berth-registry/berth/internal/auth"
)

// User is a static user from the configuration.
type User struct {
	Username     string
	PasswordHash string
}

// Options tune a Store. The zero value is usable.
type Options struct {
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// CacheTTL is how long verified credentials are remembered; 60s when
	// zero, no caching when negative.
	CacheTTL time.Duration
}

const (
	defaultCacheTTL  = 60 * time.Second
	maxCacheEntries  = 4096
	maxUsernameLen   = 256
	maxHtpasswdBytes = 16 << 20
)

// Store checks static users' passwords. It is safe for concurrent use.
type Store struct {
	users map[string]verifier
	dummy verifier // compared for unknown users so timing does not reveal them
	now   func() time.Time
	ttl   time.Duration
	mac   []byte // HMAC key for cache keys, random per Store

	group singleflight.Group
	mu    sync.Mutex
	cache map[[sha256.Size]byte]cacheEntry
}

type cacheEntry struct {
	username string
	expires  time.Time
}

// New builds a Store from inline users and, when htpasswdPath is not empty, an
// htpasswd file of bcrypt hashes. Every malformed or unsupported hash, invalid
// or duplicate username is an error naming the user (never the hash).
func New(list []User, htpasswdPath string, o Options) (*Store, error) {
	s := &Store{
		users: make(map[string]verifier, len(list)),
		now:   o.Now,
		ttl:   o.CacheTTL,
		mac:   make([]byte, 32),
		cache: map[[sha256.Size]byte]cacheEntry{},
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.ttl == 0 {
		s.ttl = defaultCacheTTL
	}
	if _, err := rand.Read(s.mac); err != nil {
		return nil, fmt.Errorf("users: %w", err)
	}
	var errs []error
	var first verifier
	add := func(where, name, hash string) {
		if err := validUsername(name); err != nil {
			errs = append(errs, fmt.Errorf("users: %s: user %q: %w", where, name, err))
			return
		}
		if _, dup := s.users[name]; dup {
			errs = append(errs, fmt.Errorf("users: %s: user %q is defined more than once", where, name))
			return
		}
		v, err := parseHash(hash)
		if err != nil {
			errs = append(errs, fmt.Errorf("users: %s: user %q: %w", where, name, err))
			return
		}
		s.users[name] = v
		if first == nil {
			first = v
		}
	}
	for i, u := range list {
		add(fmt.Sprintf("users[%d]", i), u.Username, u.PasswordHash)
	}
	if htpasswdPath != "" {
		if err := readHtpasswd(htpasswdPath, add); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	d, err := dummyLike(first)
	if err != nil {
		return nil, err
	}
	s.dummy = d
	return s, nil
}

// readHtpasswd calls add for each "user:hash" line. Only bcrypt is accepted:
// htpasswd's other formats (MD5 apr1, SHA-1, crypt, plain) are too weak.
func readHtpasswd(path string, add func(where, name, hash string)) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("users: htpasswd: %w", err)
	}
	if len(b) > maxHtpasswdBytes {
		return fmt.Errorf("users: htpasswd %s: larger than %d bytes", path, maxHtpasswdBytes)
	}
	var errs []error
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), maxHtpasswdBytes)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		where := fmt.Sprintf("htpasswd %s line %d", path, n)
		name, hash, ok := strings.Cut(line, ":")
		if !ok {
			errs = append(errs, fmt.Errorf("users: %s: want user:bcrypt-hash", where))
			continue
		}
		if !strings.HasPrefix(hash, "$2a$") && !strings.HasPrefix(hash, "$2b$") && !strings.HasPrefix(hash, "$2y$") {
			errs = append(errs, fmt.Errorf("users: %s: user %q: only bcrypt hashes are accepted in htpasswd files (use htpasswd -B)", where, name))
			continue
		}
		add(where, name, hash)
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("users: htpasswd %s: %w", path, err))
	}
	return errors.Join(errs...)
}

func validUsername(name string) error {
	switch {
	case name == "":
		return errors.New("empty username")
	case len(name) > maxUsernameLen:
		return fmt.Errorf("username longer than %d bytes", maxUsernameLen)
	case strings.Contains(name, ":"):
		return errors.New("username contains ':' (impossible in HTTP Basic credentials)")
	case strings.IndexFunc(name, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return errors.New("username contains whitespace or control characters")
	}
	return nil
}

// dummyLike returns a hash that costs about as much to check as like.
func dummyLike(like verifier) (verifier, error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("users: %w", err)
	}
	switch h := like.(type) {
	case *argon2idHash:
		return &argon2idHash{p: h.p, salt: secret[:16], key: append([]byte(nil), secret[16:]...)}, nil
	case bcryptHash:
		cost, err := bcrypt.Cost(h)
		if err != nil {
			return nil, fmt.Errorf("users: %w", err)
		}
		return newDummyBcrypt(secret, cost)
	default:
		// No users: every name is unknown, so timing reveals nothing.
		return newDummyBcrypt(secret, bcrypt.MinCost)
	}
}

func newDummyBcrypt(secret []byte, cost int) (verifier, error) {
	h, err := bcrypt.GenerateFromPassword(secret, cost)
	if err != nil {
		return nil, fmt.Errorf("users: %w", err)
	}
	return bcryptHash(h), nil
}

// errInvalid never says whether the username or the password was wrong.
var errInvalid = fmt.Errorf("users: wrong username or password: %w", auth.ErrInvalidCredentials)

// Has reports whether username is a configured user.
func (s *Store) Has(username string) bool {
	_, ok := s.users[username]
	return ok
}

// Len is the number of configured users.
func (s *Store) Len() int { return len(s.users) }

// Check verifies username and password. It returns the identity
// "user:<username>" or an error wrapping auth.ErrInvalidCredentials (or the
// context's error). The returned Identity is the caller's to modify.
func (s *Store) Check(ctx context.Context, username, password string) (*auth.Identity, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if username == "" || len(username) > maxUsernameLen || len(password) > maxPasswordLen {
		return nil, errInvalid
	}
	key := s.cacheKey(username, password)
	if s.cached(key, username) {
		return identity(username), nil
	}
	ok, _, _ := s.group.Do(string(key[:]), func() (any, error) {
		pw := []byte(password)
		h, known := s.users[username]
		if !known {
			s.dummy.verify(pw)
			return false, nil
		}
		if !h.verify(pw) {
			return false, nil
		}
		s.remember(key, username)
		return true, nil
	})
	if v, _ := ok.(bool); !v {
		return nil, errInvalid
	}
	return identity(username), nil
}

func identity(username string) *auth.Identity {
	return &auth.Identity{ID: "user:" + username, Username: username}
}

// cacheKey is an HMAC rather than a bare SHA-256 so a memory dump does not
// allow an offline dictionary attack on cached passwords.
func (s *Store) cacheKey(username, password string) [sha256.Size]byte {
	m := hmac.New(sha256.New, s.mac)
	m.Write([]byte(username))
	m.Write([]byte{0})
	m.Write([]byte(password))
	var k [sha256.Size]byte
	m.Sum(k[:0])
	return k
}

func (s *Store) cached(key [sha256.Size]byte, username string) bool {
	if s.ttl < 0 {
		return false
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.cache[key]
	if !ok {
		return false
	}
	if !now.Before(e.expires) {
		delete(s.cache, key)
		return false
	}
	return e.username == username
}

func (s *Store) remember(key [sha256.Size]byte, username string) {
	if s.ttl < 0 {
		return
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.cache) >= maxCacheEntries {
		for k, e := range s.cache {
			if !now.Before(e.expires) {
				delete(s.cache, k)
			}
		}
		// Still full: drop an arbitrary eighth (map order is random).
		for k := range s.cache {
			if len(s.cache) < maxCacheEntries-maxCacheEntries/8 {
				break
			}
			delete(s.cache, k)
		}
	}
	s.cache[key] = cacheEntry{username: username, expires: now.Add(s.ttl)}
}
