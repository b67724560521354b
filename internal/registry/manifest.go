package registry

import "github.com/berth-registry/berth/internal/oci"

// parseManifest validates a manifest body against its declared Content-Type
// (oci.ParseManifest). Errors are *Error values with MANIFEST_INVALID.
func parseManifest(contentType string, data []byte) (*oci.Parsed, error) {
	p, err := oci.ParseManifest(contentType, data)
	if err != nil {
		return nil, errf(CodeManifestInvalid, "%s", err)
	}
	return p, nil
}
