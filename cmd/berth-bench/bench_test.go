package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"testing/iotest"

	"github.com/opencontainers/go-digest"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"1GiB": 1 << 30, "256MiB": 256 << 20, "100KiB": 100 << 10, "1GB": 1e9, "512": 512, "2 MiB": 2 << 20, "4K": 4096,
	} {
		got, err := parseSize(in)
		if err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "x", "1.5GiB", "-1", "99999999999TiB"} {
		if _, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q): no error", bad)
		}
	}
}

func TestStreamDeterministic(t *testing.T) {
	block := newBlock(7)
	size := int64(3*blockSize + 12345)
	a, err := io.ReadAll(newStream(block, 1, size))
	if err != nil || int64(len(a)) != size {
		t.Fatalf("ReadAll: %d, %v", len(a), err)
	}
	// Tiny reads must give the same bytes as large ones.
	b, err := io.ReadAll(iotest.OneByteReader(newStream(block, 1, size)))
	if err != nil || !bytes.Equal(a, b) {
		t.Fatal("one-byte reads differ")
	}
	var w bytes.Buffer
	if _, err := newStream(block, 1, size).WriteTo(&w); err != nil || !bytes.Equal(a, w.Bytes()) {
		t.Fatal("WriteTo differs")
	}
	// Blocks differ from one another, and streams differ by id.
	if bytes.Equal(a[:blockSize], a[blockSize:2*blockSize]) {
		t.Fatal("blocks repeat")
	}
	c, _ := io.ReadAll(newStream(block, 2, size))
	if bytes.Equal(a[:64], c[:64]) {
		t.Fatal("streams of different ids are equal")
	}
}

