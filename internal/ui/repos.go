package ui

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"

	"github.com/berth-registry/berth/internal/oci"
	"github.com/berth-registry/berth/internal/storage"
)

// scanBudget bounds how many repository names one page of the repository
// list looks at (the filter and the policy may skip many): past it, the page
// ends early with a link to continue.
const scanBudget = 5000

type reposPage struct {
	Query   string
	Repos   []storage.RepositoryInfo
	Next    string // the last name shown: ?after= of the next page
	Cursor  string // or ?cursor= of the next page (opaque), "" on the last
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
	// A page starts after a name the caller may list (the last one of the
	// previous page) or at an opaque cursor (where the scan budget stopped
	// the previous page: perhaps a name the caller may not list). Any other
	// start is refused, the same way whether such a repository exists or
	// not.
	after := q.Get("after")
	if c := q.Get("cursor"); c != "" {
		name, ok := u.openCursor(c)
		if !ok || after != "" {
			u.badCursor(w, r, rq)
			return
		}
		after = name
	} else if after != "" && (!oci.ValidRepo(after) || !u.canPull(ctx, rq, after)) {
		u.badCursor(w, r, rq)
		return
	}
	size := u.pageSize(r)
	p := reposPage{Query: query, First: after == "", Size: size}

	// Without a filter most names are shown: start with one page. With a
	// filter, ask for the whole scan budget at once: a backend that walks
	// its tree per listing (fs) pays that walk once, not per batch.
	var names []string
	cursor, scanned, batch := after, 0, size+1
	if query != "" {
		batch = u.scanBudget
	}
	for len(names) <= size && scanned < u.scanBudget {
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
		batch = min(batch*8, u.scanBudget)
	}
	switch {
	case len(names) > size:
		names = names[:size]
		p.Next = names[size-1]
	case scanned >= u.scanBudget:
		p.Cursor, p.Partial = u.sealCursor(cursor), true
	}
	infos, err := u.stats.page(ctx, names)
	if err != nil {
		u.storeErr(w, r, rq, "the repository list", err)
		return
	}
	p.Repos = infos
	u.render(w, r, rq, http.StatusOK, "repositories", "Repositories", nil, p)
}

// cursorAAD binds a sealed cursor to its use.
var cursorAAD = []byte("berth ui repository cursor v1")

// sealCursor makes an opaque cursor of a repository name: AES-GCM under the
// UI's key, so a caller can neither read the name nor make a cursor of
// its own.
func (u *UI) sealCursor(name string) string {
	nonce := make([]byte, u.cursors.NonceSize(), u.cursors.NonceSize()+len(name)+u.cursors.Overhead())
	_, _ = rand.Read(nonce)
	return base64.RawURLEncoding.EncodeToString(u.cursors.Seal(nonce, nonce, []byte(name), cursorAAD))
}

// openCursor reads what sealCursor made.
func (u *UI) openCursor(c string) (string, bool) {
	if len(c) > 1024 {
		return "", false
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) < u.cursors.NonceSize() {
		return "", false
	}
	ns := u.cursors.NonceSize()
	name, err := u.cursors.Open(nil, b[:ns], b[ns:], cursorAAD)
	if err != nil || !oci.ValidRepo(string(name)) {
		return "", false
	}
	return string(name), true
}

func (u *UI) badCursor(w http.ResponseWriter, r *http.Request, rq *request) {
	u.fail(w, r, rq, http.StatusBadRequest, "Page link not valid",
		"This page link cannot be used (it was changed, or the registry restarted since it was made). Start again from the first page.")
}
