package registry

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/berth-registry/berth/internal/manifestcache"
	"github.com/berth-registry/berth/internal/oci"
	"github.com/berth-registry/berth/internal/storage"
	"github.com/opencontainers/go-digest"
)

// manifestRef is a manifest reference from the path: a digest or a tag.
type manifestRef struct {
	Digest digest.Digest
	Tag    string
}

func parseManifestRef(s string) (manifestRef, error) {
	if strings.Contains(s, ":") {
		d, err := parseDigest(s)
		if err != nil {
			return manifestRef{}, err
		}
		return manifestRef{Digest: d}, nil
	}
	if !oci.ValidTag(s) {
		return manifestRef{}, errf(CodeManifestInvalid, "invalid tag %q", truncate(s, 150)).withDetail(map[string]string{"tag": truncate(s, 150)})
	}
	return manifestRef{Tag: s}, nil
}

// resolveManifest returns the digest a reference names in repo; t is the
// cache ticket taken before any storage read of the request.
func (h *Handler) resolveManifest(r *http.Request, t manifestcache.Ticket, repo string, mr manifestRef) (digest.Digest, error) {
	if mr.Tag == "" {
		return mr.Digest, nil
	}
	if d, ok := h.cache.Tag(repo, mr.Tag); ok {
		return d, nil
	}
	d, err := h.store.ResolveTag(r.Context(), repo, mr.Tag)
	if err != nil {
		return "", fmt.Errorf("resolve tag: %w", err)
	}
	h.cache.AddTag(t, repo, mr.Tag, d)
	return d, nil
}

// manifest returns manifest d of repo with its response headers, from the
// cache or from storage.
func (h *Handler) manifest(r *http.Request, t manifestcache.Ticket, repo string, d digest.Digest) (*manifestcache.Entry, error) {
	if e, ok := h.cache.Manifest(repo, d); ok {
		return e, nil
	}
	m, err := h.store.GetManifest(r.Context(), repo, d)
	if err != nil {
		return nil, fmt.Errorf("get manifest: %w", err)
	}
	e := manifestcache.NewEntry(m)
	h.cache.AddManifest(t, repo, e)
	return e, nil
}

// getManifest serves GET and HEAD /v2/<name>/manifests/<reference>: the bytes
// exactly as pushed, with the Content-Type they were pushed with.
func (h *Handler) getManifest(w http.ResponseWriter, r *http.Request, rt Route) error {
	mr, err := parseManifestRef(rt.Reference)
	if err != nil {
		if !strings.Contains(rt.Reference, ":") {
			// No manifest can have a tag that is not one: 404, as the
			// conformance suite expects (a PUT to it is still refused with 400).
			return errf(CodeManifestUnknown, "no manifest has the invalid tag %q", truncate(rt.Reference, 150))
		}
		return err
	}
	t := h.cache.Ticket(rt.Repo) // before reading storage: see manifestcache
	d, err := h.resolveManifest(r, t, rt.Repo, mr)
	if err != nil {
		return err
	}
	e, err := h.manifest(r, t, rt.Repo, d)
	if err != nil {
		return err
	}
	// The entry's header values are shared, read-only slices: no
	// allocation per request.
	hdr := w.Header()
	for k, v := range e.Header {
		hdr[k] = v
	}
	if match := r.Header["If-None-Match"]; len(match) > 0 && strings.Contains(match[0], e.Digest.String()) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(e.Data)
	}
	return nil
}

// putManifest serves PUT /v2/<name>/manifests/<reference>[?tag=...].
func (h *Handler) putManifest(w http.ResponseWriter, r *http.Request, rt Route) error {
	ctx := r.Context()
	mr, err := parseManifestRef(rt.Reference)
	if err != nil {
		return err
	}
	var tags []string
	if mr.Tag != "" {
		tags = append(tags, mr.Tag)
	}
	extra := r.URL.Query()["tag"]
	for _, t := range extra {
		if !oci.ValidTag(t) {
			return errf(CodeManifestInvalid, "invalid tag %q", truncate(t, 150))
		}
		tags = append(tags, t)
	}

	if r.ContentLength > h.maxMan {
		return manifestTooLarge(h.maxMan)
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, h.maxMan+1))
	if err != nil {
		return &Error{Code: CodeManifestInvalid, Message: "reading manifest body failed", Err: err}
	}
	if int64(len(data)) > h.maxMan {
		return manifestTooLarge(h.maxMan)
	}

	alg := digest.SHA256
	if mr.Digest != "" {
		alg = mr.Digest.Algorithm()
	}
	d := alg.FromBytes(data)
	if mr.Digest != "" && d != mr.Digest {
		return errf(CodeDigestInvalid, "manifest digest %s does not match %s in the URL", d, mr.Digest)
	}

	pm, err := parseManifest(r.Header.Get("Content-Type"), data)
	if err != nil {
		return err
	}
	refs, err := h.checkReferences(r, rt.Repo, pm)
	if err != nil {
		return err
	}
	if err := h.checkImmutable(r, rt.Repo, tags, d); err != nil {
		return err
	}

	req := storage.PutManifestRequest{
		Manifest: storage.Manifest{Digest: d, MediaType: pm.MediaType, Data: data},
		Tags:     tags,
		Refs:     refs,
	}
	if pm.Subject != "" {
		req.Subject = pm.Subject
		req.Referrer = storage.Descriptor{
			MediaType:    pm.MediaType,
			Digest:       d,
			Size:         int64(len(data)),
			ArtifactType: pm.ArtifactType,
			Annotations:  pm.Annotations,
		}
	}
	err = h.store.PutManifest(ctx, rt.Repo, req)
	// Also after a failure: part of the write may have happened.
	h.cache.ManifestPut(ctx, rt.Repo, d, tags)
	if err != nil {
		if errors.Is(err, storage.ErrBlobUnknown) {
			// Garbage collection removed a reference after it was checked.
			return &Error{Code: CodeManifestBlobUnknown, Message: "manifest references content that is gone", Err: err}
		}
		return fmt.Errorf("put manifest: %w", err)
	}

	hdr := w.Header()
	hdr.Set("Location", "/v2/"+rt.Repo+"/manifests/"+d.String())
	hdr.Set("Docker-Content-Digest", d.String())
	if pm.Subject != "" {
		hdr.Set("OCI-Subject", pm.Subject.String())
	}
	for _, t := range extra {
		hdr.Add("OCI-Tag", t)
	}
	hdr.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

