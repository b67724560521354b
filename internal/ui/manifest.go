package ui

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/oci"
	"github.com/berth-registry/berth/internal/registry"
	"github.com/berth-registry/berth/internal/storage"
)

// Manifest kinds.
const (
	kindImage    = "image"
	kindIndex    = "index"
	kindArtifact = "artifact"
)

// maxConfigSize bounds an image configuration the UI reads.
const maxConfigSize = 1 << 20

// imageConfig is the part of an image configuration the UI shows.
// Environment variables are deliberately left out: they often hold secrets.
type imageConfig struct {
	Created      *time.Time `json:"created"`
	OS           string     `json:"os"`
	Architecture string     `json:"architecture"`
	Variant      string     `json:"variant"`
	Config       struct {
		Entrypoint []string  `json:"Entrypoint"`
		Cmd        []string  `json:"Cmd"`
		WorkingDir string    `json:"WorkingDir"`
		User       string    `json:"User"`
		Labels     labelList `json:"Labels"`
	} `json:"config"`
	History counted `json:"history"`
}

var imageConfigTypes = []string{oci.MediaTypeImageConfig, oci.MediaTypeDockerConfig}

// summary is what a list row shows about a manifest.
type summary struct {
	MediaType    string
	Kind         string
	ArtifactType string
	Size         int64 // manifest, config and layers (image, artifact); manifest and children (index)
	Platforms    []string
	Subject      digest.Digest
}

func kindOf(mediaType string, sc *oci.Scan) string {
	switch {
	case sc.IsIndex || strings.Contains(mediaType, "index") || strings.Contains(mediaType, "manifest.list"):
		return kindIndex
	case sc.ArtifactType != "" || sc.Config != nil && !slices.Contains(imageConfigTypes, sc.Config.MediaType):
		return kindArtifact
	default:
		return kindImage
	}
}

// summarize describes a manifest; for an image it reads the configuration
// (bounded) for the platform.
func (u *UI) summarize(ctx context.Context, repo string, m storage.Manifest) summary {
	sc, err := oci.ScanManifest(m.Data, oci.Window{}, oci.Window{}, oci.Window{}, shownAnnotations)
	s := summaryOf(m, sc, err)
	if s.Kind == kindImage && sc.Config != nil {
		if cfg, err := u.readConfig(ctx, repo, sc.Config); err == nil {
			s.setPlatform(cfg)
		}
	}
	return s
}

// summaryOf describes a scanned manifest (err: the scan's).
func summaryOf(m storage.Manifest, sc *oci.Scan, err error) summary {
	s := summary{MediaType: m.MediaType, Size: int64(len(m.Data))}
	if err != nil {
		s.Kind = "unreadable"
		return s
	}
	mt := sc.MediaType
	if mt == "" {
		mt = m.MediaType
	}
	s.Kind = kindOf(mt, sc)
	s.ArtifactType = sc.ArtifactType
	if sc.Subject != nil {
		s.Subject = sc.Subject.Digest
	}
	if sc.Config != nil {
		s.Size += sc.Config.Size
		if s.Kind == kindArtifact && s.ArtifactType == "" {
			s.ArtifactType = sc.Config.MediaType
		}
	}
	s.Size += sc.Layers.Total + sc.Children.Total
	s.Platforms = slices.Clone(sc.Platforms)
	if sc.MorePlatforms {
		s.Platforms = append(s.Platforms, "…")
	}
	return s
}

// setPlatform names an image's platform from its configuration.
func (s *summary) setPlatform(cfg *imageConfig) {
	p := &oci.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}
	if ps := p.String(); ps != "" {
		s.Platforms = []string{ps}
	}
}

func (u *UI) readConfig(ctx context.Context, repo string, d *oci.Descriptor) (*imageConfig, error) {
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
	summary
	Config       *imageConfig
	ConfigErr    string
	Layers       []layerRow
	LayerPager   pager
	Children     []oci.Descriptor
	ChildPager   pager
	Annotations  []oci.Annotation
	AnnPager     pager
	Referrers    []referrerGroup
	JSON         template.HTML
	JSONCut      bool   // JSON is the beginning of the manifest only
	RawURL       string // the manifest's bytes as a download
	ManifestSize int64
	Pull         string
	OrasPull     string
	CanDelete    bool
	CanPullRaw   bool
}

type layerRow struct {
	oci.Descriptor
	Index   int
	Title   string
	Percent float64 // of the largest layer, for the bar chart
}

