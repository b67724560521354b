package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
)

// twin is the trivial registry every scenario is compared with: a plain
// net/http server in this process that does the least any registry must do.
// Manifests are kept in memory and served with the headers a registry sends
// (Content-Type, Content-Length, Docker-Content-Digest, ETag); a blob upload
// is written to a file while it is hashed, and fsynced once, when it is
// committed (monolithic POST ?digest=, or the final PUT of a session whose
// PATCHes only write); a blob GET is http.ServeContent of the file. No
// authentication, no policy, no logging, no metrics.
type twin struct {
	dir string
	ln  net.Listener
	srv *http.Server

	mu      sync.Mutex
	mans    map[string]twinManifest // "<repo>@<ref>" -> manifest
	uploads map[string]*twinUpload
	nextID  int
}

type twinManifest struct {
	data      []byte
	mediaType string
	digest    string
}

type twinUpload struct {
	mu   sync.Mutex
	f    *os.File
	h    hash.Hash
	size int64
}

// startTwin serves the twin on a new loopback port; its files go into dir.
func startTwin(dir string) (*twin, error) {
	if err := os.MkdirAll(filepath.Join(dir, "blobs"), 0o755); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "uploads"), 0o755); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	t := &twin{dir: dir, ln: ln, mans: map[string]twinManifest{}, uploads: map[string]*twinUpload{}}
	t.srv = &http.Server{Handler: t, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = t.srv.Serve(ln) }()
	return t, nil
}

func (t *twin) url() string { return "http://" + t.ln.Addr().String() }

// close stops the server and removes its files.
func (t *twin) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := t.srv.Shutdown(ctx)
	t.mu.Lock()
	for id, u := range t.uploads {
		u.f.Close()
		delete(t.uploads, id)
	}
	t.mu.Unlock()
	return errors.Join(err, os.RemoveAll(t.dir))
}

// dropBlobs removes the stored blobs (between runs, so the disk does not
// fill up with one -size blob per run).
func (t *twin) dropBlobs() error {
	d := filepath.Join(t.dir, "blobs")
	if err := os.RemoveAll(d); err != nil {
		return err
	}
	return os.MkdirAll(d, 0o755)
}

func (t *twin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Docker-Distribution-Api-Version", "registry/2.0")
	p := r.URL.Path
	if p == "/v2/" || p == "/v2" {
		return
	}
	if !strings.HasPrefix(p, "/v2/") {
		http.NotFound(w, r)
		return
	}
	p = p[len("/v2/"):]
	if i := strings.LastIndex(p, "/blobs/uploads/"); i > 0 {
		t.upload(w, r, p[:i], p[i+len("/blobs/uploads/"):])
		return
	}
	if i := strings.LastIndex(p, "/blobs/"); i > 0 {
		t.blob(w, r, p[i+len("/blobs/"):])
		return
	}
	if i := strings.LastIndex(p, "/manifests/"); i > 0 {
		t.manifest(w, r, p[:i], p[i+len("/manifests/"):])
		return
	}
	http.NotFound(w, r)
}

func (t *twin) manifest(w http.ResponseWriter, r *http.Request, repo, ref string) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		t.mu.Lock()
		m, ok := t.mans[repo+"@"+ref]
		t.mu.Unlock()
		if !ok {
			http.Error(w, `{"errors":[{"code":"MANIFEST_UNKNOWN"}]}`, http.StatusNotFound)
			return
		}
		h := w.Header()
		h.Set("Content-Type", m.mediaType)
		h.Set("Content-Length", strconv.Itoa(len(m.data)))
		h.Set("Docker-Content-Digest", m.digest)
		h.Set("Etag", `"`+m.digest+`"`)
		if r.Method == http.MethodGet {
			_, _ = w.Write(m.data)
		}
	case http.MethodPut:
		data, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		d := digest.FromBytes(data).String()
		m := twinManifest{data: data, mediaType: r.Header.Get("Content-Type"), digest: d}
		t.mu.Lock()
		t.mans[repo+"@"+ref] = m
		t.mans[repo+"@"+d] = m
		t.mu.Unlock()
		w.Header().Set("Location", "/v2/"+repo+"/manifests/"+d)
		w.Header().Set("Docker-Content-Digest", d)
		w.WriteHeader(http.StatusCreated)
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

