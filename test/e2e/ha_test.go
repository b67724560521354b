package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/bcrypt"
	orasremote "oras.land/oras-go/v2/registry/remote"
	orasauth "oras.land/oras-go/v2/registry/remote/auth"

	"github.com/berth-registry/berth/internal/redistest"
)

// haConfig is a berth configuration for one of several replicas: one bucket
// (prefix), one Redis, an OIDC provider "ci" with token_max_uses = 3 and a
// static user alice/secret.
func haConfig(port int, endpoint, prefix, redisURL, issuer, aliceHash string) string {
	return s3Config(port, endpoint, prefix) + fmt.Sprintf(`
[cache.redis]
url = %q
key_prefix = %q

[auth.oidc.ci]
provider = "generic"
issuer = %q
audiences = ["berth"]
clock_skew = "1s"
token_max_uses = 3

[auth.identity.alice]
username = "alice"
password = %q

[global.access_policy]
default_allow = false
rules = ['identity.id != "anonymous"']
`, redisURL, prefix+":", issuer, aliceHash)
}

// TestTwoReplicas: two berth processes on one bucket and one Redis, each with
// its own (empty) local directory, behave as one registry.
func TestTwoReplicas(t *testing.T) {
	endpoint, _ := startVersitygw(t)
	rs := redistest.Start(t)
	iss := newIssuer(t)
	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	prefix := fmt.Sprintf("ha-%d", time.Now().UnixNano())
	cfg := func(port int) string { return haConfig(port, endpoint, prefix, rs.URL(), iss.URL(), string(hash)) }
	a := startBerthS3(t, t.TempDir(), cfg)
	b := startBerthS3(t, t.TempDir(), cfg)
	replicas := []*berthProc{a, b}
	alice := &authn.Basic{Username: "alice", Password: "secret"}

	// Push through A, pull through B (go-containerregistry, token service on each).
	img, err := random.Image(6<<20, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(mustRef(t, a.host()+"/ha/app:v1"), img, remote.WithAuth(alice)); err != nil {
		t.Fatalf("push through A: %v", err)
	}
	got, err := remote.Image(mustRef(t, b.host()+"/ha/app:v1"), remote.WithAuth(alice))
	if err != nil {
		t.Fatalf("pull through B: %v", err)
	}
	compareImages(t, "pulled through B", img, got)

	// An access token signed by A is accepted by B: one shared signing key.
	tok := tokenFor(t, a, "alice", "secret", "repository:ha/chunked:pull,push", false)
	bearer := map[string]string{"Authorization": "Bearer " + tok.Token}
	resp, body := doReq(t, "GET", b.url("/v2/ha/app/tags/list"), nil, bearer)
	// A valid token without a grant for ha/app (a bad signature would say so).
	wantStatus(t, "A's access token on B", resp, body, http.StatusUnauthorized)
	if !strings.Contains(string(body), "does not grant") {
		t.Fatalf("A's access token on B: %s", body)
	}
	resp, body = doReq(t, "GET", b.url("/v2/"), nil, bearer)
	wantStatus(t, "A's access token on B", resp, body, http.StatusOK)

	// A chunked upload whose chunks alternate between the replicas: two
	// chunks above the 5 MiB part size and small ones that are staged.
	chunks := []int{6 << 20, 1000, 6<<20 + 11000, 345}
	total := 0
	for _, n := range chunks {
		total += n
	}
	data := make([]byte, total)
	rand.NewChaCha8([32]byte{7}).Read(data)
	resp, body = doReq(t, "POST", a.url("/v2/ha/chunked/blobs/uploads/"), nil, bearer)
	wantStatus(t, "start upload on A", resp, body, http.StatusAccepted)
	loc := resp.Header.Get("Location")
	off := 0
	for i, n := range chunks {
		p := replicas[i%2]
		u := onReplica(t, p, loc)
		hdr := map[string]string{"Authorization": bearer["Authorization"], "Content-Type": "application/octet-stream",
			"Content-Range": fmt.Sprintf("%d-%d", off, off+n-1)}
		resp, body = doReq(t, "PATCH", u.String(), bytes.NewReader(data[off:off+n]), hdr)
		wantStatus(t, fmt.Sprintf("chunk %d on replica %d", i, i%2), resp, body, http.StatusAccepted)
		off += n
		if r := resp.Header.Get("Range"); r != "0-"+strconv.Itoa(off-1) {
			t.Fatalf("chunk %d: Range %q, want 0-%d", i, r, off-1)
		}
		loc = resp.Header.Get("Location")
		// The other replica reports the same progress.
		other := replicas[(i+1)%2]
		resp, body = doReq(t, "GET", onReplica(t, other, loc).String(), nil, bearer)
		wantStatus(t, "upload status on the other replica", resp, body, http.StatusNoContent)
		if r := resp.Header.Get("Range"); r != "0-"+strconv.Itoa(off-1) {
			t.Fatalf("status on the other replica after chunk %d: Range %q", i, r)
		}
	}
	// A chunk that does not continue the upload is refused on either replica.
	resp, body = doReq(t, "PATCH", onReplica(t, a, loc).String(), bytes.NewReader([]byte("x")),
		map[string]string{"Authorization": bearer["Authorization"], "Content-Range": "0-0", "Content-Type": "application/octet-stream"})
	wantStatus(t, "stale chunk", resp, body, http.StatusRequestedRangeNotSatisfiable)
	dgst := sha256Digest(data)
	u := onReplica(t, b, loc)
	q := u.Query()
	q.Set("digest", dgst)
	u.RawQuery = q.Encode()
	resp, body = doReq(t, "PUT", u.String(), nil, bearer)
	wantStatus(t, "commit on B", resp, body, http.StatusCreated)
	resp, body = doReq(t, "GET", a.url("/v2/ha/chunked/blobs/"+dgst), nil, bearer)
	wantStatus(t, "blob on A", resp, body, http.StatusOK)
	if !bytes.Equal(body, data) {
		t.Fatalf("blob read through A differs (%d bytes, want %d)", len(body), len(data))
	}

	// Monolithic uploads (the whole body in one request, stored straight at
	// its content address): a session begun on A finished with the body on B,
	// and POST ?digest= on A; a wrong digest stores nothing.
	mono := data[:7<<20+3]
	resp, body = doReq(t, "POST", a.url("/v2/ha/mono/blobs/uploads/"), nil, bearerFor(t, a, "ha/mono"))
	wantStatus(t, "start upload on A", resp, body, http.StatusAccepted)
	u = onReplica(t, b, resp.Header.Get("Location"))
	q = u.Query()
	q.Set("digest", sha256Digest(mono))
	u.RawQuery = q.Encode()
	hdr := bearerFor(t, b, "ha/mono")
	hdr["Content-Type"] = "application/octet-stream"
	resp, body = doReq(t, "PUT", u.String(), bytes.NewReader(mono), hdr)
	wantStatus(t, "PUT with the body on B", resp, body, http.StatusCreated)
	small := []byte("a small monolithic blob")
	resp, body = doReq(t, "POST", a.url("/v2/ha/mono/blobs/uploads/?digest="+sha256Digest(small)), bytes.NewReader(small), hdr)
	wantStatus(t, "POST ?digest= on A", resp, body, http.StatusCreated)
	bad := sha256Digest([]byte("not the body"))
	resp, body = doReq(t, "POST", a.url("/v2/ha/mono/blobs/uploads/?digest="+bad), bytes.NewReader(small), hdr)
	wantStatus(t, "POST ?digest= with a wrong digest", resp, body, http.StatusBadRequest)
	for _, c := range []struct {
		d    string
		want []byte
	}{{sha256Digest(mono), mono}, {sha256Digest(small), small}, {bad, nil}} {
		resp, body = doReq(t, "GET", b.url("/v2/ha/mono/blobs/"+c.d), nil, bearerFor(t, b, "ha/mono"))
		if c.want == nil {
			wantStatus(t, "blob of the wrong digest", resp, body, http.StatusNotFound)
		} else if resp.StatusCode != 200 || !bytes.Equal(body, c.want) {
			t.Fatalf("monolithic blob %s through B: %d, %d bytes", c.d, resp.StatusCode, len(body))
		}
	}

	// oras-go pushes blobs monolithically (POST, then PUT with the body):
	// through A, fetched through B.
	orasBlob := data[:3<<20]
	orasDesc := ocispec.Descriptor{MediaType: "application/octet-stream", Digest: digest.FromBytes(orasBlob), Size: int64(len(orasBlob))}
	orasRepo := func(p *berthProc) *orasremote.Repository {
		r, err := orasremote.NewRepository(p.host() + "/ha/oras")
		if err != nil {
			t.Fatal(err)
		}
		r.PlainHTTP = true
		r.Client = &orasauth.Client{Credential: orasauth.StaticCredential(p.host(), orasauth.Credential{Username: "alice", Password: "secret"})}
		return r
	}
	if err := orasRepo(a).Push(t.Context(), orasDesc, bytes.NewReader(orasBlob)); err != nil {
		t.Fatalf("oras push through A: %v", err)
	}
	rc, err := orasRepo(b).Fetch(t.Context(), orasDesc)
	if err != nil {
		t.Fatalf("oras fetch through B: %v", err)
	}
	got2, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got2, orasBlob) {
		t.Fatalf("oras fetch through B: %d bytes, %v", len(got2), err)
	}

	// A session token with token_max_uses = 3 used across both replicas is
	// refused on the fourth use.
	st := exchangeSession(t, a, ciToken(iss, time.Minute))
	for i, p := range []*berthProc{a, b, a, b} {
		req, _ := http.NewRequest("GET", p.url("/v2/_catalog"), nil)
		req.SetBasicAuth("session", st)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		want := http.StatusOK
		if i == 3 {
			want = http.StatusUnauthorized
		}
		if res.StatusCode != want {
			t.Fatalf("session token use %d (replica %d): status %d, want %d", i+1, i%2, res.StatusCode, want)
		}
	}

	// A refresh token issued by A works on B; revoked on B, it is refused on A.
	rt := tokenFor(t, a, "alice", "secret", "repository:ha/app:pull", true).RefreshToken
	if rt == "" {
		t.Fatal("no refresh token")
	}
	if err := pushPull(t, b, "ha/refresh", authn.FromConfig(authn.AuthConfig{IdentityToken: rt})); err != nil {
		t.Fatalf("A's refresh token on B: %v", err)
	}
	res, err := http.PostForm(b.url("/token/revoke"), url.Values{"token": {rt}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("revoke on B: %d", res.StatusCode)
	}
	res, err = http.PostForm(a.url("/token"), url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "service": {"berth"}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest {
		t.Fatalf("refresh token revoked on B, used on A: status %d, want 400", res.StatusCode)
	}

	// An OIDC ID token used on A works on B after the issuer stopped
	// answering, although B never had the issuer's keys (and the shared key
	// set is gone): B takes A's verification from Redis. A token A never saw
	// gets 503 from B.
	rdb := redisClient(t, rs.URL())
	// Distinct tokens (ciToken is deterministic within one second).
	idToken := func(jti string) string {
		return iss.Mint(map[string]any{"sub": "repo:myorg/api:ref:refs/heads/main", "aud": "berth", "jti": jti})
	}
	idTok := idToken("seen-by-a")
	entries := countKeys(t, rdb, prefix+":cache:oidc:token:*")
	resp, body = catalogWith(t, a, "ci", idTok)
	wantStatus(t, "ID token on A", resp, body, http.StatusOK)
	for deadline := time.Now().Add(30 * time.Second); countKeys(t, rdb, prefix+":cache:oidc:token:*") == entries; {
		if time.Now().After(deadline) {
			t.Fatal("A never shared its verification of the ID token")
		}
		time.Sleep(10 * time.Millisecond)
	}
	iss.SetDown(true)
	delKeys(t, rdb, prefix+":cache:oidc:jwks:*")
	resp, body = catalogWith(t, b, "ci", idTok)
	wantStatus(t, "A's ID token on B, issuer down", resp, body, http.StatusOK)
	resp, body = catalogWith(t, b, "ci", idToken("never-seen"))
	wantStatus(t, "a new ID token on B, issuer down", resp, body, http.StatusServiceUnavailable)
	iss.SetDown(false)

	// Nothing was kept on the replicas' local disks.
	for i, p := range replicas {
		if n := countFiles(t, p.dataDir+"/berth-data"); n != 0 {
			t.Errorf("replica %d: %d files under its local root_dir", i, n)
		}
	}

	// /readyz follows Redis; /healthz does not.
	rs.Stop()
	for i, p := range replicas {
		resp, body := doReq(t, "GET", p.url("/readyz"), nil, nil)
		wantStatus(t, fmt.Sprintf("replica %d /readyz with Redis stopped", i), resp, body, http.StatusServiceUnavailable)
		resp, body = doReq(t, "GET", p.url("/healthz"), nil, nil)
		wantStatus(t, fmt.Sprintf("replica %d /healthz with Redis stopped", i), resp, body, http.StatusOK)
	}
	// Uploads need the session lock: 503 while Redis is down, not 500.
	resp, body = doReq(t, "POST", a.url("/v2/ha/down/blobs/uploads/"), nil, bearerFor(t, a, "ha/down"))
	wantStatus(t, "start upload with Redis stopped", resp, body, http.StatusAccepted)
	hdr = bearerFor(t, a, "ha/down")
	hdr["Content-Type"] = "application/octet-stream"
	resp, body = doReq(t, "PATCH", onReplica(t, b, resp.Header.Get("Location")).String(), bytes.NewReader([]byte("chunk")), hdr)
	wantStatus(t, "PATCH with Redis stopped", resp, body, http.StatusServiceUnavailable)
	if resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), `"UNAVAILABLE"`) {
		t.Errorf("PATCH with Redis stopped: Retry-After %q, body %s; want Retry-After and UNAVAILABLE", resp.Header.Get("Retry-After"), body)
	}
	rs.Restart()
	for _, p := range replicas {
		p.waitReady()
	}

	for _, p := range replicas {
		p.stop()
		logs := p.stderr.Tail(1 << 20)
		if strings.Contains(logs, "without [cache.redis]") {
			t.Errorf("S3-without-Redis warning despite Redis")
		}
		for _, secret := range []string{e2eS3Secret, "berth_st_", "berth_rt_", "secret\""} {
			if strings.Contains(logs, secret) {
				t.Errorf("log contains %q", secret)
			}
		}
	}
}