type referrerGroup struct {
	Label string
	Count int              // referrers in the group
	Items []oci.Descriptor // the first manifestListPage of them
}

// pager describes one page of a list on the manifest page.
type pager struct {
	Noun                    string
	Count, From, To         int // rows From..To (1-based) of Count are shown
	Page, Pages             int
	First, Prev, Next, Last string // links, "" where there is none
	Past                    bool   // the page asked for is past the end
}

// Paged lists of the manifest page: their query parameters (1-based page
// numbers).
var manifestListParams = []string{"layers", "children", "annotations"}

// listPages reads the page number of each list from the query.
func listPages(r *http.Request) map[string]int {
	q := r.URL.Query()
	out := map[string]int{}
	for _, k := range manifestListParams {
		n, err := strconv.Atoi(q.Get(k))
		if err != nil || n < 1 || n > 1<<20 {
			n = 1
		}
		out[k] = n
	}
	return out
}

func pageWindow(page int) oci.Window {
	return oci.Window{Off: (page - 1) * manifestListPage, N: manifestListPage}
}

// newPager describes page (1-based) of a list of count items whose links
// are base with the list's parameter k set.
func newPager(noun string, count, page int, base string, q url.Values, k string) pager {
	pg := pager{Noun: noun, Count: count, Page: page, Pages: max((count+manifestListPage-1)/manifestListPage, 1)}
	link := func(n int) string {
		v := url.Values{}
		for _, o := range manifestListParams {
			if o != k && q.Get(o) != "" {
				v.Set(o, q.Get(o))
			}
		}
		if n > 1 {
			v.Set(k, strconv.Itoa(n))
		}
		if len(v) == 0 {
			return base
		}
		return base + "?" + v.Encode()
	}
	off := (page - 1) * manifestListPage
	if off >= count && count > 0 {
		pg.Past, pg.First = true, link(1)
		return pg
	}
	pg.From, pg.To = off+1, min(off+manifestListPage, count)
	if page > 1 {
		pg.First, pg.Prev = link(1), link(page-1)
	}
	if page < pg.Pages {
		pg.Next, pg.Last = link(page+1), link(pg.Pages)
	}
	return pg
}