func (t *twin) blobPath(d string) (string, bool) {
	dg, err := digest.Parse(d)
	if err != nil || dg.Algorithm() != digest.SHA256 {
		return "", false
	}
	return filepath.Join(t.dir, "blobs", dg.Encoded()), true
}

func (t *twin) blob(w http.ResponseWriter, r *http.Request, d string) {
	path, ok := t.blobPath(d)
	if !ok || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	f, err := os.Open(path)
	if err != nil {
		http.Error(w, `{"errors":[{"code":"BLOB_UNKNOWN"}]}`, http.StatusNotFound)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Docker-Content-Digest", d)
	w.Header().Set("Etag", `"`+d+`"`)
	http.ServeContent(w, r, "", time.Time{}, f)
}

func (t *twin) upload(w http.ResponseWriter, r *http.Request, repo, id string) {
	switch {
	case r.Method == http.MethodPost && id == "":
		u, id, err := t.newUpload()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if d := r.URL.Query().Get("digest"); d != "" { // monolithic
			t.finish(w, r, repo, id, u, d)
			return
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
		t.accepted(w, repo, id, 0)
	case r.Method == http.MethodPatch || r.Method == http.MethodPut:
		t.mu.Lock()
		u := t.uploads[id]
		t.mu.Unlock()
		if u == nil {
			http.Error(w, `{"errors":[{"code":"BLOB_UPLOAD_UNKNOWN"}]}`, http.StatusNotFound)
			return
		}
		if r.Method == http.MethodPut {
			t.finish(w, r, repo, id, u, r.URL.Query().Get("digest"))
			return
		}
		u.mu.Lock()
		err := u.append(r.Body)
		size := u.size
		u.mu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		t.accepted(w, repo, id, size)
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

func (t *twin) accepted(w http.ResponseWriter, repo, id string, size int64) {
	w.Header().Set("Location", "/v2/"+repo+"/blobs/uploads/"+id)
	w.Header().Set("Docker-Upload-Uuid", id)
	w.Header().Set("Range", fmt.Sprintf("0-%d", max(size-1, 0)))
	w.WriteHeader(http.StatusAccepted)
}

func (t *twin) newUpload() (*twinUpload, string, error) {
	t.mu.Lock()
	t.nextID++
	id := strconv.Itoa(t.nextID)
	t.mu.Unlock()
	f, err := os.OpenFile(filepath.Join(t.dir, "uploads", id), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, "", err
	}
	u := &twinUpload{f: f, h: sha256.New()}
	t.mu.Lock()
	t.uploads[id] = u
	t.mu.Unlock()
	return u, id, nil
}

// append writes body to the upload file while hashing it.
func (u *twinUpload) append(body io.Reader) error {
	buf := make([]byte, ioBuf)
	for {
		n, err := body.Read(buf)
		if n > 0 {
			u.h.Write(buf[:n])
			if _, werr := u.f.Write(buf[:n]); werr != nil {
				return werr
			}
			u.size += int64(n)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// finish appends the request body, fsyncs, checks the digest and moves the
// file to its blob path.
func (t *twin) finish(w http.ResponseWriter, r *http.Request, repo, id string, u *twinUpload, d string) {
	t.mu.Lock()
	delete(t.uploads, id)
	t.mu.Unlock()
	path, ok := t.blobPath(d)
	err := errors.New("bad digest")
	if ok {
		u.mu.Lock()
		err = u.append(r.Body)
		if err == nil {
			err = u.f.Sync()
		}
		sum := u.h.Sum(nil)
		u.mu.Unlock()
		if err == nil && "sha256:"+hex.EncodeToString(sum) != d {
			err = errors.New("digest mismatch")
		}
	}
	cerr := u.f.Close()
	if err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(u.f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(u.f.Name())
		http.Error(w, `{"errors":[{"code":"DIGEST_INVALID","message":"`+err.Error()+`"}]}`, http.StatusBadRequest)
		return
	}
	w.Header().Set("Location", "/v2/"+repo+"/blobs/"+d)
	w.Header().Set("Docker-Content-Digest", d)
	w.WriteHeader(http.StatusCreated)
}
