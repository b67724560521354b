package server

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"testing"

	"github.com/berth-registry/berth/internal/config"
	"github.com/berth-registry/berth/internal/redistest"
)

// listStore lists n repositories, r/00000 to r/<n-1>.
type listStore struct {
	fakeStore
	n int
}

func (s *listStore) ListRepositories(ctx context.Context, after string, n int) ([]string, error) {
	i := sort.Search(s.n, func(i int) bool { return fmt.Sprintf("r/%05d", i) > after })
	var out []string
	for ; i < s.n && (n < 0 || len(out) < n); i++ {
		out = append(out, fmt.Sprintf("r/%05d", i))
	}
	return out, nil
}

// cursorConfig serves the UI with a policy that lets anonymous users list
// nothing: the repository list's first page spends its scan budget (5,000
// names) and ends with an opaque ?cursor= to continue.
func cursorConfig(t *testing.T, rootDir string) *config.Config {
	t.Helper()
	doc := fmt.Sprintf(`[server]
bind_address = "127.0.0.1"
port = 0
[blob_store.fs]
root_dir = %q
[ui]
enabled = true
[global.access_policy]
default_allow = false
rules = ["identity.username == 'nobody'"]
`, rootDir)
	cfg, err := config.Parse([]byte(doc), "c.toml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

var cursorRE = regexp.MustCompile(`[?&;]cursor=([A-Za-z0-9_-]+)`)

// continueLink returns the repository list's ?cursor= from the server at addr.
func continueLink(t *testing.T, addr string) string {
	t.Helper()
	code, body := get(t, "http://"+addr+"/")
	m := cursorRE.FindStringSubmatch(body)
	if code != 200 || m == nil {
		t.Fatalf("GET / = %d, no cursor in:\n%s", code, body)
	}
	return m[1]
}

// continueStatus follows a Continue link on the server at addr.
func continueStatus(t *testing.T, addr, cursor string) int {
	t.Helper()
	code, _ := get(t, "http://"+addr+"/?q=&cursor="+cursor)
	return code
}

// The repository list's Continue link made by one replica works on another
// replica sharing its Redis (and nothing else: each has its own root_dir),
// and a cursor of a berth with another Redis prefix (another key) is still
// refused. The servers run one after the other: internal/redisstate.Open sets
// go-redis's process-wide logger, which races with another client's dials.
func TestUICursorKeySharedThroughRedis(t *testing.T) {
	srv := redistest.Start(t)
	store := &listStore{n: 6000}
	withRedis := func(prefix string) *config.Config {
		cfg := cursorConfig(t, t.TempDir())
		cfg.Cache.Redis = &config.Redis{URL: srv.URL(), KeyPrefix: prefix}
		return cfg
	}
	a := start(t, withRedis("cursortest:"), store, options{})
	cursor := continueLink(t, a.addr)
	if code := continueStatus(t, a.addr, cursor); code != 200 {
		t.Fatalf("the cursor on the replica that made it: %d", code)
	}
	if err := a.stop(t); err != nil {
		t.Fatal(err)
	}
	b := start(t, withRedis("cursortest:"), store, options{})
	if code := continueStatus(t, b.addr, cursor); code != 200 {
		t.Errorf("the cursor on another replica sharing Redis: %d, want 200", code)
	}
	if err := b.stop(t); err != nil {
		t.Fatal(err)
	}
	other := start(t, withRedis("elsewhere:"), store, options{})
	if code := continueStatus(t, other.addr, cursor); code != 400 {
		t.Errorf("the cursor on a berth with another Redis prefix: %d, want 400", code)
	}
}

// Without Redis the key is a 0600 file under root_dir: a Continue link
// still works after a restart on the same root_dir, not on another one.
func TestUICursorKeyFileSurvivesRestart(t *testing.T) {
	store := &listStore{n: 6000}
	root := t.TempDir()
	first := start(t, cursorConfig(t, root), store, options{})
	cursor := continueLink(t, first.addr)
	if err := first.stop(t); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(root, "_ui", "cursor-key")); err != nil {
		t.Error(err)
	} else if fi.Mode().Perm() != 0o600 || fi.Size() != 32 {
		t.Errorf("cursor key file: mode %v, %d bytes; want 0600, 32", fi.Mode().Perm(), fi.Size())
	}
	restarted := start(t, cursorConfig(t, root), store, options{})
	if code := continueStatus(t, restarted.addr, cursor); code != 200 {
		t.Errorf("the cursor after a restart on the same root_dir: %d, want 200", code)
	}
	other := start(t, cursorConfig(t, t.TempDir()), store, options{})
	if code := continueStatus(t, other.addr, cursor); code != 400 {
		t.Errorf("the cursor on another root_dir: %d, want 400", code)
	}
}
