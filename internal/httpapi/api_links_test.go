package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/orgs-dev/orgs/internal/domain"
)

// linkFor adds email to orgID with send_email: false (a service key) and returns the
// activation link as a JSON API path, /v1/activation/{user_id}/{token}, and the user's id.
func (b *apiBundle) linkFor(t *testing.T, orgID, email string) (path, userID string) {
	t.Helper()
	r := b.req(t, service(), "POST", "/v1/organizations/"+orgID+"/members", map[string]any{"email": email, "send_email": false})
	want(t, r, http.StatusCreated, "")
	var body struct {
		domain.Member
		ActivationURL string `json:"activation_url"`
	}
	r.decode(t, &body)
	rest, ok := strings.CutPrefix(body.ActivationURL, "http://orgs.test/activate/")
	if !ok {
		t.Fatalf("activation_url: got %q, want the activation page's link", body.ActivationURL)
	}
	return "/v1/activation/" + rest, body.User.ID
}

// wantDead checks that activation link path (a JSON API path) no longer works: reading,
// activating and declining all answer 404 token_invalid, and the built-in page says so.
func (b *apiBundle) wantDead(t *testing.T, path string) {
	t.Helper()
	want(t, b.req(t, anonymous, "GET", path, nil), http.StatusNotFound, "token_invalid")
	want(t, b.req(t, anonymous, "POST", path, map[string]any{"password": "the attacker's password"}), http.StatusNotFound, "token_invalid")
	want(t, b.req(t, anonymous, "POST", path+"/decline", nil), http.StatusNotFound, "token_invalid")
	page := b.req(t, anonymous, "GET", strings.Replace(path, "/v1/activation/", "/activate/", 1), nil)
	if page.status != http.StatusNotFound {
		t.Errorf("activation page: got %d, want 404", page.status)
	}
}

// TestUsedLinkStaysDead is the review's finding: a user activated through a link, then
// deactivated by the customer (POST /v1/users is_active: false) and given something to
// join, could be activated again through the old link, with a new password.
func TestUsedLinkStaysDead(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	owner := b.newUser(freshEmail("owner"))
	first := b.newOrg(owner, "First Club")
	email := freshEmail("revived")
	link, userID := b.linkFor(t, first.ID, email)
	want(t, b.req(t, anonymous, "POST", link, map[string]any{"password": "the user's password"}), http.StatusOK, "")

	r := b.req(t, service(), "POST", "/v1/users", map[string]any{"email": email, "is_active": false})
	want(t, r, http.StatusOK, "")
	second := b.newOrg(owner, "Second Club")
	b.addMember(owner.caller, second.ID, email, false)

	b.wantDead(t, link)
	want(t, b.req(t, anonymous, "POST", "/v1/sessions", map[string]any{"email": email, "password": "the attacker's password"}),
		http.StatusUnauthorized, "")
	if n := b.count(t, `SELECT count(*) FROM memberships WHERE user_id = $1 AND pending`, userID); n != 1 {
		t.Errorf("pending memberships: got %d, want 1 (the old link changed nothing)", n)
	}

	// The new invitation's link (made now) works, once.
	fresh := "/v1/activation/" + userID + "/" + b.activationToken(t, userID)
	want(t, b.req(t, anonymous, "POST", fresh, map[string]any{"password": "a new password"}), http.StatusOK, "")
	b.wantDead(t, fresh)
}

// TestLinkToFormerAddressDies is the review's finding: after the customer changed a
// user's address by external_id, the link sent to the former address still worked.
func TestLinkToFormerAddressDies(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	owner := b.newUser(freshEmail("owner"))
	org := b.newOrg(owner, "Moving Club")
	former, current := freshEmail("former"), freshEmail("current")
	want(t, b.req(t, service(), "POST", "/v1/users", map[string]any{"email": former, "external_id": "crm-7"}), http.StatusCreated, "")
	link, userID := b.linkFor(t, org.ID, former)
	want(t, b.req(t, anonymous, "GET", link, nil), http.StatusOK, "")

	r := b.req(t, service(), "POST", "/v1/users", map[string]any{"email": current, "external_id": "crm-7"})
	want(t, r, http.StatusOK, "")
	var u domain.User
	r.decode(t, &u)
	if u.ID != userID || u.Email != current {
		t.Fatalf("upsert by external_id: got %+v, want user %s at %s", u, userID, current)
	}

	b.wantDead(t, link)
	// A link to the current address works (the case of the address does not matter).
	r = b.req(t, service(), "POST", "/v1/users", map[string]any{"email": strings.ToUpper(current), "external_id": "crm-7"})
	want(t, r, http.StatusOK, "")
	fresh := "/v1/activation/" + userID + "/" + b.activationToken(t, userID)
	want(t, b.req(t, service(), "POST", "/v1/users", map[string]any{"email": current, "external_id": "crm-7"}), http.StatusOK, "")
	want(t, b.req(t, anonymous, "POST", fresh, map[string]any{"password": "a good password"}), http.StatusOK, "")
}

// TestDeclinedLinkDies: declining through the link kills it, also for a user whose own
// organization (from sign-up) still waits for activation; a re-send gives a new link.
func TestDeclinedLinkDies(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	email := freshEmail("decliner")
	want(t, b.req(t, anonymous, "POST", "/v1/signup", map[string]any{"email": email, "name": "Dee", "organization_name": "Dee's"}), http.StatusAccepted, "")
	owner := b.newUser(freshEmail("owner"))
	org := b.newOrg(owner, "Inviting Club")
	link, userID := b.linkFor(t, org.ID, email)

	r := b.req(t, anonymous, "POST", link+"/decline", nil)
	want(t, r, http.StatusOK, "")
	b.wantDead(t, link)
	if n := b.count(t, `SELECT count(*) FROM memberships WHERE user_id = $1 AND organization_id = $2`, userID, org.ID); n != 0 {
		t.Errorf("memberships in the declined organization: %d, want 0", n)
	}
	// A new link (as POST /v1/activation/resend sends) activates the sign-up.
	fresh := "/v1/activation/" + userID + "/" + b.activationToken(t, userID)
	want(t, b.req(t, anonymous, "POST", fresh, map[string]any{"password": "a good password"}), http.StatusOK, "")
}
