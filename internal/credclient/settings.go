package credclient

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"time"
)

// Registry is what berth login recorded for one registry.
type Registry struct {
	URL         string `json:"url"` // scheme://host[:port]
	Provider    string `json:"provider"`
	Audience    string `json:"audience,omitempty"`
	TokenSource string `json:"token_source"`
	CAFile      string `json:"ca_file,omitempty"`
	// Changed lists the client files berth login wrote credHelpers into,
	// with the value it replaced, so berth logout restores exactly that.
	Changed []FileChange `json:"changed,omitempty"`
}

// FileChange is one credHelpers entry berth login set.
type FileChange struct {
	File     string `json:"file"`
	Previous string `json:"previous,omitempty"`
}

// settings is the settings file.
type settings struct {
	Registries map[string]*Registry `json:"registries"`
}

func loadSettings(path string) (*settings, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &settings{Registries: map[string]*Registry{}}, nil
	}
	if err != nil {
		return nil, err
	}
	var s settings
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w (run berth login again, or remove the file)", path, err)
	}
	if s.Registries == nil {
		s.Registries = map[string]*Registry{}
	}
	return &s, nil
}

func (s *settings) save(path string) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(path, append(b, '\n'), 0o600)
}

func (s *settings) hosts() []string {
	hosts := make([]string, 0, len(s.Registries))
	for h := range s.Registries {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	return hosts
}

// cacheEntry is one registry's cached session token.
type cacheEntry struct {
	// Key is what the token was obtained with (URL, provider, audience,
	// source): a login with other settings does not reuse it.
	Key      string    `json:"key"`
	Token    string    `json:"token"`
	Obtained time.Time `json:"obtained"`
	Lifetime int64     `json:"lifetime_seconds"`
}

func (r *Registry) cacheKey() string {
	b, _ := json.Marshal([]string{r.URL, r.Provider, r.Audience, r.TokenSource, r.CAFile})
	return string(b)
}

// maxRenewMargin caps how long before its expiry a cached token is renewed.
const maxRenewMargin = 5 * time.Minute

// renewAt is when a token obtained at obtained, valid lifetime, is
// replaced: halfway through its lifetime, or 5 minutes before it
// expires, whichever is later. berth extends a session token by its
// lifetime on each use; the helper counts from issuance, so it never
// hands out a token berth may already have let expire.
func renewAt(obtained time.Time, lifetime time.Duration) time.Time {
	return obtained.Add(lifetime - min(lifetime/2, maxRenewMargin))
}

func (p Paths) cacheFile(host string) string {
	return p.CacheDir + string(os.PathSeparator) + host + ".json"
}

// readCache returns the cached entry for host, or nil.
func (p Paths) readCache(host string) *cacheEntry {
	b, err := os.ReadFile(p.cacheFile(host))
	if err != nil {
		return nil
	}
	var e cacheEntry
	if json.Unmarshal(b, &e) != nil || e.Token == "" {
		return nil
	}
	return &e
}

func (p Paths) writeCache(host string, e *cacheEntry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(p.CacheDir, 0o700); err != nil {
		return err
	}
	// The directory holds credentials: only its owner may list it.
	if err := os.Chmod(p.CacheDir, 0o700); err != nil {
		return err
	}
	return writeAtomic(p.cacheFile(host), b, 0o600)
}
