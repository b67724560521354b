package registry

import (
	"net/http"
	"strings"

	"github.com/berth-registry/berth/internal/oci"
)

// Route is a request resolved to a typed action before any handler runs: the
// policy layer, metrics and the request log all read it.
type Route struct {
	Action    Action
	Repo      string // repository name ("" for ping and catalog)
	Reference string // tag or digest for manifests; digest for blobs and referrers
	UploadID  string
	// From is the source repository of a mount (?from=), "" otherwise.
	From   string
	Method string
}

// resolve maps method and path to a Route. The repository name is parsed from
// the path tail because names contain '/'. It returns an *Error for paths that
// are not part of the API or carry an invalid name.
func resolve(r *http.Request) (Route, error) {
	// Names, tags and digests never need escaping: an escaped path (such as an
	// encoded slash) is refused before it can be interpreted.
	raw := r.URL.EscapedPath()
	if strings.Contains(raw, "%") {
		return Route{}, errf(CodeNameInvalid, "invalid characters in path")
	}
	p := r.URL.Path
	if !strings.HasPrefix(p, "/v2") {
		return Route{}, notFound()
	}
	p = strings.TrimPrefix(p, "/v2")
	m := r.Method
	if m == http.MethodHead {
		m = http.MethodGet
	}
	rt := Route{Method: r.Method}
	if p == "/" || p == "" {
		if m != http.MethodGet {
			return rt, unsupported()
		}
		rt.Action = ActionPing
		return rt, nil
	}
	if p == "/_catalog" {
		if m != http.MethodGet {
			return rt, unsupported()
		}
		rt.Action = ActionListCatalog
		return rt, nil
	}
	p = strings.TrimPrefix(p, "/")

	var kind, tail string
	switch {
	case strings.HasSuffix(p, "/tags/list"):
		rt.Repo, kind = strings.TrimSuffix(p, "/tags/list"), "tags"
	default:
		for _, marker := range []string{"/blobs/uploads/", "/blobs/", "/manifests/", "/referrers/"} {
			i := strings.LastIndex(p, marker)
			if i < 0 || strings.Contains(p[i+len(marker):], "/") {
				continue
			}
			rt.Repo, kind, tail = p[:i], marker, p[i+len(marker):]
			break
		}
		// POST /v2/<name>/blobs/uploads without the trailing slash.
		if kind == "/blobs/" && tail == "uploads" && m == http.MethodPost {
			kind, tail = "/blobs/uploads/", ""
		}
	}
	if kind == "" {
		return rt, notFound()
	}
	if !oci.ValidRepo(rt.Repo) {
		return rt, errf(CodeNameInvalid, "invalid repository name %q", truncate(rt.Repo, 300))
	}

	switch kind {
	case "tags":
		if m != http.MethodGet {
			return rt, unsupported()
		}
		rt.Action = ActionListTags
	case "/blobs/uploads/":
		rt.UploadID = tail
		switch {
		case tail == "" && m == http.MethodPost:
			rt.Action = ActionStartUpload
			if q := r.URL.Query(); q.Has("mount") {
				rt.Action = ActionMountBlob
				rt.From = q.Get("from")
				if rt.From != "" && !oci.ValidRepo(rt.From) {
					return rt, errf(CodeNameInvalid, "invalid repository name %q in from", truncate(rt.From, 300))
				}
			}
		case tail == "":
			return rt, unsupported()
		case m == http.MethodGet:
			rt.Action = ActionGetUpload
		case m == http.MethodPatch:
			rt.Action = ActionPatchUpload
		case m == http.MethodPut:
			rt.Action = ActionFinishUpload
		case m == http.MethodDelete:
			rt.Action = ActionCancelUpload
		default:
			return rt, unsupported()
		}
	case "/blobs/":
		rt.Reference = tail
		switch m {
		case http.MethodGet:
			rt.Action = ActionGetBlob
		case http.MethodDelete:
			rt.Action = ActionDeleteBlob
		default:
			return rt, unsupported()
		}
	case "/manifests/":
		rt.Reference = tail
		switch m {
		case http.MethodGet:
			rt.Action = ActionGetManifest
		case http.MethodPut:
			rt.Action = ActionPutManifest
		case http.MethodDelete:
			rt.Action = ActionDeleteManifest
		default:
			return rt, unsupported()
		}
	case "/referrers/":
		rt.Reference = tail
		if m != http.MethodGet {
			return rt, unsupported()
		}
		rt.Action = ActionGetReferrers
	}
	if rt.Reference == "" && rt.Action != ActionListTags && rt.UploadID == "" &&
		rt.Action != ActionStartUpload && rt.Action != ActionMountBlob {
		return rt, notFound()
	}
	return rt, nil
}

func notFound() *Error {
	return &Error{Code: CodeNameUnknown, Status: http.StatusNotFound, Message: "no such API endpoint"}
}

func unsupported() *Error {
	return &Error{Code: CodeUnsupported, Message: "method not allowed on this endpoint"}
}
