package credclient

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// HelperName is what credHelpers names: clients run docker-credential-<name>.
const HelperName = "berth"

// Paths are the files the helper and berth login use.
type Paths struct {
	// Settings holds each registry's URL, provider, audience and token
	// source (written by berth login, read by the helper).
	Settings string
	// CacheDir holds one session-token file per registry.
	CacheDir string
	// DockerConfig is docker's config.json.
	DockerConfig string
	// AuthJSON is the containers auth.json (podman, skopeo, buildah).
	AuthJSON string
}

// DefaultPaths derives the paths from the environment:
//
//	settings   $BERTH_CONFIG_DIR/credential-helper.json, else
//	           ${XDG_CONFIG_HOME:-$HOME/.config}/berth/credential-helper.json
//	cache      $BERTH_CACHE_DIR, else ${XDG_CACHE_HOME:-$HOME/.cache}/berth/credentials
//	docker     ${DOCKER_CONFIG:-$HOME/.docker}/config.json
//	auth.json  $REGISTRY_AUTH_FILE, else $XDG_RUNTIME_DIR/containers/auth.json, else
//	           ${XDG_CONFIG_HOME:-$HOME/.config}/containers/auth.json
func DefaultPaths(getenv func(string) string) (Paths, error) {
	home := getenv("HOME")
	need := func(what string) (string, error) {
		if home == "" {
			return "", fmt.Errorf("HOME is not set: cannot locate %s", what)
		}
		return home, nil
	}
	or := func(v string, def func() (string, error)) (string, error) {
		if v != "" {
			return v, nil
		}
		return def()
	}
	configHome, err := or(getenv("XDG_CONFIG_HOME"), func() (string, error) {
		h, err := need("the configuration directory")
		return filepath.Join(h, ".config"), err
	})
	if err != nil {
		return Paths{}, err
	}
	var p Paths
	if d := getenv("BERTH_CONFIG_DIR"); d != "" {
		p.Settings = filepath.Join(d, "credential-helper.json")
	} else {
		p.Settings = filepath.Join(configHome, "berth", "credential-helper.json")
	}
	if d := getenv("BERTH_CACHE_DIR"); d != "" {
		p.CacheDir = d
	} else if d := getenv("XDG_CACHE_HOME"); d != "" {
		p.CacheDir = filepath.Join(d, "berth", "credentials")
	} else {
		h, err := need("the cache directory")
		if err != nil {
			return Paths{}, err
		}
		p.CacheDir = filepath.Join(h, ".cache", "berth", "credentials")
	}
	if d := getenv("DOCKER_CONFIG"); d != "" {
		p.DockerConfig = filepath.Join(d, "config.json")
	} else {
		h, err := need("docker's config.json")
		if err != nil {
			return Paths{}, err
		}
		p.DockerConfig = filepath.Join(h, ".docker", "config.json")
	}
	switch {
	case getenv("REGISTRY_AUTH_FILE") != "":
		p.AuthJSON = getenv("REGISTRY_AUTH_FILE")
	case getenv("XDG_RUNTIME_DIR") != "":
		p.AuthJSON = filepath.Join(getenv("XDG_RUNTIME_DIR"), "containers", "auth.json")
	default:
		p.AuthJSON = filepath.Join(configHome, "containers", "auth.json")
	}
	return p, nil
}

// writeAtomic writes b to path through a temporary file in the same
// directory and a rename, so a reader sees the old or the new file, never
// a part. The file gets mode perm; missing directories are made 0700.
func writeAtomic(path string, b []byte, perm fs.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename there is nothing to remove
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// jsonObject is a JSON file read as an object whose members are kept as
// they are, so rewriting one member keeps every other key.
type jsonObject map[string]json.RawMessage

// readJSONObject reads path; a missing or empty file is an empty object.
func readJSONObject(path string) (jsonObject, fs.FileMode, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return jsonObject{}, 0o600, nil
	}
	if err != nil {
		return nil, 0, err
	}
	mode := fs.FileMode(0o600)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return jsonObject{}, mode, nil
	}
	var o jsonObject
	if err := json.Unmarshal(b, &o); err != nil {
		return nil, 0, fmt.Errorf("%s: not a JSON object: %w", path, err)
	}
	if o == nil {
		o = jsonObject{}
	}
	return o, mode, nil
}

// setCredHelper sets credHelpers[host] in the JSON file at path to helper
// ("" deletes it), keeping every other key. It returns the previous value
// ("" when there was none) and whether the file changed.
func setCredHelper(path, host, helper string) (previous string, changed bool, err error) {
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real // a symlinked config (dotfiles) stays a symlink
	}
	o, mode, err := readJSONObject(path)
	if err != nil {
		return "", false, err
	}
	helpers := map[string]json.RawMessage{}
	if raw, ok := o["credHelpers"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &helpers); err != nil {
			return "", false, fmt.Errorf("%s: credHelpers is not an object: %w", path, err)
		}
	}
	if raw, ok := helpers[host]; ok {
		if err := json.Unmarshal(raw, &previous); err != nil {
			return "", false, fmt.Errorf("%s: credHelpers[%q] is not a string", path, host)
		}
	}
	if previous == helper {
		return previous, false, nil
	}
	if helper == "" {
		delete(helpers, host)
	} else {
		helpers[host], _ = json.Marshal(helper)
	}
	if len(helpers) == 0 {
		delete(o, "credHelpers")
	} else if o["credHelpers"], err = json.Marshal(helpers); err != nil {
		return "", false, err
	}
	b, err := json.MarshalIndent(o, "", "\t")
	if err != nil {
		return "", false, err
	}
	if err := writeAtomic(path, append(b, '\n'), mode); err != nil {
		return "", false, err
	}
	return previous, true, nil
}

// RegistryHost returns the host[:port] a registry argument or a client's
// server URL names ("https://registry.example.com/v2/" →
// "registry.example.com"), and the URL of the registry (https unless the
// argument says http).
func RegistryHost(s string) (string, *url.URL, error) {
	raw := strings.TrimSpace(s)
	if !strings.Contains(raw, "://") {
		raw = "https://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return "", nil, fmt.Errorf("registry %q: want HOST[:PORT] or an http(s) URL", s)
	}
	host := strings.ToLower(u.Host)
	for _, c := range host {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.ContainsRune(".-:[]_", c)) {
			return "", nil, fmt.Errorf("registry %q: %q is not a host name", s, u.Host)
		}
	}
	return host, &url.URL{Scheme: u.Scheme, Host: host}, nil
}
