// Package ui is berth's web UI: server-rendered pages (html/template and
// embed.FS, a little progressive JavaScript, no external resources) to browse
// repositories, tags, manifests and referrers, download artifact files and
// delete tags and manifests.
//
//	h, err := ui.New(ui.Options{Name: "berth", Store: store, Gate: gate, Sessions: tokens})
//	mux.Handle("/", h)
//
// The UI has no authorization of its own: every page and every button asks
// the same access.Gate the /v2 API asks (Gate.Check, with the route the
// equivalent API request would have), so a user sees exactly the
// repositories they may pull from and a delete button only where a DELETE
// would be allowed.
//
// A signed-in browser holds a berth session token (token.Service) in an
// HttpOnly, SameSite=Strict cookie (Secure under TLS, also behind a trusted
// proxy that forwards https); it is verified like
// a docker password on every page and bounded by the same limits. Every
// state-changing form carries a CSRF token bound to the session, and
// cross-origin POSTs are refused outright.
//
// Pages never walk the whole store: repository and tag lists are pages of
// the storage listings, and per-repository summaries are computed for the
// repositories on the page only, then cached briefly.
//
// NEVER log a token or password, and never put one in a URL.
package ui

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/berth-registry/berth/internal/access"
	"github.com/berth-registry/berth/internal/auth"
	"github.com/berth-registry/berth/internal/oci"
	"github.com/berth-registry/berth/internal/registry"
	"github.com/berth-registry/berth/internal/storage"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Sessions issues and revokes the session tokens the UI keeps in its cookie
// (*token.Service). The Gate's Authenticator verifies them, as it does a
// session token sent to the API.
type Sessions interface {
	IssueSession(ctx context.Context, id *auth.Identity) (string, time.Time, error)
	Revoke(ctx context.Context, raw string) error
}

// Options configure the UI.
type Options struct {
	// Name is the title shown on every page.
	Name string
	// Store is read (and, for deletions, written) through the storage
	// contract, like the API does.
	Store storage.Store
	// Gate authenticates sign-ins (its current Authenticator) and decides
	// every access (Check, CanList). Required.
	Gate *access.Gate
	// Sessions is the token service; nil when it is off (then nobody can
	// sign in and the UI is anonymous).
	Sessions Sessions
	Logger   *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// PageSize is the default number of rows per page (default 25).
	PageSize int
	// StatsTTL is how long a repository summary is cached (default 30s).
	StatsTTL time.Duration
	// CursorKey (32 bytes) encrypts the repository list's opaque cursors;
	// random per process when empty (a cursor then works only on the
	// process that made it, until it restarts).
	CursorKey []byte
}

// UI serves the web UI. Create it with New.
type UI struct {
	o       Options
	log     *slog.Logger
	pages   map[string]*template.Template
	static  http.Handler
	stats   *statsCache
	tagMaps *tagMapCache
	cop     *http.CrossOriginProtection
	// scanBudget is scanBudget (tests lower it).
	scanBudget int
	cursors    cipher.AEAD
}

const (
	defaultPageSize = 25
	maxPageSize     = 200
)

