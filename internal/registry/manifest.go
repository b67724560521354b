package registry

import (
	"bytes"
	"encoding/json"
	"mime"

	"github.com/opencontainers/go-digest"
)

// Manifest media types berth stores.
const (
	mediaTypeOCIManifest   = "application/vnd.oci.image.manifest.v1+json"
	mediaTypeOCIIndex      = "application/vnd.oci.image.index.v1+json"
	mediaTypeDockerV2      = "application/vnd.docker.distribution.manifest.v2+json"
	mediaTypeDockerList    = "application/vnd.docker.distribution.manifest.list.v2+json"
	mediaTypeDockerForeign = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
)

// descriptor is the part of an OCI/Docker descriptor berth reads.
type descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         int64             `json:"size"`
	URLs         []string          `json:"urls,omitempty"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

// rawManifest is the union of the image manifest and index shapes.
type rawManifest struct {
	SchemaVersion *int              `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType"`
	Config        *descriptor       `json:"config"`
	Layers        []descriptor      `json:"layers"`
	Manifests     []descriptor      `json:"manifests"`
	Subject       *descriptor       `json:"subject"`
	Annotations   map[string]string `json:"annotations"`
}

// parsedManifest is a validated manifest and what it references.
type parsedManifest struct {
	MediaType    string
	ArtifactType string // the referrers API's artifactType for it
	Blobs        []ref  // config and layers: must exist as blobs
	Children     []ref  // index entries: must exist as manifests
	Subject      digest.Digest
	Annotations  map[string]string
}

type ref struct {
	Digest digest.Digest
	Size   int64
}

// parseManifest validates a manifest body against its declared Content-Type.
// Errors are *Error values with MANIFEST_INVALID.
func parseManifest(contentType string, data []byte) (*parsedManifest, error) {
	ct := contentType
	if ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err == nil {
			ct = mt
		}
	}
	if !json.Valid(data) {
		return nil, errf(CodeManifestInvalid, "manifest is not valid JSON")
	}
	var m rawManifest
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&m); err != nil {
		return nil, errf(CodeManifestInvalid, "manifest does not match the manifest schema: %v", err)
	}
	mt := m.MediaType
	switch {
	case ct == "" && mt == "":
		return nil, errf(CodeManifestInvalid, "manifest media type unknown: set Content-Type or mediaType")
	case ct == "":
		ct = mt
	case mt != "" && mt != ct:
		return nil, errf(CodeManifestInvalid, "Content-Type %q does not match the manifest's mediaType %q", truncate(ct, 100), truncate(mt, 100))
	}
	if m.SchemaVersion == nil || *m.SchemaVersion != 2 {
		return nil, errf(CodeManifestInvalid, "schemaVersion must be 2")
	}
	p := &parsedManifest{MediaType: ct, ArtifactType: m.ArtifactType, Annotations: m.Annotations}
	switch ct {
	case mediaTypeOCIManifest, mediaTypeDockerV2:
		if m.Config == nil {
			return nil, errf(CodeManifestInvalid, "image manifest has no config")
		}
		if m.Manifests != nil {
			return nil, errf(CodeManifestInvalid, "image manifest must not have manifests")
		}
		c, err := checkDescriptor("config", *m.Config)
		if err != nil {
			return nil, err
		}
		p.Blobs = append(p.Blobs, c)
		if p.ArtifactType == "" && ct == mediaTypeOCIManifest {
			p.ArtifactType = m.Config.MediaType
		}
		for _, l := range m.Layers {
			r, err := checkDescriptor("layer", l)
			if err != nil {
				return nil, err
			}
			if len(l.URLs) > 0 || l.MediaType == mediaTypeDockerForeign {
				continue // foreign layer: served from its URLs, not from the registry
			}
			p.Blobs = append(p.Blobs, r)
		}
	case mediaTypeOCIIndex, mediaTypeDockerList:
		if m.Manifests == nil {
			return nil, errf(CodeManifestInvalid, "index has no manifests")
		}
		if m.Config != nil || m.Layers != nil {
			return nil, errf(CodeManifestInvalid, "index must not have config or layers")
		}
		for _, c := range m.Manifests {
			r, err := checkDescriptor("manifest", c)
			if err != nil {
				return nil, err
			}
			p.Children = append(p.Children, r)
		}
	default:
		return nil, errf(CodeManifestInvalid, "unsupported manifest media type %q", truncate(ct, 100))
	}
	if m.Subject != nil {
		s, err := checkDescriptor("subject", *m.Subject)
		if err != nil {
			return nil, err
		}
		p.Subject = s.Digest
	}
	return p, nil
}

func checkDescriptor(what string, d descriptor) (ref, error) {
	dg, err := digest.Parse(d.Digest)
	if err != nil {
		return ref{}, errf(CodeManifestInvalid, "%s descriptor has an invalid digest %q", what, truncate(d.Digest, 150))
	}
	if d.Size < 0 {
		return ref{}, errf(CodeManifestInvalid, "%s descriptor has a negative size", what)
	}
	if d.MediaType == "" {
		return ref{}, errf(CodeManifestInvalid, "%s descriptor has no mediaType", what)
	}
	return ref{Digest: dg, Size: d.Size}, nil
}
