package httpapi_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/orgs-dev/orgs/internal/httpapi"
	"github.com/orgs-dev/orgs/internal/postgres"
	"github.com/orgs-dev/orgs/internal/postgres/postgrestest"
	"github.com/orgs-dev/orgs/internal/token"
)

var csrfField = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// TestCSRFCookieHostPrefix is the review's finding: the CSRF cookie of the built-in pages
// lacked the __Host- prefix, so a sibling subdomain or a plain-http page could plant one.
// Served over https it is __Host-orgs_csrf (Secure, Path=/, no Domain), and a cookie of
// another name does not pass; over plain http (development) it stays orgs_csrf.
func TestCSRFCookieHostPrefix(t *testing.T) {
	t.Parallel()
	pool := postgrestest.New(t)
	signer, err := token.NewSigner([]string{"pages-test-key-0123456789-0123456789"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		publicURL, cookie string
		secure            bool
	}{
		{"https://orgs.example.com", "__Host-orgs_csrf", true},
		{"http://127.0.0.1:8080", "orgs_csrf", false},
	} {
		h := httpapi.NewServer(zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel), prometheus.NewRegistry(),
			postgres.NewStore(pool, postgres.StoreConfig{}), signer, httpapi.Config{
				Version: "test", PublicURL: tt.publicURL, ActivationURL: tt.publicURL + "/activate/{user_id}/{token}",
				AcceptURL: tt.publicURL + "/v1/me/invitations", SiteName: "Orgs Test", InvitationTTL: time.Hour,
				Ready: func(context.Context) error { return nil },
			})
		srv := httptest.NewServer(h)
		defer srv.Close()
		client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

		resp, err := client.Get(srv.URL + "/signup")
		if err != nil {
			t.Fatal(err)
		}
		var page strings.Builder
		_, _ = io.Copy(&page, resp.Body)
		resp.Body.Close()
		setCookie := resp.Header.Get("Set-Cookie")
		if !strings.HasPrefix(setCookie, tt.cookie+"=") || strings.Contains(strings.ToLower(setCookie), "domain=") ||
			!strings.Contains(setCookie, "Path=/;") || strings.Contains(setCookie, "Secure") != tt.secure {
			t.Errorf("%s: Set-Cookie %q, want %s with Path=/, no Domain, Secure %v", tt.publicURL, setCookie, tt.cookie, tt.secure)
		}
		m := csrfField.FindStringSubmatch(page.String())
		if m == nil {
			t.Fatalf("%s: no csrf_token in the sign-up form", tt.publicURL)
		}
		post := func(cookie string) int {
			t.Helper()
			form := url.Values{"csrf_token": {m[1]}, "email": {freshEmail("csrf")}, "name": {"C"}, "organization_name": {"CSRF Org"}}
			req, _ := http.NewRequest("POST", srv.URL+"/signup", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.AddCookie(&http.Cookie{Name: cookie, Value: m[1]})
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		if code := post(tt.cookie); code == http.StatusForbidden || code >= 500 {
			t.Errorf("%s: the form with its %s cookie: got %d, want it accepted", tt.publicURL, tt.cookie, code)
		}
		other := "orgs_csrf"
		if tt.cookie == other {
			other = "__Host-orgs_csrf"
		}
		if code := post(other); code != http.StatusForbidden {
			t.Errorf("%s: the form with a %s cookie: got %d, want 403", tt.publicURL, other, code)
		}
	}
}
