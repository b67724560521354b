package oci

import (
	"encoding/json"
	"fmt"
	"mime"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Media types berth knows: the image-spec's, and the Docker schema 2 ones it
// stores alike.
const (
	MediaTypeImageManifest = v1.MediaTypeImageManifest
	MediaTypeImageIndex    = v1.MediaTypeImageIndex
	MediaTypeImageConfig   = v1.MediaTypeImageConfig
	MediaTypeLayerGzip     = v1.MediaTypeImageLayerGzip
	MediaTypeEmptyJSON     = v1.MediaTypeEmptyJSON

	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	MediaTypeDockerForeignLayer = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
)

// Descriptor is the part of an OCI/Docker descriptor berth reads. Unlike
// v1.Descriptor it is lenient: the fields berth does not read (data, ...)
// are ignored whatever their shape.
type Descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       digest.Digest     `json:"digest"`
	Size         int64             `json:"size"`
	URLs         []string          `json:"urls,omitempty"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	// Platform of an index entry: read by ReadDescriptor (the web UI), not
	// by ParseManifest (a push does not check it, whatever its shape).
	Platform *Platform `json:"-"`
}

// Manifest is the union of the image manifest and index shapes (OCI and
// Docker schema 2), as berth reads them.
type Manifest struct {
	SchemaVersion *int              `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType"`
	Config        *Descriptor       `json:"config"`
	Layers        []Descriptor      `json:"layers"`
	Manifests     []Descriptor      `json:"manifests"`
	Subject       *Descriptor       `json:"subject"`
	Annotations   map[string]string `json:"annotations"`
}

// Parsed is a validated manifest and what it references.
type Parsed struct {
	MediaType    string
	ArtifactType string // the referrers API's artifactType for it
	Blobs        []Ref  // config and layers: must exist as blobs
	Children     []Ref  // index entries: must exist as manifests
	Subject      digest.Digest
	Annotations  map[string]string
}

// Ref is a referenced blob or manifest.
type Ref struct {
	Digest digest.Digest
	Size   int64
}

// InvalidManifestError is the error of ParseManifest: Msg says what is wrong,
// fit for a client.
type InvalidManifestError struct{ Msg string }

func (e *InvalidManifestError) Error() string { return e.Msg }

func invalid(format string, args ...any) error {
	return &InvalidManifestError{Msg: fmt.Sprintf(format, args...)}
}

// ParseManifest validates a manifest body against its declared Content-Type
// (an image manifest or index, OCI or Docker schema 2). Its errors are
// *InvalidManifestError.
func ParseManifest(contentType string, data []byte) (*Parsed, error) {
	ct := contentType
	if ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err == nil {
			ct = mt
		}
	}
	if !json.Valid(data) {
		return nil, invalid("manifest is not valid JSON")
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil { // data is one JSON value (json.Valid)
		return nil, invalid("manifest does not match the manifest schema: %v", err)
	}
	mt := m.MediaType
	switch {
	case ct == "" && mt == "":
		return nil, invalid("manifest media type unknown: set Content-Type or mediaType")
	case ct == "":
		ct = mt
	case mt != "" && mt != ct:
		return nil, invalid("Content-Type %q does not match the manifest's mediaType %q", truncate(ct, 100), truncate(mt, 100))
	}
	if m.SchemaVersion == nil || *m.SchemaVersion != 2 {
		return nil, invalid("schemaVersion must be 2")
	}
	p := &Parsed{MediaType: ct, ArtifactType: m.ArtifactType, Annotations: m.Annotations}
	switch ct {
	case MediaTypeImageManifest, MediaTypeDockerManifest:
		if m.Config == nil {
			return nil, invalid("image manifest has no config")
		}
		if m.Manifests != nil {
			return nil, invalid("image manifest must not have manifests")
		}
		c, err := checkDescriptor("config", *m.Config)
		if err != nil {
			return nil, err
		}
		p.Blobs = make([]Ref, 1, 1+len(m.Layers))
		p.Blobs[0] = c
		if p.ArtifactType == "" && ct == MediaTypeImageManifest {
			p.ArtifactType = m.Config.MediaType
		}
		for _, l := range m.Layers {
			r, err := checkDescriptor("layer", l)
			if err != nil {
				return nil, err
			}
			if len(l.URLs) > 0 || l.MediaType == MediaTypeDockerForeignLayer {
				continue // foreign layer: served from its URLs, not from the registry
			}
			p.Blobs = append(p.Blobs, r)
		}
	case MediaTypeImageIndex, MediaTypeDockerManifestList:
		if m.Manifests == nil {
			return nil, invalid("index has no manifests")
		}
		if m.Config != nil || m.Layers != nil {
			return nil, invalid("index must not have config or layers")
		}
		p.Children = make([]Ref, 0, len(m.Manifests))
		for _, c := range m.Manifests {
			r, err := checkDescriptor("manifest", c)
			if err != nil {
				return nil, err
			}
			p.Children = append(p.Children, r)
		}
	default:
		return nil, invalid("unsupported manifest media type %q", truncate(ct, 100))
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

func checkDescriptor(what string, d Descriptor) (Ref, error) {
	dg, err := digest.Parse(string(d.Digest))
	if err != nil {
		return Ref{}, invalid("%s descriptor has an invalid digest %q", what, truncate(string(d.Digest), 150))
	}
	if d.Size < 0 {
		return Ref{}, invalid("%s descriptor has a negative size", what)
	}
	if d.MediaType == "" {
		return Ref{}, invalid("%s descriptor has no mediaType", what)
	}
	return Ref{Digest: dg, Size: d.Size}, nil
}

// References returns the blobs (config, layers, artifact blobs) and child
// manifests (index entries) a manifest refers to. It is lenient: it reads
// the digests only (whatever the other fields hold), and what does not parse
// refers to nothing.
func References(data []byte) (blobs, children []digest.Digest) {
	type ref struct {
		Digest digest.Digest `json:"digest"`
	}
	var m struct {
		Config    *ref  `json:"config"`
		Layers    []ref `json:"layers"`
		Blobs     []ref `json:"blobs"` // the artifact manifest of image-spec 1.1's drafts
		Manifests []ref `json:"manifests"`
	}
	if json.Unmarshal(data, &m) != nil {
		return nil, nil
	}
	if m.Config != nil && m.Config.Digest != "" {
		blobs = append(blobs, m.Config.Digest)
	}
	for _, l := range append(m.Layers, m.Blobs...) {
		if l.Digest != "" {
			blobs = append(blobs, l.Digest)
		}
	}
	for _, c := range m.Manifests {
		if c.Digest != "" {
			children = append(children, c.Digest)
		}
	}
	return blobs, children
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