func TestLoopbackOnly(t *testing.T) {
	for _, ok := range []string{"http://127.0.0.1:5000", "http://localhost:5000", "http://[::1]:5000/", "http://127.1.2.3"} {
		if _, err := checkLoopback(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"http://10.0.0.1:5000", "http://example.com", "http://192.168.1.1", "ftp://127.0.0.1", "http://0.0.0.0:5000"} {
		if _, err := checkLoopback(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	if err := loopbackOnly("tcp", "10.1.2.3:80", nil); err == nil {
		t.Error("dialer accepted a private address")
	}
}

// fakeRegistry is the least of the OCI API the tool uses, in memory. With
// postPut it ignores ?digest= on POST like a registry without the
// one-request form.
type fakeRegistry struct {
	postPut bool
	mu      sync.Mutex
	blobs   map[string][]byte
	mans    map[string][]byte
	uploads int
	// sessions holds the bytes PATCHed into each upload session; patches
	// counts PATCHes, badRange those whose Content-Range did not continue
	// the session.
	sessions map[string]*bytes.Buffer
	patches  int
	badRange int
	// auth: when set, manifest GETs must carry it (authGets counts them);
	// noAuth counts requests that did not carry it.
	auth     string
	authGets int
	noAuth   int
}

func (f *fakeRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sessions == nil {
		f.sessions = map[string]*bytes.Buffer{}
	}
	if f.auth != "" && r.Header.Get("Authorization") != f.auth {
		f.noAuth++
	}
	switch {
	case p == "/v2/":
		w.WriteHeader(200)
	case r.Method == "PATCH" && strings.Contains(p, "/blobs/uploads/"):
		buf := f.sessions[p]
		if buf == nil {
			w.WriteHeader(404)
			return
		}
		var start, end int
		if _, err := fmt.Sscanf(r.Header.Get("Content-Range"), "%d-%d", &start, &end); err != nil || start != buf.Len() {
			f.badRange++
		}
		n, _ := io.Copy(buf, r.Body)
		if int64(end-start+1) != n {
			f.badRange++
		}
		f.patches++
		w.Header().Set("Location", p)
		w.WriteHeader(202)
	case r.Method == "POST" && strings.HasSuffix(p, "/blobs/uploads/"):
		if d := r.URL.Query().Get("digest"); d != "" && !f.postPut {
			f.store(w, r, d)
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		f.uploads++
		f.sessions[p+"u"+itoa(f.uploads)] = &bytes.Buffer{}
		w.Header().Set("Location", p+"u"+itoa(f.uploads)+"?_state=x")
		w.WriteHeader(202)
	case r.Method == "PUT" && strings.Contains(p, "/blobs/uploads/"):
		f.storeSession(w, r, f.sessions[p], r.URL.Query().Get("digest"))
		delete(f.sessions, p)
	case strings.Contains(p, "/blobs/"):
		b, ok := f.blobs[p[strings.LastIndex(p, "/")+1:]]
		if !ok {
			w.WriteHeader(404)
			return
		}
		w.Header().Set("Content-Length", itoa(len(b)))
		if r.Method != "HEAD" {
			_, _ = w.Write(b)
		}
	case strings.Contains(p, "/manifests/") && r.Method == "PUT":
		b, _ := io.ReadAll(r.Body)
		f.mans[p] = b
		w.WriteHeader(201)
	case strings.Contains(p, "/manifests/"):
		if f.auth != "" && r.Header.Get("Authorization") == f.auth {
			f.authGets++
		}
		b, ok := f.mans[p]
		if !ok {
			w.WriteHeader(404)
			return
		}
		_, _ = w.Write(b)
	default:
		w.WriteHeader(404)
	}
}

func (f *fakeRegistry) store(w http.ResponseWriter, r *http.Request, d string) {
	f.storeSession(w, r, nil, d)
}

// storeSession stores what was PATCHed into the session (if any) followed by
// the request body as the blob d.
func (f *fakeRegistry) storeSession(w http.ResponseWriter, r *http.Request, session *bytes.Buffer, d string) {
	h := sha256.New()
	var buf bytes.Buffer
	if session != nil {
		buf.Write(session.Bytes())
		h.Write(session.Bytes())
	}
	_, _ = io.Copy(io.MultiWriter(h, &buf), r.Body)
	if "sha256:"+hex.EncodeToString(h.Sum(nil)) != d {
		w.WriteHeader(400)
		return
	}
	f.blobs[d] = buf.Bytes()
	w.WriteHeader(201)
}

func TestRunAgainstFake(t *testing.T) {
	for _, postPut := range []bool{false, true} {
		f := &fakeRegistry{postPut: postPut, blobs: map[string][]byte{}, mans: map[string][]byte{}}
		srv := httptest.NewServer(f)
		var out, log bytes.Buffer
		err := run([]string{"-url", srv.URL, "-pid", itoa(os.Getpid()), "-size", "3MiB", "-dir", t.TempDir(),
			"-duration", "200ms", "-clients", "4", "-small", "5", "-small-blob", "10KiB", "-repeat", "2"}, &out, &log)
		srv.Close()
		if err != nil {
			t.Fatalf("postPut=%v: %v\n%s", postPut, err, log.String())
		}
		s := out.String()
		t.Logf("postPut=%v:\n%s", postPut, s)
		for _, want := range []string{"| push1g", "| chunked", "| pull1g", "| manifest", "| small", "raw: write + sha256 + fsync", " 0 errors",
			"| twin: push1g", "| twin: chunked", "| twin: pull1g", "| twin: manifest", "| twin: small", "× twin"} {
			if !strings.Contains(s, want) {
				t.Errorf("postPut=%v: output lacks %q:\n%s", postPut, want, s)
			}
		}
		if strings.Contains(s, "FAILED") {
			t.Errorf("postPut=%v: a scenario failed:\n%s\n%s", postPut, s, log.String())
		}
		if postPut && !strings.Contains(s, "then `PUT") {
			t.Errorf("probe did not switch to POST+PUT:\n%s", s)
		}
		// 2 runs: 2 big blobs, 2 chunked blobs, 2 manifest images (3 blobs), 2×5 small images (4 blobs), the probe.
		if want := 2 + 2 + 2*2 + 2*5*4 + 1; len(f.blobs) != want {
			t.Errorf("postPut=%v: %d blobs stored, want %d", postPut, len(f.blobs), want)
		}
	}
}

func TestMakeImage(t *testing.T) {
	im := makeImage([][]byte{[]byte("a"), []byte("b")}, "t")
	if len(im.blobs) != 3 || im.digests[1] != digest.FromBytes([]byte("a")) {
		t.Fatalf("bad image: %d blobs", len(im.blobs))
	}
	if !bytes.Contains(im.manifest, []byte(im.digests[0].String())) {
		t.Fatal("manifest lacks the config digest")
	}
}
