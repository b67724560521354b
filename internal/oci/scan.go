package oci

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"unicode/utf8"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/oci/rawjson"
)

// A manifest may be a few MiB of JSON holding tens of thousands of layers,
// index children or annotations. ScanManifest reads one without building
// the lists: it walks the bytes, keeps the requested window of each list and
// counts the rest, so what it keeps is bounded whatever the manifest holds.
// It is lenient like encoding/json (keys match case-insensitively, a
// repeated key: the last one; unknown fields are ignored).

// maxPlatforms bounds the platforms a Scan names.
const maxPlatforms = 16

// Window is the rows [Off, Off+N) of a list.
type Window struct{ Off, N int }

func (w Window) has(i int) bool { return i >= w.Off && i < w.Off+w.N }

// ListPage is one Window of a list and what the list holds in all.
type ListPage[T any] struct {
	Count   int   // items in the list
	Total   int64 // sum of their sizes (descriptors)
	Largest int64 // largest size (descriptors)
	Off     int   // index of Items[0]
	Items   []T
}

// Annotation is one annotation of a list.
type Annotation struct{ Key, Value string }

// Scan is what ScanManifest reads of a manifest.
type Scan struct {
	MediaType     string
	ArtifactType  string
	Config        *Descriptor
	Subject       *Descriptor
	IsIndex       bool // a "manifests" array
	Layers        ListPage[Descriptor]
	Children      ListPage[Descriptor]
	Annotations   ListPage[Annotation]
	Platforms     []string // of the children, at most maxPlatforms
	MorePlatforms bool
}