func manifestTooLarge(limit int64) *Error {
	return &Error{Code: CodeSizeInvalid, Status: http.StatusRequestEntityTooLarge,
		Message: fmt.Sprintf("manifest exceeds the size limit of %d bytes", limit)}
}

// checkReferences verifies that every blob and child manifest the manifest
// references exists in the repository with the declared size. A missing
// subject is allowed (the spec lets referrers be pushed before their subject).
// It returns the references found, for storage.PutManifestRequest.Refs.
func (h *Handler) checkReferences(r *http.Request, repo string, pm *oci.Parsed) ([]digest.Digest, error) {
	ctx := r.Context()
	refs := make([]digest.Digest, 0, len(pm.Blobs)+len(pm.Children))
	for i, b := range pm.Blobs {
		info, err := h.store.StatBlob(ctx, repo, b.Digest)
		if err != nil {
			if errors.Is(err, storage.ErrBlobUnknown) || errors.Is(err, storage.ErrUnsupportedDigest) {
				if h.sparse && i > 0 { // Blobs[0] is the config
					continue
				}
				return nil, blobUnknownIn(b.Digest, err)
			}
			return nil, fmt.Errorf("stat blob: %w", err)
		}
		if info.Size != b.Size {
			return nil, errf(CodeManifestInvalid, "descriptor of %s says size %d, the blob has %d", b.Digest, b.Size, info.Size)
		}
		refs = append(refs, b.Digest)
	}
	for _, c := range pm.Children {
		m, err := h.store.GetManifest(ctx, repo, c.Digest)
		if err != nil {
			if errors.Is(err, storage.ErrManifestUnknown) || errors.Is(err, storage.ErrUnsupportedDigest) {
				if h.sparse {
					continue
				}
				return nil, blobUnknownIn(c.Digest, err)
			}
			return nil, fmt.Errorf("get manifest: %w", err)
		}
		if int64(len(m.Data)) != c.Size {
			return nil, errf(CodeManifestInvalid, "descriptor of %s says size %d, the manifest has %d", c.Digest, c.Size, len(m.Data))
		}
		refs = append(refs, c.Digest)
	}
	return refs, nil
}

func blobUnknownIn(d digest.Digest, err error) *Error {
	return &Error{Code: CodeManifestBlobUnknown, Message: "manifest references unknown content " + d.String(),
		Detail: map[string]string{"digest": d.String()}, Err: err}
}

// deleteManifest serves DELETE /v2/<name>/manifests/<reference>: by digest it
// removes the manifest and its tags; by tag only the tag.
func (h *Handler) deleteManifest(w http.ResponseWriter, r *http.Request, rt Route) error {
	mr, err := parseManifestRef(rt.Reference)
	if err != nil {
		return err
	}
	// The cache entries go before the answer, also after a failure (part
	// of the delete may have happened): a deleted manifest is never served
	// after its delete was acknowledged.
	if mr.Tag != "" {
		err = h.store.DeleteTag(r.Context(), rt.Repo, mr.Tag)
		h.cache.TagsChanged(r.Context(), rt.Repo, mr.Tag)
	} else {
		err = h.store.DeleteManifest(r.Context(), rt.Repo, mr.Digest)
		h.cache.ManifestDeleted(r.Context(), rt.Repo, mr.Digest)
	}
	if err != nil {
		return fmt.Errorf("delete manifest: %w", err)
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// checkImmutable refuses to move an immutable tag that exists to another
// manifest; the first push and a re-push of the same digest are fine.
func (h *Handler) checkImmutable(r *http.Request, repo string, tags []string, d digest.Digest) error {
	if h.immut == nil {
		return nil
	}
	for _, t := range tags {
		if !h.immut(repo, t) {
			continue
		}
		cur, err := h.store.ResolveTag(r.Context(), repo, t)
		switch {
		case errors.Is(err, storage.ErrTagUnknown), errors.Is(err, storage.ErrRepositoryUnknown):
			continue
		case err != nil:
			return fmt.Errorf("resolve tag: %w", err)
		case cur != d:
			return &Error{Code: CodeDenied, Status: http.StatusConflict,
				Message: fmt.Sprintf("tag %s in %s is immutable: it already points at %s", t, repo, cur),
				Detail:  map[string]string{"tag": t, "digest": cur.String()}}
		}
	}
	return nil
}