// bearerFor returns an Authorization header for alice with pull and push on repo,
// from p's token service.
func bearerFor(t *testing.T, p *berthProc, repo string) map[string]string {
	t.Helper()
	return map[string]string{"Authorization": "Bearer " + tokenFor(t, p, "alice", "secret", "repository:"+repo+":pull,push", false).Token}
}

// onReplica points an upload Location (absolute or relative) at replica p.
func onReplica(t *testing.T, p *berthProc, loc string) *url.URL {
	t.Helper()
	u := p.resolve(t, loc)
	u.Scheme, u.Host = "http", p.host()
	return u
}

type tokenAnswer struct {
	Token        string `json:"token"`
	RefreshToken string `json:"refresh_token"`
}

// tokenFor asks p's token service for scope with Basic credentials.
func tokenFor(t *testing.T, p *berthProc, user, pass, scope string, offline bool) tokenAnswer {
	t.Helper()
	q := url.Values{"service": {"berth"}, "scope": {scope}, "client_id": {"e2e"}}
	if offline {
		q.Set("offline_token", "true")
	}
	req, _ := http.NewRequest("GET", p.url("/token?"+q.Encode()), nil)
	req.SetBasicAuth(user, pass)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var tr tokenAnswer
	if err := json.NewDecoder(res.Body).Decode(&tr); err != nil || res.StatusCode != 200 || tr.Token == "" {
		t.Fatalf("token from %s: %d %v", p.host(), res.StatusCode, err)
	}
	return tr
}

