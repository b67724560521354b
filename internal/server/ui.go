package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/berth-registry/berth/internal/storage"
	"github.com/berth-registry/berth/internal/ui"
)

// newUI builds the web UI ([ui] enabled): it reads the same store and asks
// the same gate as the /v2 API, and signs users in with the token service's
// session tokens (nobody can sign in when the token service is off).
func (a *app) newUI(ctx context.Context) (*ui.UI, error) {
	var st storage.Store = a.store
	if a.manifests != nil {
		st = cacheInvalidatingStore{Store: a.store, c: a.manifests}
	}
	o := ui.Options{Name: a.cfg.UI.Name, Store: st, Gate: a.gate, Logger: a.log, Now: a.now,
		CursorKey: a.cursorKey(ctx)}
	if a.tokens != nil {
		o.Sessions = a.tokens // only when set: a typed nil would not be nil in the interface
	}
	return ui.New(o)
}

// cursorKeyName names the UI's cursor key in Redis (<key_prefix>key:ui-cursor-key).
const cursorKeyName = "ui-cursor-key"

// cursorKeyFile is the UI's cursor key without Redis, under root_dir (next
// to the token service's _auth).
func cursorKeyFile(rootDir string) string { return filepath.Join(rootDir, "_ui", "cursor-key") }

// cursorKey is the key the UI seals the repository list's "Continue" cursors
// with, the same on every replica and across restarts: with [cache.redis]
// one random key all replicas share (the first to start stores it with SET
// NX, the others read it), otherwise a random key kept in
// <root_dir>/_ui/cursor-key (created 0600 on first start). When neither can
// be had it returns nil: the UI then draws a key per process, and a cursor
// works only on the process that made it, until it restarts.
func (a *app) cursorKey(ctx context.Context) []byte {
	var key []byte
	var err error
	if a.shared != nil {
		key, err = a.shared.LoadOrCreate(ctx, cursorKeyName, newCursorKey)
	} else {
		key, err = loadOrCreateKeyFile(cursorKeyFile(a.cfg.BlobStore.FS.RootDir))
	}
	if err == nil && len(key) != 32 {
		err = fmt.Errorf("the stored key has %d bytes, want 32", len(key))
	}
	if err != nil {
		a.log.Warn("ui: no lasting cursor key: a repository list's Continue link works only on this process until it restarts", "err", err)
		return nil
	}
	return key
}

func newCursorKey() ([]byte, error) {
	k := make([]byte, 32)
	_, err := rand.Read(k)
	return k, err
}

// loadOrCreateKeyFile reads the key at path, or makes a new random one
// there (mode 0600). Processes starting at once on one directory agree on a
// single key: each links its complete key file into place, the first wins
// and the others read it.
func loadOrCreateKeyFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return b, err
	}
	key, err := newCursorKey()
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(dir, ".tmp-key-*") // mode 0600
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(key)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	return os.ReadFile(path)
}
