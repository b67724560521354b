package server

import (
	"context"
	"encoding/json"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/berth-registry/berth/internal/config"
)

var adminRE = regexp.MustCompile(`msg="admin listening" addr=(\S+)`)

// adminAddr waits for the admin listener's address in r's log.
func adminAddr(t *testing.T, r *running) string {
	t.Helper()
	r.logs.waitAddr(t, "listening", r.done) // the API's line comes first
	for range 1000 {
		if m := adminRE.FindStringSubmatch(r.logs.String()); m != nil {
			return m[1]
		}
		select {
		case err := <-r.done:
			t.Fatalf("server stopped: %v", err)
		default:
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no admin listening line:\n%s", r.logs)
	return ""
}

// The admin listener serves pprof, expvar and the runtime statistics; the
// registry's port serves none of them.
func TestAdminListener(t *testing.T) {
	cfg := testConfig()
	cfg.Admin.BindAddress = "127.0.0.1:0"
	r := start(t, cfg, &fakeStore{}, options{})
	admin := adminAddr(t, r)
	if admin == r.addr {
		t.Fatal("admin on the registry's address")
	}
	if code, body := get(t, "http://"+admin+"/debug/pprof/"); code != 200 || !strings.Contains(body, "goroutine") {
		t.Errorf("admin GET /debug/pprof/ = %d\n%s", code, body)
	}
	if code, body := get(t, "http://"+admin+"/debug/pprof/goroutine?debug=1"); code != 200 || !strings.Contains(body, "goroutine profile") {
		t.Errorf("admin GET /debug/pprof/goroutine = %d\n%.200s", code, body)
	}
	code, body := get(t, "http://"+admin+"/debug/runtime")
	var st struct {
		Goroutines int `json:"goroutines"`
		MemStats   struct {
			HeapAlloc uint64
			NumGC     uint32
		} `json:"memstats"`
	}
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil || st.Goroutines <= 0 || st.MemStats.HeapAlloc == 0 {
		t.Errorf("admin GET /debug/runtime = %d %v\n%.300s", code, err, body)
	}
	if code, body := get(t, "http://"+admin+"/debug/vars"); code != 200 || !strings.Contains(body, `"memstats"`) {
		t.Errorf("admin GET /debug/vars = %d", code)
	}
	if code, _ := get(t, "http://"+admin+"/v2/"); code != 404 {
		t.Errorf("the admin listener serves /v2/: %d", code)
	}
	for _, p := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/cmdline", "/debug/runtime", "/debug/vars"} {
		if code, _ := get(t, "http://"+r.addr+p); code != 404 {
			t.Errorf("the registry's port serves %s: %d", p, code)
		}
	}
	if err := r.stop(t); err != nil {
		t.Errorf("Run = %v", err)
	}
	if c, err := net.Dial("tcp", admin); err == nil {
		c.Close()
		t.Error("admin listener still open after shutdown")
	}
}

// Off, there is no admin listener.
func TestAdminOff(t *testing.T) {
	cfg := testConfig()
	cfg.Admin.BindAddress = "off"
	r := start(t, cfg, &fakeStore{}, options{})
	get(t, "http://"+r.addr+"/v2/")
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(r.logs.String(), "admin") {
		t.Errorf("admin listener with bind_address off:\n%s", r.logs)
	}
}

// A non-loopback address is refused unless allowed; an address written in
// the file that is taken stops startup, the default taken does not.
func TestAdminRefusals(t *testing.T) {
	cfg := testConfig()
	cfg.Admin.BindAddress = "0.0.0.0:0"
	err := serve(t.Context(), cfg, nil, options{store: &fakeStore{}})
	if err == nil || !strings.Contains(err.Error(), "admin.bind_address") || !strings.Contains(err.Error(), "not a loopback address") {
		t.Errorf("serve with a non-loopback admin address = %v", err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	taken := ln.Addr().String()
	explicit, err := config.Parse([]byte("[server]\nbind_address = \"127.0.0.1\"\nport = 0\n[admin]\nbind_address = \""+taken+"\"\n"), "admin.toml")
	if err != nil {
		t.Fatal(err)
	}
	// Bounded: a serve that wrongly starts returns nil when ctx ends.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := serve(ctx, explicit, nil, options{store: &fakeStore{}}); err == nil || !strings.Contains(err.Error(), "admin") {
		t.Errorf("serve with a taken admin address = %v", err)
	}
	def := testConfig()
	def.Admin.BindAddress = taken // as if it were the default: not written in a file
	r := start(t, def, &fakeStore{}, options{})
	if code, _ := get(t, "http://"+r.addr+"/v2/"); code != 200 {
		t.Errorf("GET /v2/ = %d", code)
	}
	if !strings.Contains(r.logs.String(), "admin listener off") {
		t.Errorf("no note of the skipped admin listener:\n%s", r.logs)
	}
}
