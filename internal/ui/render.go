package ui

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// pageNames are the templates under templates/, each rendered inside layout.html.
var pageNames = []string{"error", "signin", "repositories", "repository", "manifest"}

func parsePages() (map[string]*template.Template, error) {
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("ui: parse layout: %w", err)
	}
	pages := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := base.Clone()
		if err == nil {
			t, err = t.ParseFS(templateFS, "templates/"+name+".html")
		}
		if err != nil {
			return nil, fmt.Errorf("ui: parse %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}

// view is what layout.html renders around every page.
type view struct {
	Name      string
	Title     string
	User      string
	Anonymous bool
	CanSignIn bool
	CSRF      string
	Flash     string
	Next      string // where sign-in returns to
	Crumbs    []crumb
	Page      any
}

type crumb struct {
	Label, URL string
}

func (u *UI) render(w http.ResponseWriter, r *http.Request, rq *request, status int, page, title string, crumbs []crumb, data any) {
	v := view{Name: u.o.Name, Title: title, User: rq.who(), Anonymous: rq.anonymous(), CanSignIn: rq.canSignIn,
		CSRF: rq.csrfToken(), Flash: rq.flash, Crumbs: crumbs, Page: data}
	if r.Method == http.MethodGet && !strings.HasPrefix(r.URL.Path, "/-/") {
		v.Next = r.URL.RequestURI()
	}
	var buf bytes.Buffer
	if err := u.pages[page].ExecuteTemplate(&buf, "layout.html", v); err != nil {
		u.log.ErrorContext(r.Context(), "ui: render", "page", page, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(buf.Bytes())
	}
}

var funcs = template.FuncMap{
	"bytes":   humanBytes,
	"when":    when,
	"iso":     func(t time.Time) string { return isoTime(t) },
	"short":   shortDigest,
	"repoURL": repoURL,
	"manURL":  manifestURL,
	"blobURL": blobURL,
	"signInURL": func(next string) string {
		if next == "" || next == "/" {
			return "/-/signin"
		}
		return "/-/signin?next=" + url.QueryEscape(next)
	},
	"join": strings.Join,
	// plural: "1 tag", "2 tags".
	"plural": func(n int, word string) string {
		if n == 1 {
			return "1 " + word
		}
		return fmt.Sprintf("%d %ss", n, word)
	},
}

func repoURL(repo string) string { return "/r/" + repo }

func manifestURL(repo, ref string) string { return "/r/" + repo + "/-/manifest/" + ref }

func blobURL(repo, d, name string) string {
	u := "/r/" + repo + "/-/blob/" + d
	if name != "" {
		u += "?name=" + url.QueryEscape(name)
	}
	return u
}

func shortDigest(d any) string {
	s := fmt.Sprint(d)
	_, hex, ok := strings.Cut(s, ":")
	if !ok || len(hex) < 12 {
		return s
	}
	return hex[:12]
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func isoTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// when is a short absolute UTC time (the page's script shows it as "x ago").
func when(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}
