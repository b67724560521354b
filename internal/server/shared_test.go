package server

import (
	"strings"
	"testing"
	"time"

	"github.com/berth-registry/berth/internal/config"
	"github.com/berth-registry/berth/internal/redistest"
)

// /readyz follows Redis: ready with it, not ready while it is down, ready
// again when it is back.
func TestReadyzFollowsRedis(t *testing.T) {
	srv := redistest.Start(t)
	cfg := testConfig()
	cfg.Cache.Redis = &config.Redis{URL: srv.URL(), KeyPrefix: "servertest:"}
	r := start(t, cfg, &fakeStore{}, options{readyTimeout: 500 * time.Millisecond})
	if code, body := get(t, "http://"+r.addr+"/readyz"); code != 200 {
		t.Fatalf("GET /readyz with redis up = %d %q", code, body)
	}
	srv.Stop()
	if code, body := get(t, "http://"+r.addr+"/readyz"); code != 503 || !strings.Contains(body, "redis") {
		t.Fatalf("GET /readyz with redis down = %d %q", code, body)
	}
	if code, _ := get(t, "http://"+r.addr+"/healthz"); code != 200 {
		t.Fatalf("GET /healthz with redis down = %d", code)
	}
	srv.Restart()
	if code, body := get(t, "http://"+r.addr+"/readyz"); code != 200 {
		t.Fatalf("GET /readyz with redis back = %d %q", code, body)
	}
}

// S3 without Redis warns which guarantees need Redis; with Redis it does not.
// The Redis password never reaches the log.
func TestS3WithoutRedisWarning(t *testing.T) {
	cfg := testConfig()
	cfg.BlobStore.S3 = &config.S3{Bucket: "b"}
	r := start(t, cfg, &fakeStore{}, options{})
	if logs := r.logs.String(); !strings.Contains(logs, "without [cache.redis]") || !strings.Contains(logs, "token_max_uses") {
		t.Errorf("no S3-without-Redis warning:\n%s", logs)
	}

	srv := redistest.Start(t)
	const pw = "redis-pw-never-logged"
	cfg = testConfig()
	cfg.BlobStore.S3 = &config.S3{Bucket: "b"}
	// Redis without a password accepts AUTH for the default user only if
	// one is set; use a URL with a user-less password anyway: Open does not
	// fail, the ping just reports it.
	cfg.Cache.Redis = &config.Redis{URL: "redis://:" + pw + "@" + srv.Addr + "/0", KeyPrefix: "p:"}
	r = start(t, cfg, &fakeStore{}, options{})
	logs := r.logs.String()
	if strings.Contains(logs, "without [cache.redis]") {
		t.Errorf("warning despite Redis:\n%s", logs)
	}
	if strings.Contains(logs, pw) {
		t.Errorf("log shows the redis password:\n%s", logs)
	}
}
