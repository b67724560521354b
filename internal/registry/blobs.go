package registry

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
)

// loopbackBufSize is the buffer a whole blob file is copied to a loopback
// peer with (see sendBody): one per blob being sent to such a peer. 1 MiB
// measured faster than 256 and 512 KiB with a Go client (docs/benchmarks.md).
const loopbackBufSize = 1 << 20

var loopbackBufs = sync.Pool{New: func() any { b := make([]byte, loopbackBufSize); return &b }}

// sendBody writes a blob body to w. A whole blob file normally goes to the
// socket with sendfile(2) (io.Copy → the connection's ReadFrom), which saves
// a copy on a real network interface. To a loopback peer — a TLS proxy or
// service-mesh sidecar on the same host, a local client — there is no copy
// to save: the receiving socket copies out of the page cache's pages
// either way, and the sender processes both ends; on Linux 6.x sendfile to
// loopback measured up to 1.6× slower, with more CPU, than read/write through
// a large buffer (docs/benchmarks.md). So files to loopback peers are copied.
// Other bodies stream themselves (the S3 store's WriterTo).
func sendBody(w http.ResponseWriter, r *http.Request, body io.Reader) (int64, error) {
	if _, isFile := body.(*os.File); isFile && loopbackPeer(r.RemoteAddr) {
		buf := loopbackBufs.Get().(*[]byte)
		defer loopbackBufs.Put(buf)
		return io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{body}, *buf)
	}
	return io.Copy(w, body)
}

// loopbackPeer reports whether the TCP peer address host:port is a loopback
// address.
func loopbackPeer(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// getBlob serves GET and HEAD /v2/<name>/blobs/<digest>, with a single Range.
func (h *Handler) getBlob(w http.ResponseWriter, r *http.Request, rt Route) error {
	d, err := parseDigest(rt.Reference)
	if err != nil {
		return err
	}
	info, err := h.store.StatBlob(r.Context(), rt.Repo, d)
	if err != nil {
		return fmt.Errorf("stat blob: %w", err)
	}
	hdr := w.Header()
	hdr.Set("Docker-Content-Digest", info.Digest.String())
	hdr.Set("ETag", `"`+info.Digest.String()+`"`)
	hdr.Set("Accept-Ranges", "bytes")
	hdr.Set("Content-Type", "application/octet-stream")
	hdr.Set("Cache-Control", "max-age=31536000")

	start, length, partial, err := parseRange(r.Header.Get("Range"), info.Size)
	if err != nil {
		hdr.Set("Content-Range", fmt.Sprintf("bytes */%d", info.Size))
		return &Error{Code: CodeRangeInvalid, Message: "requested range not satisfiable", Err: err}
	}
	status := http.StatusOK
	if partial {
		status = http.StatusPartialContent
		hdr.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, start+length-1, info.Size))
	} else {
		start, length = 0, info.Size
	}
	hdr.Set("Content-Length", strconv.FormatInt(length, 10))
	if r.Method == http.MethodHead {
		w.WriteHeader(status)
		return nil
	}
	if h.redirect != nil {
		u, err := h.redirect.PresignBlob(r.Context(), rt.Repo, d, BlobRedirectTTL)
		if err != nil {
			return fmt.Errorf("presign blob: %w", err)
		}
		for _, k := range []string{"Content-Length", "Content-Range", "Content-Type", "Accept-Ranges", "ETag", "Cache-Control"} {
			hdr.Del(k)
		}
		// The URL is valid for BlobRedirectTTL: never cache the redirect longer.
		hdr.Set("Cache-Control", "no-store")
		hdr.Set("Location", u)
		w.WriteHeader(http.StatusTemporaryRedirect)
		return nil
	}
	rc, err := h.store.OpenBlob(r.Context(), rt.Repo, d, start, length)
	if err != nil {
		hdr.Del("Content-Length")
		hdr.Del("Content-Range")
		return fmt.Errorf("open blob: %w", err)
	}
	defer rc.Close()
	w.WriteHeader(status)
	if n, err := sendBody(w, r, rc); err != nil {
		// Headers are gone: the client sees a short body. Log it.
		h.log.WarnContext(r.Context(), "blob transfer interrupted", "request_id", requestID(r.Context()),
			"digest", d.String(), "sent", n, "err", err)
	}
	return nil
}

// deleteBlob serves DELETE /v2/<name>/blobs/<digest>.
func (h *Handler) deleteBlob(w http.ResponseWriter, r *http.Request, rt Route) error {
	d, err := parseDigest(rt.Reference)
	if err != nil {
		return err
	}
	if err := h.store.DeleteBlob(r.Context(), rt.Repo, d); err != nil {
		return fmt.Errorf("delete blob: %w", err)
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	return nil
}
