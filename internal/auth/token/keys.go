package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
)

// signingKey is the key access tokens are signed and verified with.
type signingKey struct {
	alg    jose.SignatureAlgorithm
	pub    crypto.PublicKey
	kid    string // RFC 7638 thumbprint of the public key
	signer jose.Signer
	// header is the protected header segment every token this key signs
	// starts with: a cheap, exact way to route a bearer token to berth.
	header string
}

// loadOrCreateKey reads the PEM private key at path, or generates a P-256 key
// and stores it there (0600, never overwriting a key another process wrote
// first).
func loadOrCreateKey(path string, log *slog.Logger) (*signingKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if err := createKey(path); err != nil {
			return nil, err
		}
		log.Info("token: generated a new signing key", "path", path)
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("token: key file: %w", err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		log.Warn("token: key file is readable by group or others; chmod 600 it", "path", path, "mode", fi.Mode().Perm().String())
	}
	priv, err := parseKeyPEM(b)
	if err != nil {
		return nil, fmt.Errorf("token: key file %s: %w", path, err)
	}
	return newSigningKey(priv)
}

// parseKeyPEM accepts a PKCS#8 "PRIVATE KEY" (P-256 ECDSA or Ed25519) or a
// SEC 1 "EC PRIVATE KEY" on P-256.
func parseKeyPEM(b []byte) (crypto.Signer, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("no PEM block")
	}
	var key any
	var err error
	switch blk.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(blk.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q: want PRIVATE KEY or EC PRIVATE KEY", blk.Type)
	}
	if err != nil {
		return nil, err
	}
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("ECDSA key on %s: want P-256 (ES256)", k.Curve.Params().Name)
		}
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	default:
		return nil, fmt.Errorf("unsupported key type %T: want ECDSA P-256 or Ed25519", key)
	}
}

func newSigningKey(priv crypto.Signer) (*signingKey, error) {
	k := &signingKey{pub: priv.Public()}
	switch priv.(type) {
	case *ecdsa.PrivateKey:
		k.alg = jose.ES256
	case ed25519.PrivateKey:
		k.alg = jose.EdDSA
	default:
		return nil, fmt.Errorf("token: unsupported key type %T", priv)
	}
	tp, err := (&jose.JSONWebKey{Key: k.pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("token: key thumbprint: %w", err)
	}
	k.kid = base64.RawURLEncoding.EncodeToString(tp)
	k.signer, err = jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: jose.JSONWebKey{Key: priv, KeyID: k.kid}},
		(&jose.SignerOptions{}).WithType(accessTokenTyp))
	if err != nil {
		return nil, fmt.Errorf("token: signer: %w", err)
	}
	probe, err := k.signer.Sign([]byte("{}"))
	if err != nil {
		return nil, fmt.Errorf("token: signer: %w", err)
	}
	compact, err := probe.CompactSerialize()
	if err != nil {
		return nil, fmt.Errorf("token: signer: %w", err)
	}
	k.header, _, _ = strings.Cut(compact, ".")
	return k, nil
}

// GenerateKeyPEM returns a new P-256 signing key as a PKCS#8 PEM block, the
// form KeyFile and KeyPEM take.
func GenerateKeyPEM() ([]byte, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("token: generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("token: encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// createKey writes a new P-256 key to path atomically: a temporary file in
// the same directory, fsynced, then hard-linked into place so a key written
// concurrently by another process is never replaced.
func createKey(path string) error {
	data, err := GenerateKeyPEM()
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("token: key directory: %w", err)
	}
	tmp, err := writeTemp(dir, ".key-*", data)
	if err != nil {
		return fmt.Errorf("token: write key: %w", err)
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil // another process won; use its key
		}
		// Some filesystems have no hard links; fall back to rename.
		if err := os.Rename(tmp, path); err != nil {
			return fmt.Errorf("token: install key: %w", err)
		}
	}
	return syncDir(dir)
}

// writeTemp writes data to a new 0600 file in dir, fsyncs and closes it, and
// returns its name.
func writeTemp(dir, pattern string, data []byte) (string, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return "", err
	}
	name := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o600)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
		return "", err
	}
	return name, nil
}

// writeAtomic replaces path with data: readers see the old or the new file,
// never a torn one.
func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := writeTemp(dir, ".tmp-*", data)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	// Some platforms cannot fsync a directory; the rename is still atomic.
	_ = d.Sync()
	return nil
}
