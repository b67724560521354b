package ui

import (
	"cmp"
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"

	"github.com/berth-registry/berth/internal/oci"
	"github.com/berth-registry/berth/internal/registry"
	"github.com/berth-registry/berth/internal/storage"
)

type repoPage struct {
	Repo         string
	Host         string
	View         string // "tags" or "manifests"
	Sort         string // tags: "name" or "date"
	UntaggedOnly bool
	Info         storage.RepositoryInfo
	Tags         []tagRow
	Manifests    []manifestRow
	Next         string // URL of the next page, "" on the last
	First        string // URL of the first page, "" on it
	Partial      bool
	CanDelete    bool
	Pull         string // a pull command for the first tag shown
	Deleted      string // what the previous request deleted
}

type tagRow struct {
	Name    string
	Updated time.Time
	Digest  digest.Digest
	summary
	Pull      string
	CanDelete bool
	Missing   bool // deleted while the page was built
}

type manifestRow struct {
	Digest  digest.Digest
	Updated time.Time
	Tags    []string
	summary
	CanDelete bool
	Missing   bool
}

// repository renders a repository's tags (by name: a cursor page of the tag
// listing; by date: the listing with times, sorted, one page summarised) or
// its manifests (?view=manifests, optionally only the untagged ones).
func (u *UI) repository(w http.ResponseWriter, r *http.Request, rq *request, repo string) {
	ctx := r.Context()
	if !u.canPull(ctx, rq, repo) {
		u.denied(w, r, rq, "pull from", repo)
		return
	}
	q := r.URL.Query()
	p := repoPage{Repo: repo, Host: r.Host, View: "tags", Sort: "name",
		CanDelete: u.can(ctx, rq, registry.ActionDeleteManifest, repo, "")}
	info, err := u.stats.get(ctx, repo, func(ctx context.Context) (storage.RepositoryInfo, error) {
		return u.o.Store.StatRepository(ctx, repo)
	})
	if err != nil {
		u.storeErr(w, r, rq, "repository "+repo, err)
		return
	}
	p.Info = info
	if d := q.Get("deleted"); deletedNote(d) {
		p.Deleted = d // only what delete writes: a link cannot put other words on the page
	}
	if q.Get("view") == "manifests" {
		p.View = "manifests"
		err = u.manifestsView(ctx, r, rq, &p)
	} else {
		err = u.tagsView(ctx, r, rq, &p)
	}
	if err != nil {
		u.storeErr(w, r, rq, "repository "+repo, err)
		return
	}
	u.render(w, r, rq, http.StatusOK, "repository", repo, []crumb{{Label: repo}}, p)
}

