package ui

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/registry"
	"github.com/berth-registry/berth/internal/storage"
	"github.com/berth-registry/berth/internal/storage/layout"
)

// Manifest kinds.
const (
	kindImage    = "image"
	kindIndex    = "index"
	kindArtifact = "artifact"
)

// maxConfigSize bounds an image configuration the UI reads.
const maxConfigSize = 1 << 20

// descriptor and rawManifest are the union of the OCI / Docker image
// manifest and index shapes, as far as the UI shows them.
type descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       digest.Digest     `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	Platform     *platform         `json:"platform,omitempty"`
}

type platform struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Variant      string `json:"variant,omitempty"`
}

func (p *platform) String() string {
	if p == nil || p.OS == "" && p.Architecture == "" {
		return ""
	}
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

type rawManifest struct {
	MediaType    string            `json:"mediaType"`
	ArtifactType string            `json:"artifactType"`
	Config       *descriptor       `json:"config"`
	Layers       []descriptor      `json:"layers"`
	Manifests    []descriptor      `json:"manifests"`
	Subject      *descriptor       `json:"subject"`
	Annotations  map[string]string `json:"annotations"`
}

// imageConfig is the part of an image configuration the UI shows.
// Environment variables are deliberately left out: they often hold secrets.
type imageConfig struct {
	Created      *time.Time `json:"created"`
	OS           string     `json:"os"`
	Architecture string     `json:"architecture"`
	Variant      string     `json:"variant"`
	Config       struct {
		Entrypoint []string          `json:"Entrypoint"`
		Cmd        []string          `json:"Cmd"`
		WorkingDir string            `json:"WorkingDir"`
		User       string            `json:"User"`
		Labels     map[string]string `json:"Labels"`
	} `json:"config"`
	History []json.RawMessage `json:"history"`
}

var imageConfigTypes = []string{
	"application/vnd.oci.image.config.v1+json",
	"application/vnd.docker.container.image.v1+json",
}

// summary is what a list row shows about a manifest.
type summary struct {
	MediaType    string
	Kind         string
	ArtifactType string
	Size         int64 // manifest, config and layers (image, artifact); manifest and children (index)
	Platforms    []string
	Subject      digest.Digest
}

func parseRaw(m storage.Manifest) (*rawManifest, error) {
	var raw rawManifest
	if err := json.Unmarshal(m.Data, &raw); err != nil {
		return nil, err
	}
	if raw.MediaType == "" {
		raw.MediaType = m.MediaType
	}
	return &raw, nil
}

func kindOf(raw *rawManifest) string {
	switch {
	case raw.Manifests != nil || strings.Contains(raw.MediaType, "index") || strings.Contains(raw.MediaType, "manifest.list"):
		return kindIndex
	case raw.ArtifactType != "" || raw.Config != nil && !slices.Contains(imageConfigTypes, raw.Config.MediaType):
		return kindArtifact
	default:
		return kindImage
	}
}

// summarize describes a manifest; for an image it reads the configuration
// (bounded) for the platform.
func (u *UI) summarize(ctx context.Context, repo string, m storage.Manifest) summary {
	s := summary{MediaType: m.MediaType, Size: int64(len(m.Data))}
	raw, err := parseRaw(m)
	if err != nil {
		s.Kind = "unreadable"
		return s
	}
	s.Kind = kindOf(raw)
	s.ArtifactType = raw.ArtifactType
	if raw.Subject != nil {
		s.Subject = raw.Subject.Digest
	}
	if raw.Config != nil {
		s.Size += raw.Config.Size
		if s.Kind == kindArtifact && s.ArtifactType == "" {
			s.ArtifactType = raw.Config.MediaType
		}
	}
	for _, l := range raw.Layers {
		s.Size += l.Size
	}
	for _, c := range raw.Manifests {
		s.Size += c.Size
		if p := c.Platform.String(); p != "" && p != "unknown/unknown" && !slices.Contains(s.Platforms, p) {
			s.Platforms = append(s.Platforms, p)
		}
	}
	if s.Kind == kindImage && raw.Config != nil {
		if cfg, err := u.readConfig(ctx, repo, raw.Config); err == nil {
			p := &platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}
			if ps := p.String(); ps != "" {
				s.Platforms = []string{ps}
			}
		}
	}
	return s
}

func (u *UI) readConfig(ctx context.Context, repo string, d *descriptor) (*imageConfig, error) {
	if d.Size > maxConfigSize || !slices.Contains(imageConfigTypes, d.MediaType) {
		return nil, errors.New("ui: not an image configuration")
	}
	rc, err := u.o.Store.OpenBlob(ctx, repo, d.Digest, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxConfigSize))
	if err != nil {
		return nil, err
	}
	var cfg imageConfig
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, err
	}
	return &cfg, nil
}

func isUnknown(err error) bool {
	return errors.Is(err, storage.ErrManifestUnknown) || errors.Is(err, storage.ErrTagUnknown) ||
		errors.Is(err, storage.ErrBlobUnknown) || errors.Is(err, storage.ErrRepositoryUnknown)
}

type manifestPage struct {
	Repo   string
	Host   string
	Tag    string // when reached by a tag
	Digest digest.Digest
	Raw    *rawManifest
	summary
	Config     *imageConfig
	ConfigErr  string
	Layers     []layerRow
	Children   []descriptor
	Referrers  []referrerGroup
	JSON       template.HTML
	Pull       string
	OrasPull   string
	CanDelete  bool
	CanPullRaw bool
}

type layerRow struct {
	descriptor
	Title   string
	Percent float64 // of the largest layer, for the bar chart
}

type referrerGroup struct {
	Label string
	Items []descriptor
}

// manifest renders one manifest, by digest or by tag.
func (u *UI) manifest(w http.ResponseWriter, r *http.Request, rq *request, repo, ref string) {
	ctx := r.Context()
	var (
		d   digest.Digest
		tag string
	)
	if strings.Contains(ref, ":") {
		g, err := layout.ParseDigest(digest.Digest(ref))
		if err != nil {
			u.fail(w, r, rq, http.StatusNotFound, "Not found", "That is not a valid digest.")
			return
		}
		d = g.D
	} else if layout.ValidTag(ref) {
		tag = ref
	} else {
		u.fail(w, r, rq, http.StatusNotFound, "Not found", "That is not a valid tag or digest.")
		return
	}
	if !u.can(ctx, rq, registry.ActionGetManifest, repo, ref) {
		u.denied(w, r, rq, "pull from", repo)
		return
	}
	if tag != "" {
		var err error
		if d, err = u.o.Store.ResolveTag(ctx, repo, tag); err != nil {
			u.storeErr(w, r, rq, "tag "+tag+" in "+repo, err)
			return
		}
	}
	m, err := u.o.Store.GetManifest(ctx, repo, d)
	if err != nil {
		u.storeErr(w, r, rq, "manifest "+shortDigest(d)+" in "+repo, err)
		return
	}
	p := manifestPage{Repo: repo, Host: r.Host, Tag: tag, Digest: d, summary: u.summarize(ctx, repo, m),
		CanDelete:  u.can(ctx, rq, registry.ActionDeleteManifest, repo, string(d)),
		CanPullRaw: u.can(ctx, rq, registry.ActionGetBlob, repo, string(d))}
	p.Pull = "docker pull " + r.Host + "/" + repo + "@" + string(d)
	p.OrasPull = "oras pull " + r.Host + "/" + repo + "@" + string(d)
	if raw, err := parseRaw(m); err == nil {
		p.Raw = raw
		p.Children = raw.Manifests
		var largest int64
		for _, l := range raw.Layers {
			largest = max(largest, l.Size)
		}
		for _, l := range raw.Layers {
			row := layerRow{descriptor: l, Title: l.Annotations["org.opencontainers.image.title"]}
			if largest > 0 {
				row.Percent = max(float64(l.Size)*100/float64(largest), 0.5)
			}
			p.Layers = append(p.Layers, row)
		}
		if p.Kind == kindImage && raw.Config != nil {
			cfg, err := u.readConfig(ctx, repo, raw.Config)
			if err != nil {
				p.ConfigErr = "The image configuration could not be read."
			} else {
				p.Config = cfg
			}
		}
	}
	refs, err := u.o.Store.ListReferrers(ctx, repo, d)
	if err != nil && !isUnknown(err) {
		u.storeErr(w, r, rq, "the referrers of "+shortDigest(d), err)
		return
	}
	p.Referrers = groupReferrers(refs)
	p.JSON = highlightJSON(m.Data)
	title := repo + "@" + shortDigest(d)
	if tag != "" {
		title = repo + ":" + tag
	}
	crumbs := []crumb{{Label: repo, URL: repoURL(repo)}, {Label: title[len(repo):]}}
	u.render(w, r, rq, http.StatusOK, "manifest", title, crumbs, p)
}

// Referrer groups, in display order.
var referrerKinds = []struct {
	label string
	match []string
}{
	{"Signatures", []string{"signature", "cosign.artifact.sig", "notary", "sigstore.bundle"}},
	{"SBOMs", []string{"spdx", "cyclonedx", "sbom", "syft"}},
	{"Attestations", []string{"in-toto", "intoto", "attestation", "provenance", "dsse", "slsa", "vex"}},
}

func groupReferrers(refs []storage.Descriptor) []referrerGroup {
	groups := map[string][]descriptor{}
	var other []string
	for _, rd := range refs {
		d := descriptor{MediaType: rd.MediaType, Digest: rd.Digest, Size: rd.Size, ArtifactType: rd.ArtifactType, Annotations: rd.Annotations}
		at := strings.ToLower(rd.ArtifactType)
		label := ""
		for _, k := range referrerKinds {
			for _, m := range k.match {
				if strings.Contains(at, m) {
					label = k.label
					break
				}
			}
			if label != "" {
				break
			}
		}
		if label == "" {
			label = rd.ArtifactType
			if label == "" {
				label = "Other"
			}
			if !slices.Contains(other, label) {
				other = append(other, label)
			}
		}
		groups[label] = append(groups[label], d)
	}
	var out []referrerGroup
	for _, k := range referrerKinds {
		if items := groups[k.label]; len(items) > 0 {
			out = append(out, referrerGroup{Label: k.label, Items: items})
		}
	}
	slices.Sort(other)
	for _, l := range other {
		out = append(out, referrerGroup{Label: l, Items: groups[l]})
	}
	for _, g := range out {
		slices.SortFunc(g.Items, func(a, b descriptor) int { return strings.Compare(string(a.Digest), string(b.Digest)) })
	}
	return out
}

// blob streams a blob as a download, under the same pull decision as
// GET /v2/<name>/blobs/<digest>. It is always served as an attachment of
// type application/octet-stream, so no stored content renders in the page's
// origin.
func (u *UI) blob(w http.ResponseWriter, r *http.Request, rq *request, repo, ds string) {
	ctx := r.Context()
	g, err := layout.ParseDigest(digest.Digest(ds))
	if err != nil {
		u.fail(w, r, rq, http.StatusNotFound, "Not found", "That is not a valid digest.")
		return
	}
	if !u.can(ctx, rq, registry.ActionGetBlob, repo, ds) {
		u.denied(w, r, rq, "pull from", repo)
		return
	}
	info, err := u.o.Store.StatBlob(ctx, repo, g.D)
	if err != nil {
		u.storeErr(w, r, rq, "blob "+shortDigest(g.D)+" in "+repo, err)
		return
	}
	name := fileName(r.URL.Query().Get("name"), g.Hex)
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", name))
	h.Set("Content-Length", fmt.Sprint(info.Size))
	h.Set("Docker-Content-Digest", string(g.D))
	h.Del("Content-Security-Policy")
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return
	}
	rc, err := u.o.Store.OpenBlob(ctx, repo, g.D, 0, -1)
	if err != nil {
		u.storeErr(w, r, rq, "blob "+shortDigest(g.D)+" in "+repo, err)
		return
	}
	defer rc.Close()
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, rc); err != nil && ctx.Err() == nil {
		u.log.WarnContext(ctx, "ui: blob download interrupted", "repository", repo, "digest", g.D, "err", err)
	}
}

// fileName keeps the last path element of a title annotation, in a safe
// character set; the digest's hex when nothing is left.
func fileName(name, fallback string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	var b strings.Builder
	for _, c := range name {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._-+ ", c) {
			b.WriteRune(c)
		}
	}
	out := strings.TrimLeft(strings.TrimSpace(b.String()), ".")
	if out == "" || len(out) > 200 {
		return fallback
	}
	return out
}

// highlightJSON pretty-prints JSON and wraps its tokens in spans (classes
// k: key, s: string, n: number, b: true/false/null). Everything is escaped.
func highlightJSON(data []byte) template.HTML {
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, data, "", "  "); err != nil {
		return template.HTML(template.HTMLEscapeString(string(data)))
	}
	src := pretty.Bytes()
	var out strings.Builder
	span := func(class string, tok []byte) {
		out.WriteString(`<span class="j` + class + `">`)
		out.WriteString(template.HTMLEscapeString(string(tok)))
		out.WriteString(`</span>`)
	}
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == '"':
			j := i + 1
			for j < len(src) && src[j] != '"' {
				if src[j] == '\\' {
					j++
				}
				j++
			}
			j = min(j+1, len(src))
			k := j
			for k < len(src) && src[k] == ' ' {
				k++
			}
			class := "s"
			if k < len(src) && src[k] == ':' {
				class = "k"
			}
			span(class, src[i:j])
			i = j
		case c == '-' || c >= '0' && c <= '9':
			j := i
			for j < len(src) && strings.IndexByte("+-0123456789.eE", src[j]) >= 0 {
				j++
			}
			span("n", src[i:j])
			i = j
		case c == 't' || c == 'f' || c == 'n':
			j := i
			for j < len(src) && src[j] >= 'a' && src[j] <= 'z' {
				j++
			}
			span("b", src[i:j])
			i = j
		default:
			out.WriteString(template.HTMLEscapeString(string(c)))
			i++
		}
	}
	return template.HTML(out.String())
}
