package registry

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
)

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
	if n, err := io.Copy(w, rc); err != nil {
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
