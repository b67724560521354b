package ui

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/berth-registry/berth/internal/access"
	"github.com/berth-registry/berth/internal/auth"
	"github.com/berth-registry/berth/internal/auth/token"
)

// Cookies. Both are HttpOnly and SameSite=Strict, Secure under TLS.
const (
	// sessionCookie holds a berth session token (berth_st_…).
	sessionCookie = "berth_session"
	// csrfCookie holds a random key; the CSRF token of a form is the HMAC
	// of the session cookie under it, so a token is bound to one browser
	// and one session, and needs no server-side secret (replicas agree).
	csrfCookie = "berth_csrf"
	// maxTokenLen bounds a pasted token or password.
	maxTokenLen = 16 << 10
)

// request is what every page knows about its caller.
type request struct {
	id        *auth.Identity
	session   string // the session token, "" when anonymous
	csrfKey   string
	canSignIn bool   // sign-in is possible here (authentication and the token service are on)
	flash     string // a note for the next page (session expired)
}

func (rq *request) anonymous() bool { return rq.id.IsAnonymous() }

// who names the identity for messages.
func (rq *request) who() string {
	if rq.anonymous() {
		return "anonymous"
	}
	if rq.id.Username != "" {
		return rq.id.Username
	}
	return rq.id.ID
}

func (rq *request) csrfToken() string {
	if rq.csrfKey == "" {
		return ""
	}
	m := hmac.New(sha256.New, []byte(rq.csrfKey))
	m.Write([]byte("berth-ui-csrf\x00" + rq.session))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (rq *request) csrfOK(got string) bool {
	want := rq.csrfToken()
	return want != "" && got != "" && hmac.Equal([]byte(got), []byte(want))
}

// begin resolves the caller from the session cookie and makes sure the
// browser holds a CSRF key.
func (u *UI) begin(w http.ResponseWriter, r *http.Request) *request {
	ip := access.ClientIP(r)
	st := u.o.Gate.Load()
	rq := &request{id: auth.Anonymous(ip), canSignIn: st.Authn != nil && u.o.Sessions != nil}
	if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) == 43 {
		rq.csrfKey = c.Value
	} else {
		rq.csrfKey = randomKey()
		u.setCookie(w, r, csrfCookie, rq.csrfKey)
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return rq
	}
	if !rq.canSignIn || len(c.Value) > maxTokenLen || !token.IsOpaqueToken(c.Value) {
		u.clearCookie(w, r, sessionCookie)
		return rq
	}
	id, err := st.Authn.Authenticate(withBearer(r, c.Value))
	if err != nil {
		// Expired, revoked, used up, or from an untrusted address.
		u.log.DebugContext(r.Context(), "ui: session refused", "reason", err)
		u.clearCookie(w, r, sessionCookie)
		rq.flash = "Your session has ended; you are browsing anonymously."
		if errors.Is(err, auth.ErrUnavailable) {
			rq.flash = "Your session cannot be checked right now; you are browsing anonymously."
		}
		return rq
	}
	rq.id, rq.session = id, c.Value
	return rq
}

// withBearer is r carrying only tok as a bearer credential, for the
// Authenticator (which reads the client address and context from r).
func withBearer(r *http.Request, tok string) *http.Request {
	r2 := r.WithContext(r.Context())
	r2.Header = http.Header{"Authorization": {"Bearer " + tok}}
	return r2
}

func randomKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// secure: the browser reached berth over TLS, directly or through a trusted
// proxy ([server] trusted_proxies) that says so.
func (u *UI) secure(r *http.Request) bool { return access.Scheme(r) == "https" }

func (u *UI) setCookie(w http.ResponseWriter, r *http.Request, name, value string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", HttpOnly: true,
		Secure: u.secure(r), SameSite: http.SameSiteStrictMode})
}

func (u *UI) clearCookie(w http.ResponseWriter, r *http.Request, name string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		Secure: u.secure(r), SameSite: http.SameSiteStrictMode})
}

type signInPage struct {
	Error      string
	Username   string
	Open       bool // no authentication configured
	NoSessions bool // authentication on, token service off
	HasUsers   bool
	HasOIDC    bool
	Next       string
}

func (u *UI) signInPage(w http.ResponseWriter, r *http.Request, rq *request, msg string, status int) {
	st := u.o.Gate.Load()
	p := signInPage{Error: msg, Open: st.Authn == nil, NoSessions: st.Authn != nil && u.o.Sessions == nil,
		Next: safeNext(r.FormValue("next"))}
	if a := st.Authn; a != nil {
		p.HasUsers, p.HasOIDC = a.Users != nil, a.OIDC != nil
	}
	if r.Method == http.MethodPost {
		p.Username = r.PostForm.Get("username")
	}
	u.render(w, r, rq, status, "signin", "Sign in", nil, p)
}