// exchangeSession trades an ID token for a session token at p.
func exchangeSession(t *testing.T, p *berthProc, idToken string) string {
	t.Helper()
	res, err := http.PostForm(p.url("/token"), url.Values{
		"grant_type":           {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token":        {idToken},
		"subject_token_type":   {"urn:ietf:params:oauth:token-type:id_token"},
		"requested_token_type": {"urn:berth:token-type:session"},
		"service":              {"berth"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(res.Body).Decode(&tr); err != nil || res.StatusCode != 200 || !strings.HasPrefix(tr.AccessToken, "berth_st_") {
		t.Fatalf("exchange: %d %v", res.StatusCode, err)
	}
	return tr.AccessToken
}

// catalogWith GETs /v2/_catalog on p with Basic credentials.
func catalogWith(t *testing.T, p *berthProc, user, pass string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", p.url("/v2/_catalog"), nil)
	req.SetBasicAuth(user, pass)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, body
}

func redisClient(t *testing.T, rawURL string) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opts)
	t.Cleanup(func() { c.Close() })
	return c
}

// countKeys counts the keys matching pattern.
func countKeys(t *testing.T, c *redis.Client, pattern string) int {
	t.Helper()
	keys, err := c.Keys(t.Context(), pattern).Result()
	if err != nil {
		t.Fatal(err)
	}
	return len(keys)
}

// delKeys deletes the keys matching pattern.
func delKeys(t *testing.T, c *redis.Client, pattern string) {
	t.Helper()
	keys, err := c.Keys(t.Context(), pattern).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) == 0 {
		t.Fatalf("no key matches %s", pattern)
	}
	if err := c.Del(t.Context(), keys...).Err(); err != nil {
		t.Fatal(err)
	}
}
