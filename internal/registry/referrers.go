package registry

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/berth-registry/berth/internal/storage"
)

// getReferrers serves GET /v2/<name>/referrers/<digest>[?artifactType=]: an
// OCI image index of the manifests whose subject is the digest.
func (h *Handler) getReferrers(w http.ResponseWriter, r *http.Request, rt Route) error {
	d, err := parseDigest(rt.Reference)
	if err != nil {
		return err
	}
	descs, err := h.store.ListReferrers(r.Context(), rt.Repo, d)
	if errors.Is(err, storage.ErrRepositoryUnknown) {
		descs, err = nil, nil // an unknown subject has no referrers
	}
	if err != nil {
		return fmt.Errorf("list referrers: %w", err)
	}
	if at := r.URL.Query().Get("artifactType"); at != "" {
		kept := descs[:0]
		for _, desc := range descs {
			if desc.ArtifactType == at {
				kept = append(kept, desc)
			}
		}
		descs = kept
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	if descs == nil {
		descs = []storage.Descriptor{}
	}
	return writeJSON(w, http.StatusOK, mediaTypeOCIIndex, struct {
		SchemaVersion int                  `json:"schemaVersion"`
		MediaType     string               `json:"mediaType"`
		Manifests     []storage.Descriptor `json:"manifests"`
	}{2, mediaTypeOCIIndex, descs})
}
