package s3

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// requestLog records method, path and query of the store's requests, and
// can hold the upload of one part until released.
type requestLog struct {
	mu   sync.Mutex
	reqs []string
	// holdPart, when set, is called before part number 1 is sent.
	holdPart func()
}

func (l *requestLog) RoundTrip(r *http.Request) (*http.Response, error) {
	l.mu.Lock()
	l.reqs = append(l.reqs, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery)
	hold := l.holdPart
	l.mu.Unlock()
	if hold != nil && r.Method == http.MethodPut && strings.Contains(r.URL.RawQuery, "partNumber=1&") {
		hold()
	}
	return http.DefaultTransport.RoundTrip(r)
}

func (l *requestLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.reqs
	l.reqs = nil
	return r
}

// TestAppendSavesStateOnce: an append of several parts writes the session
// state once, at its end, not after every part (before: one state write per
// part plus one for the remainder, 4 here).
func TestAppendSavesStateOnce(t *testing.T) {
	log := &requestLog{}
	opts := testOptions(t, newPrefix())
	opts.HTTPClient = &http.Client{Transport: log}
	opts.MultipartPartSize = MinPartSize
	st := openStore(t, opts)
	ctx := t.Context()
	up, err := st.BeginUpload(ctx, "repo")
	if err != nil {
		t.Fatal(err)
	}
	b := randomBytes(7, 3*MinPartSize+1<<20)
	log.take()
	n, err := st.AppendUpload(ctx, "repo", up.ID, 0, bytes.NewReader(b))
	if err != nil || n != int64(len(b)) {
		t.Fatalf("append: %d, %v", n, err)
	}
	var parts, states int
	for _, r := range log.take() {
		switch {
		case strings.HasPrefix(r, "PUT ") && strings.Contains(r, "partNumber="):
			parts++
		case strings.HasPrefix(r, "PUT ") && strings.Contains(r, "/"+keyState+"?"):
			states++
		}
	}
	if parts != 3 || states != 1 {
		t.Fatalf("append of 3 parts and a tail: %d parts, %d state writes; want 3 parts, 1 state write", parts, states)
	}
	if _, err := st.CommitUpload(ctx, "repo", up.ID, sha256Of(b)); err != nil {
		t.Fatal(err)
	}
	checkBlob(t, st, "repo", b)
}

// TestAppendOverlapsPartUploads: while part 1 goes to the bucket, the append
// already reads part 2 from the client. The first part's upload is held
// until the client has been asked for bytes past it; before, the append read
// nothing more until the part was stored, and the hold ran out (the bound
// only keeps the old code from hanging; the assertion is about order).
func TestAppendOverlapsPartUploads(t *testing.T) {
	log := &requestLog{}
	opts := testOptions(t, newPrefix())
	opts.HTTPClient = &http.Client{Transport: log}
	opts.MultipartPartSize = MinPartSize
	st := openStore(t, opts)
	ctx := t.Context()
	up, err := st.BeginUpload(ctx, "repo")
	if err != nil {
		t.Fatal(err)
	}
	b := randomBytes(8, 2*MinPartSize)
	pastPart1 := make(chan struct{})
	var once sync.Once
	overlapped := false
	log.holdPart = func() {
		select {
		case <-pastPart1:
			overlapped = true
		case <-time.After(20 * time.Second):
		}
	}
	r := &watchReader{r: bytes.NewReader(b), mark: MinPartSize, reached: func() { once.Do(func() { close(pastPart1) }) }}
	if _, err := st.AppendUpload(ctx, "repo", up.ID, 0, r); err != nil {
		t.Fatal(err)
	}
	if !overlapped {
		t.Fatal("part 1 was uploaded before the client was read past it: no overlap")
	}
	if _, err := st.CommitUpload(ctx, "repo", up.ID, sha256Of(b)); err != nil {
		t.Fatal(err)
	}
	checkBlob(t, st, "repo", b)
}

// watchReader calls reached when asked for bytes at or past mark.
type watchReader struct {
	r       io.Reader
	off     int
	mark    int
	reached func()
}

func (w *watchReader) Read(p []byte) (int, error) {
	if w.off >= w.mark {
		w.reached()
	}
	n, err := w.r.Read(p)
	w.off += n
	return n, err
}

func checkBlob(t *testing.T, st *Store, repo string, want []byte) {
	t.Helper()
	rc, err := st.OpenBlob(t.Context(), repo, sha256Of(want), 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("blob reads back %d bytes, not the %d appended", len(got), len(want))
	}
}
