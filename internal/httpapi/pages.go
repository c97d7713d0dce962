package httpapi

import (
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"html/template"
	"net/http"
	"strings"

	"github.com/rs/zerolog"

	"github.com/orgs-dev/orgs/internal/domain"
)

//go:embed pages/*.html
var pageFS embed.FS

var pageTemplates = template.Must(template.ParseFS(pageFS, "pages/*.html"))

// pages are the server-rendered pages for people who click the links in the emails when
// the customer has no front end of its own: the activation form and a sign-up form. They
// run the same code as the JSON API, need no JavaScript, and are protected against CSRF
// with a double-submit cookie (SameSite=Strict) compared in constant time.
type pages struct {
	h *handlers
}

func newPages(store Store, signer tokenSigner, cfg Config) *pages {
	return &pages{h: &handlers{store: store, signer: signer, cfg: cfg}}
}

// csrfCookieHTTPS and csrfCookieHTTP name the CSRF cookie. Over https it carries the
// __Host- prefix, so the browser keeps it only as Secure, for Path=/ and without Domain:
// neither a sibling subdomain nor a plain-http page can plant or overwrite it. Over plain
// http (development on loopback) the prefix cannot be met everywhere: Chromium and
// Firefox take Secure cookies from http://localhost, Safari does not.
const (
	csrfCookieHTTPS = "__Host-orgs_csrf"
	csrfCookieHTTP  = "orgs_csrf"
)

// csrfCookie returns the CSRF cookie's name for r and whether it is Secure: the pages are
// on https when ORGS_PUBLIC_URL is (behind a proxy that ends TLS, too) or r came over
// TLS.
func (p *pages) csrfCookie(r *http.Request) (name string, secure bool) {
	if r.TLS != nil || strings.HasPrefix(strings.ToLower(p.h.cfg.PublicURL), "https://") {
		return csrfCookieHTTPS, true
	}
	return csrfCookieHTTP, false
}

// pageData is what every page template sees.
type pageData struct {
	SiteName      string
	Title         string
	CSRF          string
	Error         string
	FieldErrors   map[string]string
	User          domain.User
	Organizations []domain.Organization
	Form          map[string]string
	Done          bool
}

func (p *pages) render(w http.ResponseWriter, r *http.Request, status int, name string, d pageData) {
	d.SiteName = p.h.cfg.SiteName
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	w.Header().Set("Referrer-Policy", "no-referrer") // the URL holds the activation token
	w.WriteHeader(status)
	if err := pageTemplates.ExecuteTemplate(w, name, d); err != nil {
		zerolog.Ctx(r.Context()).Error().Err(err).Str("page", name).Msg("render page")
	}
}

// csrfToken returns the request's CSRF token, setting a new cookie when there is none.
func (p *pages) csrfToken(w http.ResponseWriter, r *http.Request) string {
	name, secure := p.csrfCookie(r)
	if c, err := r.Cookie(name); err == nil && len(c.Value) == 43 {
		return c.Value
	}
	var b [32]byte
	_, _ = rand.Read(b[:])
	tok := base64.RawURLEncoding.EncodeToString(b[:])
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: tok, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: secure,
	})
	return tok
}

// checkCSRF reports whether a form post carries the cookie's token.
func (p *pages) checkCSRF(r *http.Request) bool {
	name, _ := p.csrfCookie(r)
	c, err := r.Cookie(name)
	if err != nil || c.Value == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostFormValue("csrf_token"))) == 1
}

// parseForm reads a form post of at most 64 KiB.
func parseForm(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	return r.ParseForm()
}

func (p *pages) activateForm() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		userID, tok := r.PathValue("user_id"), r.PathValue("token")
		if _, err := p.h.verify(r.Context(), userID, tok); err != nil {
			p.render(w, r, http.StatusNotFound, "expired.html", pageData{Title: "This link has expired"})
			return
		}
		u, orgs, err := p.h.store.FindActivation(r.Context(), userID)
		if err != nil {
			p.renderError(w, r, err)
			return
		}
		p.render(w, r, http.StatusOK, "activate.html", pageData{
			Title: "Set your password", CSRF: p.csrfToken(w, r), User: u, Organizations: orgs,
			Form: map[string]string{"name": u.Name},
		})
	})
}

