package ui

import (
	"net/http"
	"net/url"

	"github.com/opencontainers/go-digest"

	"github.com/berth-registry/berth/internal/oci"
	"github.com/berth-registry/berth/internal/registry"
)

// delete removes a tag (form field tag) or a manifest (form field digest)
// when the gate allows the equivalent DELETE /v2/<name>/manifests/<reference>.
func (u *UI) delete(w http.ResponseWriter, r *http.Request, rq *request, repo string) {
	ctx := r.Context()
	tag, ds := r.PostForm.Get("tag"), r.PostForm.Get("digest")
	var ref, what string
	switch {
	case tag != "" && ds == "" && oci.ValidTag(tag):
		ref, what = tag, "tag "+tag
	case ds != "" && tag == "":
		g, err := oci.ParseDigest(digest.Digest(ds))
		if err != nil {
			u.fail(w, r, rq, http.StatusBadRequest, "Bad request", "That is not a valid digest.")
			return
		}
		ref, what = string(g.D), "manifest "+shortDigest(g.D)
	default:
		u.fail(w, r, rq, http.StatusBadRequest, "Bad request", "Name one tag or one manifest digest to delete.")
		return
	}
	if !u.can(ctx, rq, registry.ActionDeleteManifest, repo, ref) {
		u.denied(w, r, rq, "delete from", repo)
		return
	}
	var err error
	if tag != "" {
		err = u.o.Store.DeleteTag(ctx, repo, tag)
	} else {
		err = u.o.Store.DeleteManifest(ctx, repo, digest.Digest(ref))
	}
	if err != nil {
		u.storeErr(w, r, rq, what+" in "+repo, err)
		return
	}
	u.log.InfoContext(ctx, "ui: deleted", "identity", rq.id.ID, "repository", repo, "reference", ref)
	u.stats.forget(repo)
	u.tagMaps.forget(repo)
	back := r.PostForm.Get("back")
	if back != "manifests" {
		back = ""
	}
	dest := repoURL(repo) + "?" + url.Values{"deleted": {what}}.Encode()
	if back == "manifests" {
		dest += "&view=manifests"
	}
	http.Redirect(w, r, dest, http.StatusSeeOther)
}
