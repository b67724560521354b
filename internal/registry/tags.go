package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
)

// maxPageSize caps n for tag and catalog listings.
const maxPageSize = 10000

// pageParams reads n and last. n < 0 means "no n given".
func pageParams(r *http.Request) (n int, last string, err error) {
	q := r.URL.Query()
	last = q.Get("last")
	n = -1
	if s := q.Get("n"); s != "" {
		v, perr := strconv.Atoi(s)
		if perr != nil || v < 0 {
			return 0, "", &Error{Code: CodeUnsupported, Status: http.StatusBadRequest, Message: "n must be a non-negative integer"}
		}
		n = min(v, maxPageSize)
	}
	return n, last, nil
}

// page fetches one page of at most n entries (all when n < 0) with list, and
// writes the Link header for the next page when there is one.
func page(w http.ResponseWriter, path string, n int, last string, list func(after string, n int) ([]string, error)) ([]string, error) {
	if n == 0 {
		return []string{}, nil
	}
	ask := n
	if n > 0 {
		ask = n + 1
	}
	items, err := list(last, ask)
	if err != nil {
		return nil, err
	}
	if n > 0 && len(items) > n {
		items = items[:n]
		q := url.Values{"n": {strconv.Itoa(n)}, "last": {items[n-1]}}
		w.Header().Set("Link", fmt.Sprintf("<%s?%s>; rel=\"next\"", path, q.Encode()))
	}
	if items == nil {
		items = []string{}
	}
	return items, nil
}

// listTags serves GET /v2/<name>/tags/list?n=&last=.
func (h *Handler) listTags(w http.ResponseWriter, r *http.Request, rt Route) error {
	n, last, err := pageParams(r)
	if err != nil {
		return err
	}
	if n == 0 {
		// Still 404 for an unknown repository.
		if _, err := h.store.ListTags(r.Context(), rt.Repo, "", 1); err != nil {
			return fmt.Errorf("list tags: %w", err)
		}
	}
	tags, err := page(w, "/v2/"+rt.Repo+"/tags/list", n, last, func(after string, n int) ([]string, error) {
		return h.store.ListTags(r.Context(), rt.Repo, after, n)
	})
	if err != nil {
		return fmt.Errorf("list tags: %w", err)
	}
	return writeJSON(w, http.StatusOK, "application/json", struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{rt.Repo, tags})
}

// listCatalog serves GET /v2/_catalog?n=&last=.
func (h *Handler) listCatalog(w http.ResponseWriter, r *http.Request, _ Route) error {
	n, last, err := pageParams(r)
	if err != nil {
		return err
	}
	repos, err := page(w, "/v2/_catalog", n, last, func(after string, n int) ([]string, error) {
		if h.canList == nil {
			return h.store.ListRepositories(r.Context(), after, n)
		}
		return h.visibleRepositories(r.Context(), after, n)
	})
	if err != nil {
		return fmt.Errorf("list repositories: %w", err)
	}
	return writeJSON(w, http.StatusOK, "application/json", struct {
		Repositories []string `json:"repositories"`
	}{repos})
}

func writeJSON(w http.ResponseWriter, status int, contentType string, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
	return nil
}

// visibleRepositories lists up to n repositories after `after` that canList
// admits, reading the store page by page (never the whole catalog at once).
// The first read is the size of the page asked for, so a page costs the same
// whatever the size of the catalog; reads double (up to maxBatch) while the
// filter drops names.
func (h *Handler) visibleRepositories(ctx context.Context, after string, n int) ([]string, error) {
	const maxBatch = 1000
	batch := maxBatch
	if n >= 0 {
		batch = min(max(n, 10), maxBatch)
	}
	var out []string
	for n < 0 || len(out) < n {
		names, err := h.store.ListRepositories(ctx, after, batch)
		if err != nil {
			return nil, err
		}
		for _, name := range names {
			if h.canList(ctx, name) {
				out = append(out, name)
				if n >= 0 && len(out) == n {
					return out, nil
				}
			}
		}
		if len(names) < batch {
			break
		}
		after = names[len(names)-1]
		batch = min(2*batch, maxBatch)
	}
	return out, nil
}