func (p *pages) activateSubmit() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		userID, tok := r.PathValue("user_id"), r.PathValue("token")
		if err := parseForm(w, r); err != nil || !p.checkCSRF(r) {
			p.render(w, r, http.StatusForbidden, "error.html", pageData{Title: "Please try again",
				Error: "Your form expired or came from elsewhere. Open the link from your email again."})
			return
		}
		name := strings.TrimSpace(r.PostFormValue("name"))
		pw, confirm := r.PostFormValue("password"), r.PostFormValue("password_confirmation")
		form := map[string]string{"name": name}
		if pw != confirm {
			p.reshowActivate(w, r, userID, form, map[string]string{"password_confirmation": "The passwords do not match."})
			return
		}
		var namePtr *string
		if name != "" {
			namePtr = &name
		}
		_, _, err := p.h.activateUser(r.Context(), userID, tok, &pw, namePtr)
		var ve *domain.ValidationError
		switch {
		case errors.As(err, &ve):
			fields := map[string]string{}
			for _, pr := range ve.Problems {
				fields[strings.TrimPrefix(pr.Location, "body.")] = pr.Message
			}
			p.reshowActivate(w, r, userID, form, fields)
			return
		case err != nil:
			p.renderError(w, r, err)
			return
		}
		if p.h.cfg.ActivationSuccessURL != "" {
			http.Redirect(w, r, p.h.cfg.ActivationSuccessURL, http.StatusSeeOther)
			return
		}
		p.render(w, r, http.StatusOK, "activated.html", pageData{Title: "Your account is ready"})
	})
}

func (p *pages) reshowActivate(w http.ResponseWriter, r *http.Request, userID string, form, fields map[string]string) {
	u, orgs, err := p.h.store.FindActivation(r.Context(), userID)
	if err != nil {
		p.renderError(w, r, err)
		return
	}
	p.render(w, r, http.StatusUnprocessableEntity, "activate.html", pageData{
		Title: "Set your password", CSRF: p.csrfToken(w, r), User: u, Organizations: orgs, Form: form, FieldErrors: fields,
	})
}

// renderError shows a used or expired link, or a generic error page.
func (p *pages) renderError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, domain.ErrTokenInvalid) || errors.Is(err, domain.ErrNotFound) {
		p.render(w, r, http.StatusNotFound, "expired.html", pageData{Title: "This link has expired"})
		return
	}
	if pr := classify(err); pr != nil && pr.Status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", pr.GetHeaders().Get("Retry-After"))
		p.render(w, r, http.StatusTooManyRequests, "error.html", pageData{Title: "Please try again",
			Error: "Too many people are doing this right now. Please go back and send the form again in a moment."})
		return
	}
	zerolog.Ctx(r.Context()).Error().Err(err).Msg("page")
	p.render(w, r, http.StatusInternalServerError, "error.html", pageData{Title: "Something went wrong",
		Error: "Something went wrong on our side. Please try again in a moment."})
}

func (p *pages) signupForm() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.render(w, r, http.StatusOK, "signup.html", pageData{Title: "Sign up", CSRF: p.csrfToken(w, r)})
	})
}

func (p *pages) signupSubmit() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := parseForm(w, r); err != nil || !p.checkCSRF(r) {
			p.render(w, r, http.StatusForbidden, "error.html", pageData{Title: "Please try again",
				Error: "Your form expired or came from elsewhere. Please fill it in again."})
			return
		}
		in := signupInput{Body: signupBody{
			Email:            strings.TrimSpace(r.PostFormValue("email")),
			Name:             strings.TrimSpace(r.PostFormValue("name")),
			OrganizationName: strings.TrimSpace(r.PostFormValue("organization_name")),
		}}
		form := map[string]string{"email": in.Body.Email, "name": in.Body.Name, "organization_name": in.Body.OrganizationName}
		_, err := p.h.signup(r.Context(), &in)
		var ve *domain.ValidationError
		switch {
		case errors.As(err, &ve):
			fields := map[string]string{}
			for _, pr := range ve.Problems {
				fields[strings.TrimPrefix(pr.Location, "body.")] = pr.Message
			}
			p.render(w, r, http.StatusUnprocessableEntity, "signup.html", pageData{Title: "Sign up", CSRF: p.csrfToken(w, r), Form: form, FieldErrors: fields})
			return
		case errors.Is(err, domain.ErrEmailTaken):
			p.render(w, r, http.StatusConflict, "signup.html", pageData{Title: "Sign up", CSRF: p.csrfToken(w, r), Form: form,
				FieldErrors: map[string]string{"email": "An account with this email exists already. Log in instead."}})
			return
		case errors.Is(err, domain.ErrSlugTaken):
			p.render(w, r, http.StatusConflict, "signup.html", pageData{Title: "Sign up", CSRF: p.csrfToken(w, r), Form: form,
				FieldErrors: map[string]string{"organization_name": "This name is taken; try another."}})
			return
		case errors.Is(err, domain.ErrRateLimited): // the address's mail limit
			w.Header().Set("Retry-After", classify(err).GetHeaders().Get("Retry-After"))
			p.render(w, r, http.StatusTooManyRequests, "signup.html", pageData{Title: "Sign up", CSRF: p.csrfToken(w, r), Form: form,
				FieldErrors: map[string]string{"email": "This address got too many emails this hour; try again later."}})
			return
		case err != nil:
			p.renderError(w, r, err)
			return
		}
		p.render(w, r, http.StatusOK, "signup_done.html", pageData{Title: "Check your email", Form: form})
	})
}