// signIn checks a username and password, or a pasted token, and starts a
// session. A pasted berth session token becomes the session itself: a new
// token is never minted from one (its limits would be escaped).
func (u *UI) signIn(w http.ResponseWriter, r *http.Request, rq *request) {
	st := u.o.Gate.Load()
	a := st.Authn
	if a == nil || u.o.Sessions == nil {
		u.signInPage(w, r, rq, "Signing in is not available on this registry.", http.StatusBadRequest)
		return
	}
	ctx := r.Context()
	ip := access.ClientIP(r)
	user := strings.TrimSpace(r.PostForm.Get("username"))
	pass := r.PostForm.Get("password")
	tok := strings.TrimSpace(r.PostForm.Get("token"))
	if len(user) > 1024 || len(pass) > maxTokenLen || len(tok) > maxTokenLen {
		u.signInPage(w, r, rq, "The credentials are too long.", http.StatusBadRequest)
		return
	}
	var (
		id  *auth.Identity
		raw string // an existing session token to keep
		err error
	)
	switch {
	case tok != "":
		// As a bearer token on the API: a berth session token, or an OIDC ID
		// token routed to its provider by its issuer; through the same
		// failure limit and credential cache.
		id, err = a.Authenticate(withBearer(r, tok))
		if err == nil && id.Access != nil {
			// A registry access token is bounded by its grants: never a session.
			id, err = nil, errors.Join(auth.ErrInvalidCredentials, errors.New("a registry access token cannot start a session"))
		}
		if token.IsOpaqueToken(tok) {
			raw = tok
		}
	case user != "" && pass != "":
		id, err = a.Basic(ctx, user, pass, ip)
		if token.IsOpaqueToken(pass) {
			raw = pass
		}
	default:
		u.signInPage(w, r, rq, "Enter a username and password, or paste a token.", http.StatusBadRequest)
		return
	}
	if err != nil {
		u.log.InfoContext(ctx, "ui: sign-in refused", "username", user, "client_ip", ip, "reason", err)
		msg := "Those credentials were not accepted."
		if tok != "" {
			msg = "That token was not accepted: it may have expired, or it is not for this registry."
		}
		status := http.StatusUnauthorized
		switch {
		case errors.Is(err, auth.ErrRateLimited):
			msg, status = "Too many failed sign-ins from your address; try again later.", http.StatusTooManyRequests
		case errors.Is(err, auth.ErrUnavailable):
			msg, status = "Credentials cannot be checked right now; try again later.", http.StatusServiceUnavailable
		}
		u.signInPage(w, r, rq, msg, status)
		return
	}
	if raw == "" {
		if raw, _, err = u.o.Sessions.IssueSession(ctx, id); err != nil {
			u.log.ErrorContext(ctx, "ui: issuing a session token failed", "identity", id.ID, "err", err)
			u.signInPage(w, r, rq, "The session could not be started; try again later.", http.StatusServiceUnavailable)
			return
		}
	}
	u.log.InfoContext(ctx, "ui: signed in", "identity", id.ID, "client_ip", ip)
	u.setCookie(w, r, sessionCookie, raw)
	// A fresh CSRF key: nothing prepared before the sign-in stays valid.
	u.setCookie(w, r, csrfCookie, randomKey())
	http.Redirect(w, r, safeNext(r.PostForm.Get("next")), http.StatusSeeOther)
}

func (u *UI) signOut(w http.ResponseWriter, r *http.Request, rq *request) {
	if rq.session != "" && u.o.Sessions != nil {
		if err := u.o.Sessions.Revoke(r.Context(), rq.session); err != nil {
			u.log.WarnContext(r.Context(), "ui: revoking the session token failed", "identity", rq.id.ID, "err", err)
		}
	}
	u.clearCookie(w, r, sessionCookie)
	u.setCookie(w, r, csrfCookie, randomKey())
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// maxNextLen bounds where sign-in returns to.
const maxNextLen = 2048

// safeNext keeps a post-sign-in redirect on this site: an absolute path
// (with an optional query) of printable ASCII other than "\", which stays a
// path once a browser has stripped, decoded and normalised it, and is not
// the sign-in page. Anything else is "/".
//
// Browsers drop tabs and newlines anywhere in a URL, trim spaces and control
// characters, read "\" as "/", and take "//host" or "/\host" as another
// site; a value of this shape has none of those, and neither has its path
// once its percent-encoding is undone.
func safeNext(next string) string {
	if next == "" || len(next) > maxNextLen || !plainPath(next) {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" || u.Fragment != "" ||
		!strings.HasPrefix(u.Path, "/") {
		return "/"
	}
	dec, err := url.PathUnescape(u.EscapedPath())
	if err != nil || !plainPath(dec) {
		return "/"
	}
	if strings.HasPrefix(u.Path, "/-/sign") {
		return "/"
	}
	return next
}

// plainPath: s starts with exactly one "/" and holds only printable ASCII
// other than "\".
func plainPath(s string) bool {
	return strings.HasPrefix(s, "/") && !strings.HasPrefix(s, "//") && !strings.ContainsFunc(s, unsafeRune)
}

func unsafeRune(r rune) bool { return r <= ' ' || r >= 0x7f || r == '\\' }