// manifest renders one manifest, by digest or by tag.
func (u *UI) manifest(w http.ResponseWriter, r *http.Request, rq *request, repo, ref string) {
	ctx := r.Context()
	var (
		d   digest.Digest
		tag string
	)
	if strings.Contains(ref, ":") {
		g, err := oci.ParseDigest(digest.Digest(ref))
		if err != nil {
			u.fail(w, r, rq, http.StatusNotFound, "Not found", "That is not a valid digest.")
			return
		}
		d = g.D
	} else if oci.ValidTag(ref) {
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
	if r.URL.Query().Get("download") == "1" {
		u.rawManifest(w, r, m)
		return
	}
	pages := listPages(r)
	sc, err := oci.ScanManifest(m.Data, pageWindow(pages["layers"]), pageWindow(pages["children"]), pageWindow(pages["annotations"]), shownAnnotations)
	p := manifestPage{Repo: repo, Host: r.Host, Tag: tag, Digest: d, summary: summaryOf(m, sc, err),
		CanDelete:  u.can(ctx, rq, registry.ActionDeleteManifest, repo, string(d)),
		CanPullRaw: u.can(ctx, rq, registry.ActionGetBlob, repo, string(d))}
	p.Pull = "docker pull " + r.Host + "/" + repo + "@" + string(d)
	p.OrasPull = "oras pull " + r.Host + "/" + repo + "@" + string(d)
	here := manifestURL(repo, ref)
	p.RawURL, p.ManifestSize = here+"?download=1", int64(len(m.Data))
	if err == nil {
		q := r.URL.Query()
		for i, l := range sc.Layers.Items {
			row := layerRow{Descriptor: l, Index: sc.Layers.Off + i, Title: l.Annotations["org.opencontainers.image.title"]}
			if sc.Layers.Largest > 0 {
				row.Percent = max(float64(l.Size)*100/float64(sc.Layers.Largest), 0.5)
			}
			p.Layers = append(p.Layers, row)
		}
		noun := "layers"
		if p.Kind == kindArtifact {
			noun = "files"
		}
		p.LayerPager = newPager(noun, sc.Layers.Count, pages["layers"], here, q, "layers")
		p.Children = sc.Children.Items
		p.ChildPager = newPager("manifests", sc.Children.Count, pages["children"], here, q, "children")
		p.Annotations = sc.Annotations.Items
		if sc.Annotations.Count <= manifestListPage {
			slices.SortFunc(p.Annotations, func(a, b oci.Annotation) int { return strings.Compare(a.Key, b.Key) })
		}
		p.AnnPager = newPager("annotations", sc.Annotations.Count, pages["annotations"], here, q, "annotations")
		if p.Kind == kindImage && sc.Config != nil {
			cfg, err := u.readConfig(ctx, repo, sc.Config)
			if err != nil {
				p.ConfigErr = "The image configuration could not be read."
			} else {
				p.Config = cfg
				p.setPlatform(cfg)
			}
		}
	}
	p.Referrers, err = u.referrers(ctx, repo, d)
	if err != nil && !isUnknown(err) {
		u.storeErr(w, r, rq, "the referrers of "+shortDigest(d), err)
		return
	}
	p.JSON, p.JSONCut = highlightJSON(m.Data, maxRawHTML)
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

// maxReferrerGroups bounds the groups of a manifest page's referrers: the
// referrers of further artifact types are counted under otherTypes.
const (
	maxReferrerGroups = 32
	otherTypes        = "Other types"
	// maxLabel bounds an artifact type as the UI keeps it (a media type is
	// at most 255 characters; a longer one is cut).
	maxLabel = 512
)

// referrers groups the referrers of d in repo by kind, each group in digest
// order and cut at manifestListPage items, counting them all. The store
// hands out one stored descriptor at a time and only the shown ones are
// kept (with only the shown annotations), so memory is bounded whatever the
// number and size of the referrers.
func (u *UI) referrers(ctx context.Context, repo string, d digest.Digest) ([]referrerGroup, error) {
	groups := map[string]*referrerGroup{}
	var other []string
	err := u.o.Store.WalkReferrers(ctx, repo, d, "", func(ref digest.Digest, b []byte) (bool, error) {
		rd, err := oci.ReadDescriptor(b, shownAnnotations)
		if err != nil {
			return false, fmt.Errorf("referrer %s of %s: %w", ref, d, err)
		}
		rd.MediaType, rd.ArtifactType = cut(rd.MediaType, maxLabel), cut(rd.ArtifactType, maxLabel)
		label := referrerKind(rd.ArtifactType)
		if label == "" {
			label = rd.ArtifactType
			if label == "" {
				label = "Other"
			}
			if _, ok := groups[label]; !ok {
				if len(groups) >= maxReferrerGroups {
					label = otherTypes
				} else {
					other = append(other, label)
				}
			}
		}
		g := groups[label]
		if g == nil {
			g = &referrerGroup{Label: label}
			groups[label] = g
		}
		g.Count++
		if len(g.Items) < manifestListPage {
			g.Items = append(g.Items, rd)
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	var out []referrerGroup
	for _, k := range referrerKinds {
		if g := groups[k.label]; g != nil {
			out = append(out, *g)
		}
	}
	slices.Sort(other)
	if groups[otherTypes] != nil {
		other = append(other, otherTypes)
	}
	for _, l := range other {
		out = append(out, *groups[l])
	}
	for _, g := range out {
		slices.SortFunc(g.Items, func(a, b oci.Descriptor) int { return strings.Compare(string(a.Digest), string(b.Digest)) })
	}
	return out, nil
}

// referrerKind is the label of the kind an artifact type belongs to, or "".
func referrerKind(artifactType string) string {
	at := strings.ToLower(artifactType)
	for _, k := range referrerKinds {
		for _, m := range k.match {
			if strings.Contains(at, m) {
				return k.label
			}
		}
	}
	return ""
}

// cut returns s, or its first n bytes and an ellipsis if it is longer.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

// rawManifest sends a manifest's bytes as a download (like a blob: an
// attachment of type application/octet-stream, so nothing renders in the
// page's origin).
func (u *UI) rawManifest(w http.ResponseWriter, r *http.Request, m storage.Manifest) {
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", m.Digest.Encoded()+".json"))
	h.Set("Content-Length", strconv.Itoa(len(m.Data)))
	h.Set("Docker-Content-Digest", string(m.Digest))
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(m.Data)
	}
}

// blob streams a blob as a download, under the same pull decision as
// GET /v2/<name>/blobs/<digest>. It is always served as an attachment of
// type application/octet-stream, so no stored content renders in the page's
// origin.
func (u *UI) blob(w http.ResponseWriter, r *http.Request, rq *request, repo, ds string) {
	ctx := r.Context()
	g, err := oci.ParseDigest(digest.Digest(ds))
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
