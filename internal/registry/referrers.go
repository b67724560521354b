package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/oci"
	"github.com/berth-registry/berth/internal/storage"
)

// Default bounds of one page of the referrers API (Options.ReferrersPageEntries
// and ReferrersPageBytes).
const (
	DefaultReferrersPageEntries = 1000
	DefaultReferrersPageBytes   = 4 << 20
)

// getReferrers serves GET /v2/<name>/referrers/<digest>[?artifactType=][&last=]:
// an OCI image index of the manifests whose subject is the digest, one page
// at a time. A page holds at most h.refEntries descriptors and at most
// h.refBytes bytes of them (but always at least one, however large); when
// more remain, a Link header with rel="next" names the next page, as for tag
// listings (last is the digest of the page's last referrer). The store hands
// out one stored descriptor at a time, so memory is bounded by the page
// whatever the number of referrers.
func (h *Handler) getReferrers(w http.ResponseWriter, r *http.Request, rt Route) error {
	d, err := parseDigest(rt.Reference)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	at := q.Get("artifactType")
	var after digest.Digest
	if s := q.Get("last"); s != "" {
		if after, err = parseDigest(s); err != nil {
			return err
		}
	}

	var (
		page  [][]byte // the page's descriptors, JSON as stored
		size  int      // their total length
		last  digest.Digest
		more  bool
		match struct {
			ArtifactType string `json:"artifactType"`
		}
	)
	err = h.store.WalkReferrers(r.Context(), rt.Repo, d, after, func(ref digest.Digest, desc []byte) (bool, error) {
		if !json.Valid(desc) {
			return false, fmt.Errorf("referrer %s of %s: stored descriptor is not JSON", ref, d)
		}
		if at != "" {
			match.ArtifactType = ""
			if err := json.Unmarshal(desc, &match); err != nil {
				return false, fmt.Errorf("referrer %s of %s: %w", ref, d, err)
			}
			if match.ArtifactType != at {
				return true, nil
			}
		}
		if len(page) == h.refEntries || (len(page) > 0 && size+len(desc) > h.refBytes) {
			more = true
			return false, nil
		}
		page = append(page, bytes.Clone(desc)) // the store reuses desc
		size += len(desc)
		last = ref
		return true, nil
	})
	if errors.Is(err, storage.ErrRepositoryUnknown) {
		page, more, err = nil, false, nil // an unknown subject has no referrers
	}
	if err != nil {
		return fmt.Errorf("list referrers: %w", err)
	}

	const head = `{"schemaVersion":2,"mediaType":"` + oci.MediaTypeImageIndex + `","manifests":[`
	const tail = `]}`
	hdr := w.Header()
	if at != "" {
		hdr.Set("OCI-Filters-Applied", "artifactType")
	}
	if more {
		next := url.Values{"last": {last.String()}}
		if at != "" {
			next.Set("artifactType", at)
		}
		hdr.Set("Link", fmt.Sprintf("<%s?%s>; rel=\"next\"", "/v2/"+rt.Repo+"/referrers/"+d.String(), next.Encode()))
	}
	hdr.Set("Content-Type", oci.MediaTypeImageIndex)
	hdr.Set("Content-Length", strconv.Itoa(len(head)+size+max(len(page)-1, 0)+len(tail)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(head))
	for i, desc := range page {
		if i > 0 {
			_, _ = w.Write([]byte{','})
		}
		if _, err := w.Write(desc); err != nil {
			return nil // the client went away
		}
	}
	_, _ = w.Write([]byte(tail))
	return nil
}