// ScanManifest reads data (a JSON object) keeping the given windows of its
// layers, manifests and annotations; of the descriptors' annotations it
// keeps those named in keep (ReadDescriptor). Keys match as encoding/json
// matches them (case-insensitively; a repeated key: the last one).
func ScanManifest(data []byte, layers, children, annotations Window, keep []string) (*Scan, error) {
	if !json.Valid(data) {
		return nil, errors.New("oci: manifest is not valid JSON")
	}
	s := &Scan{}
	err := rawjson.Members(data, func(key, v []byte) error {
		switch {
		case rawjson.KeyIs(key, "mediaType"):
			return json.Unmarshal(v, &s.MediaType)
		case rawjson.KeyIs(key, "artifactType"):
			return json.Unmarshal(v, &s.ArtifactType)
		case rawjson.KeyIs(key, "config"):
			var err error
			s.Config, err = readDescriptorPtr(v, keep)
			return err
		case rawjson.KeyIs(key, "subject"):
			var err error
			s.Subject, err = readDescriptorPtr(v, keep)
			return err
		case rawjson.KeyIs(key, "layers"):
			s.Layers = ListPage[Descriptor]{}
			return scanDescriptors(v, layers, &s.Layers, nil, keep)
		case rawjson.KeyIs(key, "manifests"):
			s.Children, s.Platforms, s.MorePlatforms = ListPage[Descriptor]{}, nil, false
			s.IsIndex = !rawjson.IsNull(v)
			return scanDescriptors(v, children, &s.Children, s, keep)
		case rawjson.KeyIs(key, "annotations"):
			s.Annotations = ListPage[Annotation]{}
			return ScanAnnotations(v, annotations, &s.Annotations)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// scanDescriptors reads an array of descriptors: every size, the Window in
// full (annotations: those in keep only), and with idx the platforms.
func scanDescriptors(v []byte, w Window, out *ListPage[Descriptor], idx *Scan, keep []string) error {
	if rawjson.IsNull(v) {
		return nil
	}
	out.Off = w.Off
	return rawjson.Elements(v, func(e []byte) error {
		i := out.Count
		out.Count++
		var size int64
		var plat []byte
		if w.has(i) {
			d, err := ReadDescriptor(e, keep)
			if err != nil {
				return err
			}
			out.Items = append(out.Items, d)
			size = d.Size
		} else {
			err := rawjson.Members(e, func(k, v []byte) error {
				switch {
				case rawjson.KeyIs(k, "size"):
					n, ok := rawjson.ParseInt(v)
					if !ok {
						return rawjson.ErrShape
					}
					size = n
				case idx != nil && rawjson.KeyIs(k, "platform"):
					plat = v
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		out.Total += size
		out.Largest = max(out.Largest, size)
		if idx != nil {
			if w.has(i) {
				idx.addPlatform(out.Items[len(out.Items)-1].Platform.String())
			} else if plat != nil && !rawjson.IsNull(plat) {
				if err := idx.addRawPlatform(plat); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

func (s *Scan) addPlatform(p string) {
	if p == "" || p == "unknown/unknown" || slices.Contains(s.Platforms, p) {
		return
	}
	if len(s.Platforms) >= maxPlatforms {
		s.MorePlatforms = true
		return
	}
	s.Platforms = append(s.Platforms, p)
}

// addRawPlatform adds a platform object (JSON) as addPlatform does,
// allocating only for a new platform.
func (s *Scan) addRawPlatform(v []byte) error {
	var os, arch, variant []byte
	var slow bool
	err := rawjson.Members(v, func(k, val []byte) error {
		var dst *[]byte
		switch {
		case rawjson.KeyIs(k, "os"):
			dst = &os
		case rawjson.KeyIs(k, "architecture"):
			dst = &arch
		case rawjson.KeyIs(k, "variant"):
			dst = &variant
		default:
			return nil
		}
		if val[0] != '"' {
			return rawjson.ErrShape
		}
		if bytes.IndexByte(val, '\\') >= 0 {
			slow = true
		}
		*dst = val[1 : len(val)-1]
		return nil
	})
	if err != nil {
		return err
	}
	if slow {
		var p Platform
		if err := json.Unmarshal(v, &p); err != nil {
			return err
		}
		s.addPlatform(p.String())
		return nil
	}
	if len(os) == 0 && len(arch) == 0 {
		return nil
	}
	var buf [128]byte
	b := append(append(append(buf[:0], os...), '/'), arch...)
	if len(variant) > 0 {
		b = append(append(b, '/'), variant...)
	}
	if string(b) == "unknown/unknown" || slices.ContainsFunc(s.Platforms, func(p string) bool { return p == string(b) }) {
		return nil
	}
	s.addPlatform(string(b))
	return nil
}

// ScanAnnotations reads an object of strings, keeping the Window.
func ScanAnnotations(v []byte, w Window, out *ListPage[Annotation]) error {
	if rawjson.IsNull(v) {
		return nil
	}
	out.Off = w.Off
	return rawjson.Members(v, func(k, val []byte) error {
		if val[0] != '"' {
			return rawjson.ErrShape
		}
		if w.has(out.Count) {
			var a Annotation
			if err := json.Unmarshal(k, &a.Key); err != nil {
				return err
			}
			if err := json.Unmarshal(val, &a.Value); err != nil {
				return err
			}
			out.Items = append(out.Items, a)
		}
		out.Count++
		return nil
	})
}

// Platform is the platform of an index entry, as far as berth reads it.
type Platform struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Variant      string `json:"variant,omitempty"`
}

// String is os/architecture[/variant], or "" for no platform.
func (p *Platform) String() string {
	if p == nil || p.OS == "" && p.Architecture == "" {
		return ""
	}
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// ReadDescriptor reads a descriptor (JSON) as json.Unmarshal would, but
// keeps only the annotations named in keep (a descriptor's annotations may
// be megabytes) and reads the platform too; urls are not read. null is the
// zero Descriptor.
func ReadDescriptor(b []byte, keep []string) (Descriptor, error) {
	var d Descriptor
	if rawjson.IsNull(b) {
		return d, nil
	}
	err := rawjson.Members(b, func(k, v []byte) error {
		switch {
		case rawjson.KeyIs(k, "mediaType"):
			return readString(v, &d.MediaType)
		case rawjson.KeyIs(k, "digest"):
			s := string(d.Digest)
			err := readString(v, &s)
			d.Digest = digest.Digest(s)
			return err
		case rawjson.KeyIs(k, "size"):
			if n, ok := rawjson.ParseInt(v); ok {
				d.Size = n
				return nil
			}
			return json.Unmarshal(v, &d.Size)
		case rawjson.KeyIs(k, "artifactType"):
			return readString(v, &d.ArtifactType)
		case rawjson.KeyIs(k, "platform"):
			return json.Unmarshal(v, &d.Platform)
		case rawjson.KeyIs(k, "annotations"):
			return pickAnnotations(v, keep, &d.Annotations)
		}
		return nil
	})
	if err != nil {
		return Descriptor{}, err
	}
	return d, nil
}

// readDescriptorPtr is ReadDescriptor into a pointer: nil for null.
func readDescriptorPtr(b []byte, keep []string) (*Descriptor, error) {
	if rawjson.IsNull(b) {
		return nil, nil
	}
	d, err := ReadDescriptor(b, keep)
	if err != nil {
		return nil, err
	}
	return &d, nil
}

// pickAnnotations adds the annotations of the object v named in keep to m.
func pickAnnotations(v []byte, keep []string, m *map[string]string) error {
	if rawjson.IsNull(v) {
		return nil
	}
	return rawjson.Members(v, func(k, v []byte) error {
		for _, name := range keep {
			if rawjson.KeyExact(k, name) {
				var s string
				if err := json.Unmarshal(v, &s); err != nil {
					return err
				}
				if *m == nil {
					*m = map[string]string{}
				}
				(*m)[name] = s
			}
		}
		return nil
	})
}

// readString is json.Unmarshal(v, dst), without its cost for a plain string.
func readString(v []byte, dst *string) error {
	if len(v) >= 2 && v[0] == '"' && bytes.IndexByte(v, '\\') < 0 && utf8.Valid(v) {
		*dst = string(v[1 : len(v)-1])
		return nil
	}
	return json.Unmarshal(v, dst)
}
