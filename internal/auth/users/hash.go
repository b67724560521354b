package users

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Hash algorithms accepted by Hash.
const (
	AlgorithmBcrypt   = "bcrypt"
	AlgorithmArgon2id = "argon2id"
)

// DefaultBcryptCost is the bcrypt cost Hash uses.
const DefaultBcryptCost = 12

// DefaultArgon2id are the parameters Hash uses for argon2id: RFC 9106's second
// recommended option (64 MiB, 3 passes, 4 lanes), a 16-byte salt and a 32-byte key.
var DefaultArgon2id = Argon2idParams{Memory: 64 * 1024, Time: 3, Threads: 4, SaltLen: 16, KeyLen: 32}

// Argon2idParams are argon2id cost parameters. Memory is in KiB.
type Argon2idParams struct {
	Memory  uint32
	Time    uint32
	Threads uint8
	SaltLen int
	KeyLen  int
}

// Bounds on argon2id parameters read from configuration: a hash that would
// need more than 1 GiB or 64 passes per login is a mistake, not a policy.
const (
	maxArgonMemory  = 1 << 20 // KiB
	maxArgonTime    = 64
	maxArgonThreads = 64
	minArgonSalt    = 8
	minArgonKey     = 16
	maxArgonKey     = 1024
	maxPasswordLen  = 4096
)

// Hash hashes password for use in the configuration (`berth hash-password`).
// algorithm is "bcrypt" (the default when empty, cost 12) or "argon2id"
// (DefaultArgon2id).
func Hash(password, algorithm string) (string, error) {
	return hashWith(password, algorithm, DefaultBcryptCost, DefaultArgon2id)
}

// hashWith is Hash with explicit costs, so tests stay cheap.
func hashWith(password, algorithm string, bcryptCost int, argon Argon2idParams) (string, error) {
	if password == "" {
		return "", errors.New("users: empty password")
	}
	switch algorithm {
	case "", AlgorithmBcrypt:
		return hashBcrypt(password, bcryptCost)
	case AlgorithmArgon2id:
		return HashArgon2id(password, argon)
	default:
		return "", fmt.Errorf("users: unknown hash algorithm %q (want bcrypt or argon2id)", algorithm)
	}
}

func hashBcrypt(password string, cost int) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return "", fmt.Errorf("users: bcrypt: %w", err)
	}
	return string(h), nil
}

// HashArgon2id hashes password with argon2id and explicit parameters and
// returns a PHC string.
func HashArgon2id(password string, p Argon2idParams) (string, error) {
	if password == "" {
		return "", errors.New("users: empty password")
	}
	if err := p.check(); err != nil {
		return "", fmt.Errorf("users: %w", err)
	}
	salt := make([]byte, p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("users: salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, uint32(p.KeyLen))
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

func (p Argon2idParams) check() error {
	switch {
	case p.Memory < 8*uint32(p.Threads) || p.Memory > maxArgonMemory:
		return fmt.Errorf("argon2id memory %d KiB out of range [8*p, %d]", p.Memory, maxArgonMemory)
	case p.Time < 1 || p.Time > maxArgonTime:
		return fmt.Errorf("argon2id time %d out of range [1, %d]", p.Time, maxArgonTime)
	case p.Threads < 1 || p.Threads > maxArgonThreads:
		return fmt.Errorf("argon2id parallelism %d out of range [1, %d]", p.Threads, maxArgonThreads)
	case p.SaltLen < minArgonSalt:
		return fmt.Errorf("argon2id salt of %d bytes is shorter than %d", p.SaltLen, minArgonSalt)
	case p.KeyLen < minArgonKey || p.KeyLen > maxArgonKey:
		return fmt.Errorf("argon2id hash of %d bytes out of range [%d, %d]", p.KeyLen, minArgonKey, maxArgonKey)
	}
	return nil
}

// verifier checks a password against one parsed hash.
type verifier interface {
	verify(password []byte) bool
}

type bcryptHash []byte

func (h bcryptHash) verify(password []byte) bool {
	return bcrypt.CompareHashAndPassword(h, password) == nil
}

type argon2idHash struct {
	p    Argon2idParams
	salt []byte
	key  []byte
}

func (h *argon2idHash) verify(password []byte) bool {
	k := argon2.IDKey(password, h.salt, h.p.Time, h.p.Memory, h.p.Threads, uint32(len(h.key)))
	return subtle.ConstantTimeCompare(k, h.key) == 1
}

// parseHash parses a bcrypt or argon2id hash. Errors never quote the hash.
func parseHash(s string) (verifier, error) {
	switch {
	case strings.HasPrefix(s, "$2a$"), strings.HasPrefix(s, "$2b$"), strings.HasPrefix(s, "$2y$"):
		if _, err := bcrypt.Cost([]byte(s)); err != nil {
			return nil, fmt.Errorf("malformed bcrypt hash: %w", err)
		}
		return bcryptHash(s), nil
	case strings.HasPrefix(s, "$argon2id$"):
		return parseArgon2id(s)
	case strings.HasPrefix(s, "$argon2i$"), strings.HasPrefix(s, "$argon2d$"):
		return nil, errors.New("only argon2id is accepted, not argon2i or argon2d")
	case s == "":
		return nil, errors.New("empty password hash")
	default:
		return nil, errors.New("unsupported password hash (want bcrypt $2a$/$2b$/$2y$ or $argon2id$)")
	}
}

// parseArgon2id parses $argon2id$v=19$m=M,t=T,p=P$salt$hash. Salt and hash are
// base64 without padding (PHC); padded base64 is tolerated.
func parseArgon2id(s string) (verifier, error) {
	parts := strings.Split(s, "$")
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, hash
	if len(parts) != 6 {
		return nil, errors.New("malformed argon2id hash: want $argon2id$v=19$m=M,t=T,p=P$salt$hash")
	}
	if parts[2] != "v=19" {
		return nil, errors.New("malformed argon2id hash: only version v=19 is supported")
	}
	var p Argon2idParams
	seen := map[string]bool{}
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || seen[k] {
			return nil, errors.New("malformed argon2id parameters")
		}
		seen[k] = true
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("malformed argon2id parameter %q", k)
		}
		switch k {
		case "m":
			p.Memory = uint32(n)
		case "t":
			p.Time = uint32(n)
		case "p":
			if n > maxArgonThreads {
				return nil, fmt.Errorf("argon2id parallelism %d out of range [1, %d]", n, maxArgonThreads)
			}
			p.Threads = uint8(n)
		default:
			return nil, fmt.Errorf("unknown argon2id parameter %q", k)
		}
	}
	if !seen["m"] || !seen["t"] || !seen["p"] {
		return nil, errors.New("malformed argon2id hash: m, t and p are required")
	}
	salt, err := decodeB64(parts[4])
	if err != nil {
		return nil, errors.New("malformed argon2id salt")
	}
	key, err := decodeB64(parts[5])
	if err != nil {
		return nil, errors.New("malformed argon2id hash value")
	}
	p.SaltLen, p.KeyLen = len(salt), len(key)
	if err := p.check(); err != nil {
		return nil, err
	}
	return &argon2idHash{p: p, salt: salt, key: key}, nil
}

func decodeB64(s string) ([]byte, error) {
	return base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
}
