package registry

import (
	"bytes"
	"crypto/rand"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

func TestLoopbackPeer(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:5000": true, "127.3.2.1:1": true, "[::1]:443": true,
		"10.0.0.1:5000": false, "[2001:db8::1]:5000": false, "192.0.2.1:80": false,
		"127.0.0.1": false, "": false, "localhost:80": false, "[::1": false,
	} {
		if got := loopbackPeer(addr); got != want {
			t.Errorf("loopbackPeer(%q) = %v, want %v", addr, got, want)
		}
	}
}

// sendBody writes a whole blob file byte for byte whichever way it goes:
// copied to a loopback peer, io.Copy (sendfile on a real connection) to
// any other.
func TestSendBody(t *testing.T) {
	data := make([]byte, 3*loopbackBufSize+12345)
	rand.Read(data)
	path := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, remote := range []string{"127.0.0.1:40000", "192.0.2.1:40000"} {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		r := httptest.NewRequest("GET", "/v2/a/blobs/x", nil)
		r.RemoteAddr = remote
		w := httptest.NewRecorder()
		n, err := sendBody(w, r, f)
		f.Close()
		if err != nil || n != int64(len(data)) || !bytes.Equal(w.Body.Bytes(), data) {
			t.Fatalf("sendBody to %s: %d bytes, %v; body equal: %v", remote, n, err, bytes.Equal(w.Body.Bytes(), data))
		}
	}
}
