package users

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/berth-registry/berth/internal/auth"
)

// Tests keep hashes cheap: bcrypt cost 4, tiny argon2id parameters.
var testArgon = Argon2idParams{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func bcryptHashT(t testing.TB, pw, prefix string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return prefix + string(h[len("$2a$"):])
}

func argonHashT(t testing.TB, pw string) string {
	t.Helper()
	h, err := HashArgon2id(pw, testArgon)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	htp := filepath.Join(dir, "htpasswd")
	content := "# comment\n\ncarol:" + bcryptHashT(t, "carol-pw", "$2y$") + "\r\n  dave:" + bcryptHashT(t, "dave-pw", "$2b$") + "\n"
	if err := os.WriteFile(htp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := New([]User{
		{Username: "alice", PasswordHash: bcryptHashT(t, "alice-pw", "$2a$")},
		{Username: "bob", PasswordHash: argonHashT(t, "bob-pw")},
	}, htp, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		user, pw string
		ok       bool
	}{
		{"alice", "alice-pw", true},
		{"bob", "bob-pw", true},
		{"carol", "carol-pw", true},
		{"dave", "dave-pw", true},
		{"alice", "bob-pw", false},
		{"alice", "", false},
		{"alice", "alice-pw ", false},
		{"bob", "bob-p", false},
		{"mallory", "alice-pw", false},
		{"", "", false},
		{"alice", strings.Repeat("x", maxPasswordLen+1), false},
	} {
		id, err := st.Check(ctx, tc.user, tc.pw)
		if tc.ok {
			if err != nil || id.ID != "user:"+tc.user || id.Username != tc.user {
				t.Errorf("Check(%q) = %+v, %v; want success", tc.user, id, err)
			}
			continue
		}
		if !errors.Is(err, auth.ErrInvalidCredentials) || id != nil {
			t.Errorf("Check(%q, wrong) = %+v, %v; want ErrInvalidCredentials", tc.user, id, err)
		}
	}
	if !st.Has("carol") || !st.Has("bob") || st.Has("mallory") || st.Len() != 4 {
		t.Error("Has/Len wrong")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := st.Check(cctx, "alice", "alice-pw"); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled context: %v", err)
	}
}

func TestCache(t *testing.T) {
	now := time.Unix(1000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	st, err := New([]User{{Username: "alice", PasswordHash: bcryptHashT(t, "pw", "$2a$")}}, "", Options{Now: clock, CacheTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// Swap in a counting verifier to observe hashing.
	var calls atomic.Int32
	real := st.users["alice"]
	st.users["alice"] = verifyFunc(func(p []byte) bool { calls.Add(1); return real.verify(p) })

	if _, err := st.Check(ctx, "alice", "wrong"); err == nil {
		t.Fatal("wrong password accepted")
	}
	if _, err := st.Check(ctx, "alice", "wrong"); err == nil {
		t.Fatal("wrong password accepted on second try (failure cached as success?)")
	}
	if calls.Load() != 2 {
		t.Fatalf("failures must not be cached: %d hash calls", calls.Load())
	}
	for range 5 {
		if _, err := st.Check(ctx, "alice", "pw"); err != nil {
			t.Fatal(err)
		}
	}
	if calls.Load() != 3 {
		t.Fatalf("successes should be cached: %d hash calls, want 3", calls.Load())
	}
	// A cached password does not vouch for another user or password.
	if _, err := st.Check(ctx, "alice", "pw2"); err == nil {
		t.Fatal("other password accepted")
	}
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	if _, err := st.Check(ctx, "alice", "pw"); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 5 {
		t.Fatalf("expired entry should be re-verified: %d hash calls, want 5", calls.Load())
	}
}

func TestCacheBounded(t *testing.T) {
	st, err := New(nil, "", Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range maxCacheEntries + 100 {
		var k [32]byte
		k[0], k[1] = byte(i), byte(i>>8)
		st.remember(k, "u")
	}
	if n := len(st.cache); n > maxCacheEntries {
		t.Fatalf("cache grew to %d entries", n)
	}
}

func TestConcurrentChecksShareOneHash(t *testing.T) {
	st, err := New([]User{{Username: "alice", PasswordHash: bcryptHashT(t, "pw", "$2a$")}}, "", Options{CacheTTL: -1})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := st.Check(context.Background(), "alice", "pw"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

type verifyFunc func([]byte) bool

func (f verifyFunc) verify(p []byte) bool { return f(p) }

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	good := bcryptHashT(t, "pw", "$2a$")
	for _, tc := range []struct {
		name, htpasswd string
		users          []User
		want           []string
	}{
		{name: "md5", users: []User{{"alice", "$1$abc$def"}}, want: []string{`"alice"`, "unsupported"}},
		{name: "plain", users: []User{{"alice", "secret"}}, want: []string{`"alice"`}},
		{name: "empty", users: []User{{"alice", ""}}, want: []string{`"alice"`, "empty"}},
		{name: "argon2i", users: []User{{"alice", "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"}}, want: []string{"argon2id"}},
		{name: "argon2 v16", users: []User{{"alice", "$argon2id$v=16$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"}}, want: []string{"v=19"}},
		{name: "argon2 huge m", users: []User{{"alice", "$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"}}, want: []string{"memory"}},
		{name: "argon2 no p", users: []User{{"alice", "$argon2id$v=19$m=64,t=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"}}, want: []string{"required"}},
		{name: "argon2 bad b64", users: []User{{"alice", "$argon2id$v=19$m=64,t=1,p=1$!!!$aGFzaGhhc2hoYXNoaGFzaA"}}, want: []string{"salt"}},
		{name: "bcrypt short", users: []User{{"alice", "$2a$04$short"}}, want: []string{"bcrypt"}},
		{name: "dup", users: []User{{"alice", good}, {"alice", good}}, want: []string{"more than once"}},
		{name: "colon", users: []User{{"a:b", good}}, want: []string{"':'"}},
		{name: "no name", users: []User{{"", good}}, want: []string{"empty username"}},
		{name: "htpasswd sha", htpasswd: "bob:{SHA}abc=\n", want: []string{`"bob"`, "htpasswd -B", "line 1"}},
		{name: "htpasswd apr1", htpasswd: "#x\nbob:$apr1$x$y\n", want: []string{`"bob"`, "line 2"}},
		{name: "htpasswd no colon", htpasswd: "bob\n", want: []string{"user:bcrypt-hash"}},
		{name: "htpasswd dup of inline", users: []User{{"bob", good}}, htpasswd: "bob:" + good + "\n", want: []string{"more than once"}},
		{name: "two errors", users: []User{{"alice", "x"}, {"bob", "y"}}, want: []string{`"alice"`, `"bob"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := ""
			if tc.htpasswd != "" {
				path = filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
				if err := os.WriteFile(path, []byte(tc.htpasswd), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			_, err := New(tc.users, path, Options{})
			if err == nil {
				t.Fatal("New succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %s", err, w)
				}
			}
			for _, u := range tc.users {
				if len(u.PasswordHash) > 8 && strings.Contains(err.Error(), u.PasswordHash) {
					t.Errorf("error quotes the hash: %q", err)
				}
			}
		})
	}
	if _, err := New(nil, filepath.Join(dir, "missing"), Options{}); err == nil {
		t.Error("missing htpasswd file accepted")
	}
}

func TestArgon2idFormats(t *testing.T) {
	// A PHC string as produced by the reference implementation / passlib
	// (the reference test vector: t=2, m=64 MiB, p=1, password "password", salt "somesalt").
	const ref = "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"
	st, err := New([]User{{"ref", ref}, {"padded", ref + "="}}, "", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Check(context.Background(), "ref", "password"); err != nil {
		t.Error(err)
	}
	a, b := st.users["ref"].(*argon2idHash), st.users["padded"].(*argon2idHash)
	if string(a.key) != string(b.key) || string(a.salt) != string(b.salt) || a.p != b.p {
		t.Error("padded base64 parsed differently")
	}
}

func TestHash(t *testing.T) {
	// Hash's own costs (bcrypt 12, argon2id 64 MiB) are too slow for -race;
	// hashWith is the same code with cheap parameters.
	if DefaultBcryptCost != 12 || DefaultArgon2id.Memory != 65536 || DefaultArgon2id.Time != 3 || DefaultArgon2id.Threads != 4 {
		t.Errorf("defaults changed: %d %+v", DefaultBcryptCost, DefaultArgon2id)
	}
	h, err := hashWith("pw", "", bcrypt.MinCost, testArgon)
	if err != nil || !strings.HasPrefix(h, "$2a$04$") {
		t.Fatalf("Hash bcrypt = %q, %v", h, err)
	}
	if bcrypt.CompareHashAndPassword([]byte(h), []byte("pw")) != nil {
		t.Fatal("bcrypt hash does not verify")
	}
	h, err = hashWith("pw", "argon2id", bcrypt.MinCost, testArgon)
	if err != nil || !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("Hash argon2id = %q, %v", h, err)
	}
	v, err := parseHash(h)
	if err != nil || !v.verify([]byte("pw")) || v.verify([]byte("pW")) {
		t.Fatalf("argon2id hash does not verify: %v", err)
	}
	for _, bad := range [][2]string{{"pw", "md5"}, {"", "bcrypt"}, {strings.Repeat("x", 73), "bcrypt"}} {
		if _, err := hashWith(bad[0], bad[1], bcrypt.MinCost, testArgon); err == nil {
			t.Errorf("Hash(%q) accepted", bad[1])
		}
	}
}

func BenchmarkCheckCached(b *testing.B) {
	h, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	st, err := New([]User{{Username: "alice", PasswordHash: string(h)}}, "", Options{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := st.Check(ctx, "alice", "pw"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := st.Check(ctx, "alice", "pw"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