// New parses the embedded templates and returns the UI.
func New(o Options) (*UI, error) {
	if o.Store == nil || o.Gate == nil {
		return nil, errors.New("ui: Store and Gate are required")
	}
	if o.Name == "" {
		o.Name = "berth"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.PageSize <= 0 {
		o.PageSize = defaultPageSize
	}
	if o.StatsTTL <= 0 {
		o.StatsTTL = 30 * time.Second
	}
	u := &UI{o: o, log: o.Logger, cop: http.NewCrossOriginProtection(), scanBudget: scanBudget}
	if u.log == nil {
		u.log = slog.New(slog.DiscardHandler)
	}
	key := o.CursorKey
	if len(key) == 0 {
		key = make([]byte, 32)
		_, _ = rand.Read(key)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("ui: cursor key: %w", err)
	}
	if u.cursors, err = cipher.NewGCM(block); err != nil {
		return nil, fmt.Errorf("ui: cursor key: %w", err)
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	u.pages = pages
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, fmt.Errorf("ui: static files: %w", err)
	}
	u.static = http.StripPrefix("/-/static/", http.FileServerFS(sub))
	u.stats = newStatsCache(o.Store, o.StatsTTL, o.Now)
	u.tagMaps = newTagMapCache(o.Store, o.StatsTTL, o.Now)
	return u, nil
}

// ServeHTTP routes the UI's paths:
//
//	GET  /                                 repositories (?q= filter, ?after= visible name or ?cursor= opaque cursor)
//	GET  /r/<name>                         repository: tags (?sort=name|date) or manifests (?view=manifests)
//	GET  /r/<name>/-/manifest/<reference>  manifest (digest or tag)
//	GET  /r/<name>/-/blob/<digest>         blob download (?name= file name)
//	POST /r/<name>/-/delete                delete a tag (tag=) or a manifest (digest=)
//	GET  /-/signin, POST /-/signin, POST /-/signout
//	GET  /-/static/...
//
// Repository names cannot contain a "-" path component, so "/-/" separates
// a name from what follows it.
func (u *UI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	p := r.URL.Path
	if strings.HasPrefix(p, "/-/static/") {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			u.methodNotAllowed(w, r, "GET, HEAD")
			return
		}
		h.Set("Cache-Control", "public, max-age=300")
		u.static.ServeHTTP(w, r)
		return
	}
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
		"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	rq := u.begin(w, r)
	if strings.Contains(r.URL.EscapedPath(), "%") {
		u.notFound(w, r, rq)
		return
	}
	switch {
	case p == "/":
		u.get(w, r, rq, u.repositories)
	case p == "/-/signin":
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			u.signInPage(w, r, rq, "", http.StatusOK)
		case http.MethodPost:
			u.post(w, r, rq, u.signIn)
		default:
			u.methodNotAllowed(w, r, "GET, HEAD, POST")
		}
	case p == "/-/signout":
		u.post(w, r, rq, u.signOut)
	case strings.HasPrefix(p, "/r/"):
		u.repoRoute(w, r, rq, strings.TrimPrefix(p, "/r/"))
	default:
		u.notFound(w, r, rq)
	}
}

func (u *UI) repoRoute(w http.ResponseWriter, r *http.Request, rq *request, rest string) {
	name, tail, _ := strings.Cut(rest, "/-/")
	name = strings.TrimSuffix(name, "/")
	if !oci.ValidRepo(name) {
		u.notFound(w, r, rq)
		return
	}
	switch {
	case tail == "":
		u.get(w, r, rq, func(w http.ResponseWriter, r *http.Request, rq *request) { u.repository(w, r, rq, name) })
	case strings.HasPrefix(tail, "manifest/"):
		ref := strings.TrimPrefix(tail, "manifest/")
		u.get(w, r, rq, func(w http.ResponseWriter, r *http.Request, rq *request) { u.manifest(w, r, rq, name, ref) })
	case strings.HasPrefix(tail, "blob/"):
		d := strings.TrimPrefix(tail, "blob/")
		u.get(w, r, rq, func(w http.ResponseWriter, r *http.Request, rq *request) { u.blob(w, r, rq, name, d) })
	case tail == "delete":
		u.post(w, r, rq, func(w http.ResponseWriter, r *http.Request, rq *request) { u.delete(w, r, rq, name) })
	default:
		u.notFound(w, r, rq)
	}
}

type handlerFunc func(w http.ResponseWriter, r *http.Request, rq *request)

func (u *UI) get(w http.ResponseWriter, r *http.Request, rq *request, fn handlerFunc) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		u.methodNotAllowed(w, r, "GET, HEAD")
		return
	}
	fn(w, r, rq)
}

