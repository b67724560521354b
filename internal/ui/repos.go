package ui

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/berth-registry/berth/internal/storage"
	"github.com/berth-registry/berth/internal/storage/layout"
)

// scanBudget bounds how many repository names one page of the repository
// list looks at (the filter and the policy may skip many): past it, the page
// ends early with a link to continue.
const scanBudget = 5000

type reposPage struct {
	Query   string
	Repos   []storage.RepositoryInfo
	Next    string // cursor of the next page, "" on the last
	First   bool   // this is the first page
	Partial bool   // the scan budget ended the page early
	Size    int
}

// pageSize reads ?n= within bounds.
func (u *UI) pageSize(r *http.Request) int {
	n, err := strconv.Atoi(r.URL.Query().Get("n"))
	if err != nil || n <= 0 {
		return u.o.PageSize
	}
	return min(n, maxPageSize)
}

// repositories lists a page of the repositories the caller may pull from,
// optionally filtered by a substring of the name. It reads repository names
// in growing batches from the cursor on, until the page is full or the scan
// budget is spent, and summarises only the repositories on the page.
func (u *UI) repositories(w http.ResponseWriter, r *http.Request, rq *request) {
	ctx := r.Context()
	q := r.URL.Query()
	query := strings.ToLower(strings.TrimSpace(q.Get("q")))
	if len(query) > 255 {
		query = query[:255]
	}
	after := q.Get("after")
	if after != "" && !layout.ValidRepo(after) {
		after = ""
	}
	size := u.pageSize(r)
	p := reposPage{Query: query, First: after == "", Size: size}

	// Without a filter most names are shown: start with one page. With a
	// filter, ask for the whole scan budget at once: a backend that walks
	// its tree per listing (fs) pays that walk once, not per batch.
	var names []string
	cursor, scanned, batch := after, 0, size+1
	if query != "" {
		batch = scanBudget
	}
	for len(names) <= size && scanned < scanBudget {
		got, err := u.o.Store.ListRepositories(ctx, cursor, batch)
		if err != nil {
			u.storeErr(w, r, rq, "the repository list", err)
			return
		}
		for _, name := range got {
			cursor = name
			scanned++
			if (query == "" || strings.Contains(name, query)) && u.canPull(ctx, rq, name) {
				names = append(names, name)
				if len(names) > size {
					break
				}
			}
		}
		if len(got) < batch {
			break // the listing ended
		}
		batch = min(batch*8, scanBudget)
	}
	switch {
	case len(names) > size:
		names = names[:size]
		p.Next = names[size-1]
	case scanned >= scanBudget:
		p.Next, p.Partial = cursor, true
	}
	infos, err := u.stats.page(ctx, names)
	if err != nil {
		u.storeErr(w, r, rq, "the repository list", err)
		return
	}
	p.Repos = infos
	u.render(w, r, rq, http.StatusOK, "repositories", "Repositories", nil, p)
}