func (u *UI) tagsView(ctx context.Context, r *http.Request, rq *request, p *repoPage) error {
	q := r.URL.Query()
	size := u.pageSize(r)
	base := url.Values{}
	if q.Has("n") {
		base.Set("n", strconv.Itoa(size))
	}
	var infos []storage.TagInfo
	if q.Get("sort") == "date" {
		p.Sort = "date"
		base.Set("sort", "date")
		all, err := u.o.Store.ListTagInfo(ctx, p.Repo, "", -1)
		if err != nil {
			return err
		}
		slices.SortStableFunc(all, func(a, b storage.TagInfo) int {
			return cmp.Or(b.Updated.Compare(a.Updated), cmp.Compare(a.Name, b.Name))
		})
		page, _ := strconv.Atoi(q.Get("page"))
		page = max(page, 0)
		start := min(page*size, len(all))
		infos = all[start:min(start+size, len(all))]
		if start+size < len(all) {
			next := cloneValues(base)
			next.Set("page", strconv.Itoa(page+1))
			p.Next = repoURL(p.Repo) + "?" + next.Encode()
		}
		if page > 0 {
			p.First = repoURL(p.Repo) + "?" + base.Encode()
		}
		if len(all) > 0 {
			p.Pull = "docker pull " + p.Host + "/" + p.Repo + ":" + all[0].Name
		}
	} else {
		after := q.Get("after")
		if after != "" && !oci.ValidTag(after) {
			after = ""
		}
		got, err := u.o.Store.ListTagInfo(ctx, p.Repo, after, size+1)
		if err != nil {
			return err
		}
		if len(got) > size {
			got = got[:size]
			next := cloneValues(base)
			next.Set("after", got[size-1].Name)
			p.Next = repoURL(p.Repo) + "?" + next.Encode()
		}
		if after != "" {
			p.First = repoURL(p.Repo) + "?" + base.Encode()
		}
		infos = got
		if len(got) > 0 {
			p.Pull = "docker pull " + p.Host + "/" + p.Repo + ":" + got[0].Name
		}
	}
	rows := make([]tagRow, len(infos))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, ti := range infos {
		rows[i] = tagRow{Name: ti.Name, Updated: ti.Updated}
		g.Go(func() error {
			row := &rows[i]
			d, err := u.o.Store.ResolveTag(gctx, p.Repo, ti.Name)
			if err == nil {
				row.Digest = d
				var m storage.Manifest
				if m, err = u.o.Store.GetManifest(gctx, p.Repo, d); err == nil {
					row.summary = u.summarize(gctx, p.Repo, m)
				}
			}
			if err != nil {
				if isUnknown(err) {
					row.Missing = true
					return nil
				}
				return err
			}
			cmd := "docker pull "
			if row.Kind == kindArtifact {
				cmd = "oras pull "
			}
			row.Pull = cmd + p.Host + "/" + p.Repo + ":" + ti.Name
			row.CanDelete = u.can(gctx, rq, registry.ActionDeleteManifest, p.Repo, ti.Name)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	p.Tags = rows
	return nil
}

func (u *UI) manifestsView(ctx context.Context, r *http.Request, rq *request, p *repoPage) error {
	q := r.URL.Query()
	size := u.pageSize(r)
	p.UntaggedOnly = q.Get("untagged") == "1"
	base := url.Values{"view": {"manifests"}}
	if p.UntaggedOnly {
		base.Set("untagged", "1")
	}
	if q.Has("n") {
		base.Set("n", strconv.Itoa(size))
	}
	tagMap, err := u.tagMaps.tags(ctx, p.Repo)
	if err != nil {
		return err
	}
	after := digest.Digest(q.Get("after"))
	if after != "" {
		if _, err := oci.ParseDigest(after); err != nil {
			after = ""
		}
	}
	if after != "" {
		p.First = repoURL(p.Repo) + "?" + base.Encode()
	}
	var picked []storage.ManifestInfo
	cursor, scanned, batch := after, 0, size+1
	for len(picked) <= size && scanned < scanBudget {
		got, err := u.o.Store.ListManifests(ctx, p.Repo, cursor, batch)
		if err != nil {
			return err
		}
		for _, mi := range got {
			cursor = mi.Digest
			scanned++
			if !p.UntaggedOnly || len(tagMap[mi.Digest]) == 0 {
				picked = append(picked, mi)
				if len(picked) > size {
					break
				}
			}
		}
		if len(got) < batch {
			break
		}
		batch = min(batch*4, 1000)
	}
	next := cloneValues(base)
	switch {
	case len(picked) > size:
		picked = picked[:size]
		next.Set("after", string(picked[size-1].Digest))
		p.Next = repoURL(p.Repo) + "?" + next.Encode()
	case scanned >= scanBudget:
		next.Set("after", string(cursor))
		p.Next, p.Partial = repoURL(p.Repo)+"?"+next.Encode(), true
	}
	rows := make([]manifestRow, len(picked))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, mi := range picked {
		rows[i] = manifestRow{Digest: mi.Digest, Updated: mi.Updated, Tags: tagMap[mi.Digest]}
		g.Go(func() error {
			m, err := u.o.Store.GetManifest(gctx, p.Repo, mi.Digest)
			if err != nil {
				if isUnknown(err) {
					rows[i].Missing = true
					return nil
				}
				return err
			}
			rows[i].summary = u.summarize(gctx, p.Repo, m)
			rows[i].CanDelete = u.can(gctx, rq, registry.ActionDeleteManifest, p.Repo, string(mi.Digest))
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	p.Manifests = rows
	return nil
}

// deletedNote reports whether d is a note delete redirects with: "tag
// <tag>" or "manifest <the first 12 hex digits of its digest>".
func deletedNote(d string) bool {
	if tag, ok := strings.CutPrefix(d, "tag "); ok {
		return oci.ValidTag(tag)
	}
	if hex, ok := strings.CutPrefix(d, "manifest "); ok {
		return len(hex) == 12 && oci.IsLowerHex(hex)
	}
	return false
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}