// post runs fn for a POST that passes the cross-origin and CSRF checks.
func (u *UI) post(w http.ResponseWriter, r *http.Request, rq *request, fn handlerFunc) {
	if r.Method != http.MethodPost {
		u.methodNotAllowed(w, r, "POST")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := u.cop.Check(r); err != nil {
		u.fail(w, r, rq, http.StatusForbidden, "Cross-origin request refused", "This form may only be sent from this registry's own pages.")
		return
	}
	if err := r.ParseForm(); err != nil {
		u.fail(w, r, rq, http.StatusBadRequest, "Bad request", "The form could not be read.")
		return
	}
	if !rq.csrfOK(r.PostForm.Get("csrf")) {
		u.fail(w, r, rq, http.StatusForbidden, "Form expired", "The form's security token is missing or out of date. Reload the page and try again.")
		return
	}
	fn(w, r, rq)
}

// can asks the gate whether the request's identity may perform the API
// action on repo (reference: tag or digest, "" for none).
func (u *UI) can(ctx context.Context, rq *request, action registry.Action, repo, reference string) bool {
	method := http.MethodGet
	switch action.Kind() {
	case registry.KindDelete:
		method = http.MethodDelete
	case registry.KindPush:
		method = http.MethodPut
	}
	return u.o.Gate.Check(ctx, rq.id, registry.Route{Action: action, Repo: repo, Reference: reference, Method: method})
}

// canPull is the catalog's visibility rule: list-tags in repo.
func (u *UI) canPull(ctx context.Context, rq *request, repo string) bool {
	return u.can(ctx, rq, registry.ActionListTags, repo, "")
}

// denied renders the refusal for repo: who the user is and what they may not do.
func (u *UI) denied(w http.ResponseWriter, r *http.Request, rq *request, verb, repo string) {
	status := http.StatusForbidden
	msg := fmt.Sprintf("You are signed in as %s and may not %s %s.", rq.who(), verb, repo)
	if rq.anonymous() {
		msg = fmt.Sprintf("You are not signed in, and anonymous users may not %s %s.", verb, repo)
		if rq.canSignIn {
			msg += " Sign in to see more."
		}
	}
	u.fail(w, r, rq, status, "Access denied", msg)
}

// storeErr renders a storage error: unknown things are 404s, unreachable
// storage 503 with Retry-After, the rest 500s (logged, never shown in detail).
func (u *UI) storeErr(w http.ResponseWriter, r *http.Request, rq *request, what string, err error) {
	switch {
	case errors.Is(err, storage.ErrRepositoryUnknown):
		u.fail(w, r, rq, http.StatusNotFound, "Not found", what+" does not exist.")
	case errors.Is(err, storage.ErrManifestUnknown), errors.Is(err, storage.ErrTagUnknown), errors.Is(err, storage.ErrBlobUnknown):
		u.fail(w, r, rq, http.StatusNotFound, "Not found", what+" does not exist (any more).")
	case errors.Is(err, context.Canceled):
		// the browser went away
	case errors.Is(err, storage.ErrUnavailable):
		u.log.WarnContext(r.Context(), "ui: storage unavailable", "what", what, "err", err)
		w.Header().Set("Retry-After", "5")
		u.fail(w, r, rq, http.StatusServiceUnavailable, "Temporarily unavailable", "The registry cannot reach its storage right now. Try again in a few seconds.")
	default:
		u.log.ErrorContext(r.Context(), "ui: storage error", "what", what, "err", err)
		u.fail(w, r, rq, http.StatusInternalServerError, "Something went wrong", "The registry could not read "+what+". The error has been logged.")
	}
}

func (u *UI) notFound(w http.ResponseWriter, r *http.Request, rq *request) {
	u.fail(w, r, rq, http.StatusNotFound, "Not found", "There is no page at this address.")
}

func (u *UI) methodNotAllowed(w http.ResponseWriter, r *http.Request, allow string) {
	w.Header().Set("Allow", allow)
	http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
}

func (u *UI) fail(w http.ResponseWriter, r *http.Request, rq *request, status int, title, msg string) {
	u.render(w, r, rq, status, "error", title, nil, errorPage{Title: title, Message: msg})
}

type errorPage struct {
	Title, Message string
}
