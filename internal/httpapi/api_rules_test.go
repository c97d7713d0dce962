package httpapi_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/orgs-dev/orgs/internal/domain"
)

// Every domain rule of django-organizations, through HTTP.

func getMember(t *testing.T, b *apiBundle, c caller, orgID, userID string) domain.Member {
	t.Helper()
	r := b.req(t, c, "GET", "/v1/organizations/"+orgID+"/members/"+userID, nil)
	want(t, r, http.StatusOK, "")
	var m domain.Member
	r.decode(t, &m)
	return m
}

func getOrg(t *testing.T, b *apiBundle, c caller, orgID string) domain.Organization {
	t.Helper()
	r := b.req(t, c, "GET", "/v1/organizations/"+orgID, nil)
	want(t, r, http.StatusOK, "")
	var o domain.Organization
	r.decode(t, &o)
	return o
}

func TestAPIRulesMembership(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	owner := b.newUser("owner@example.com")
	admin := b.newUser("admin@example.com")
	member := b.newUser("member@example.com")
	outsider := b.newUser("outsider@example.com")
	org := b.newOrg(owner, "Vizsla Club")
	b.addMember(owner.caller, org.ID, admin.Email, true)
	b.addMember(owner.caller, org.ID, member.Email, false)
	pendingEmail := freshEmail("pending")
	pending := b.addMember(owner.caller, org.ID, pendingEmail, false)

	t.Run("first member becomes owner and admin", func(t *testing.T) {
		o := b.newOrg(owner, "First Member")
		if o.OwnerID != owner.ID {
			t.Errorf("owner_id: got %s, want %s", o.OwnerID, owner.ID)
		}
		ms, _ := collect[domain.Member](t, b, owner.caller, "/v1/organizations/"+o.ID+"/members?limit=50", 50)
		if len(ms) != 1 {
			t.Fatalf("members: got %d, want 1", len(ms))
		}
		m := ms[0]
		if m.User.ID != owner.ID || !m.IsAdmin || !m.IsOwner || m.Role != domain.RoleOwner {
			t.Errorf("first member: got user %s is_admin %v is_owner %v role %q, want %s true true owner",
				m.User.ID, m.IsAdmin, m.IsOwner, m.Role, owner.ID)
		}
	})
	t.Run("roles of the others", func(t *testing.T) {
		for _, tc := range []struct {
			id   string
			role domain.Role
		}{{admin.ID, domain.RoleAdmin}, {member.ID, domain.RoleMember}, {pending.User.ID, domain.RoleMember}} {
			m := getMember(t, b, member.caller, org.ID, tc.id)
			if m.Role != tc.role || m.IsOwner {
				t.Errorf("member %s: got role %q is_owner %v, want %q false", tc.id, m.Role, m.IsOwner, tc.role)
			}
		}
		if pending.Status != domain.MemberPending || pending.User.IsActive {
			t.Errorf("invited member: got status %q user.is_active %v, want pending false", pending.Status, pending.User.IsActive)
		}
	})
	t.Run("adding an existing member is already_member", func(t *testing.T) {
		for _, email := range []string{member.Email, strings.ToUpper(member.Email), owner.Email, pendingEmail, strings.ToUpper(pendingEmail)} {
			r := b.req(t, admin.caller, "POST", "/v1/organizations/"+org.ID+"/members", map[string]any{"email": email})
			want(t, r, http.StatusConflict, "already_member")
		}
		r := b.req(t, admin.caller, "POST", "/v1/organizations/"+org.ID+"/members", map[string]any{"email": member.Email, "require_acceptance": true})
		want(t, r, http.StatusConflict, "already_member")
	})
	t.Run("removing the owner is owner_cannot_be_removed", func(t *testing.T) {
		for _, c := range []caller{admin.caller, owner.caller, service()} {
			r := b.req(t, c, "DELETE", "/v1/organizations/"+org.ID+"/members/"+owner.ID, nil)
			want(t, r, http.StatusConflict, "owner_cannot_be_removed")
		}
		if m := getMember(t, b, owner.caller, org.ID, owner.ID); !m.IsOwner {
			t.Errorf("owner after refused removal: got is_owner false")
		}
	})
	t.Run("demoting the owner is owner_must_be_admin", func(t *testing.T) {
		for _, c := range []caller{admin.caller, owner.caller, service()} {
			r := b.req(t, c, "PATCH", "/v1/organizations/"+org.ID+"/members/"+owner.ID, map[string]any{"is_admin": false})
			want(t, r, http.StatusConflict, "owner_must_be_admin")
		}
		if m := getMember(t, b, owner.caller, org.ID, owner.ID); !m.IsAdmin {
			t.Errorf("owner after refused demotion: got is_admin false")
		}
	})
	t.Run("admin flag round trip", func(t *testing.T) {
		u := b.newUser(freshEmail("flag"))
		b.addMember(owner.caller, org.ID, u.Email, false)
		r := b.req(t, admin.caller, "PATCH", "/v1/organizations/"+org.ID+"/members/"+u.ID, map[string]any{"is_admin": true})
		want(t, r, http.StatusOK, "")
		var m domain.Member
		r.decode(t, &m)
		if !m.IsAdmin || m.Role != domain.RoleAdmin {
			t.Errorf("promoted: got is_admin %v role %q, want true admin", m.IsAdmin, m.Role)
		}
	})
	t.Run("owner transfer errors", func(t *testing.T) {
		for _, tc := range []struct {
			name, userID, code string
		}{
			{"non-member", outsider.ID, "not_a_member"},
			{"unknown user", "0190a0a0-0000-7000-8000-000000000000", "not_a_member"},
			{"pending member", pending.User.ID, "member_not_active"},
		} {
			r := b.req(t, owner.caller, "PUT", "/v1/organizations/"+org.ID+"/owner", map[string]any{"user_id": tc.userID})
			if r.status != http.StatusConflict || r.code() != tc.code {
				t.Errorf("transfer to %s: got %d %s, want 409 %s", tc.name, r.status, r.body, tc.code)
			}
		}
		if o := getOrg(t, b, owner.caller, org.ID); o.OwnerID != owner.ID {
			t.Errorf("owner after refused transfers: got %s, want %s", o.OwnerID, owner.ID)
		}
	})
	t.Run("owner transfer to a pending member who accepted nothing yet (require_acceptance)", func(t *testing.T) {
		u := b.newUser(freshEmail("accepting"))
		r := b.req(t, owner.caller, "POST", "/v1/organizations/"+org.ID+"/members", map[string]any{"email": u.Email, "require_acceptance": true})
		want(t, r, http.StatusCreated, "")
		r = b.req(t, owner.caller, "PUT", "/v1/organizations/"+org.ID+"/owner", map[string]any{"user_id": u.ID})
		want(t, r, http.StatusConflict, "member_not_active")
	})
	t.Run("owner transfer", func(t *testing.T) {
		o := b.newOrg(owner, "Transfer Club")
		next := b.newUser(freshEmail("next"))
		b.addMember(owner.caller, o.ID, next.Email, false)
		r := b.req(t, owner.caller, "PUT", "/v1/organizations/"+o.ID+"/owner", map[string]any{"user_id": next.ID})
		want(t, r, http.StatusOK, "")
		var got domain.Organization
		r.decode(t, &got)
		if got.OwnerID != next.ID {
			t.Errorf("owner_id: got %s, want %s", got.OwnerID, next.ID)
		}
		if m := getMember(t, b, next.caller, o.ID, next.ID); !m.IsOwner || !m.IsAdmin || m.Role != domain.RoleOwner {
			t.Errorf("new owner: got is_owner %v is_admin %v role %q, want true true owner", m.IsOwner, m.IsAdmin, m.Role)
		}
		if m := getMember(t, b, next.caller, o.ID, owner.ID); m.IsOwner || !m.IsAdmin || m.Role != domain.RoleAdmin {
			t.Errorf("old owner: got is_owner %v is_admin %v role %q, want false true admin", m.IsOwner, m.IsAdmin, m.Role)
		}
		// The old owner is an admin now: no more owner's rights.
		r = b.req(t, owner.caller, "PUT", "/v1/organizations/"+o.ID+"/owner", map[string]any{"user_id": owner.ID})
		want(t, r, http.StatusForbidden, "forbidden")
		// The old owner may now be removed (they are not the owner).
		want(t, b.req(t, next.caller, "DELETE", "/v1/organizations/"+o.ID+"/members/"+owner.ID, nil), http.StatusNoContent, "")
	})
	t.Run("leave", func(t *testing.T) {
		o := b.newOrg(owner, "Leavers")
		u := b.newUser(freshEmail("leaver"))
		b.addMember(owner.caller, o.ID, u.Email, false)
		want(t, b.req(t, u.caller, "DELETE", "/v1/organizations/"+o.ID+"/members/"+u.ID, nil), http.StatusNoContent, "")
		want(t, b.req(t, u.caller, "GET", "/v1/organizations/"+o.ID, nil), http.StatusNotFound, "not_found")
		want(t, b.req(t, owner.caller, "GET", "/v1/organizations/"+o.ID+"/members/"+u.ID, nil), http.StatusNotFound, "not_found")
		// The owner cannot leave.
		want(t, b.req(t, owner.caller, "DELETE", "/v1/organizations/"+o.ID+"/members/"+owner.ID, nil), http.StatusConflict, "owner_cannot_be_removed")
	})
	t.Run("a plain member cannot remove another", func(t *testing.T) {
		want(t, b.req(t, member.caller, "DELETE", "/v1/organizations/"+org.ID+"/members/"+admin.ID, nil), http.StatusForbidden, "forbidden")
	})
	t.Run("removing a non-member is not_found", func(t *testing.T) {
		want(t, b.req(t, admin.caller, "DELETE", "/v1/organizations/"+org.ID+"/members/"+outsider.ID, nil), http.StatusNotFound, "not_found")
	})
}

func TestAPIRulesSlugs(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	owner := b.newUser("owner@example.com")
	post := func(t *testing.T, body map[string]any) res {
		t.Helper()
		return b.req(t, owner.caller, "POST", "/v1/organizations", body)
	}
	first := b.newOrg(owner, "Vizsla Club")
	second := b.newOrg(owner, "Vizsla Club")
	third := b.newOrg(owner, "vizsla  CLUB!")
	for _, tc := range []struct {
		got, want string
	}{{first.Slug, "vizsla-club"}, {second.Slug, "vizsla-club-2"}, {third.Slug, "vizsla-club-3"}} {
		if tc.got != tc.want {
			t.Errorf("generated slug: got %q, want %q", tc.got, tc.want)
		}
	}
	if o := b.newOrg(owner, "Ærøskøbing Café"); o.Slug != "aeroskobing-cafe" {
		t.Errorf("ASCII-folded slug: got %q, want aeroskobing-cafe", o.Slug)
	}

	t.Run("kept on rename", func(t *testing.T) {
		r := b.req(t, owner.caller, "PATCH", "/v1/organizations/"+first.ID, map[string]any{"name": "Magyar Vizsla Club"})
		want(t, r, http.StatusOK, "")
		var o domain.Organization
		r.decode(t, &o)
		if o.Name != "Magyar Vizsla Club" || o.Slug != "vizsla-club" {
			t.Errorf("renamed: got name %q slug %q, want Magyar Vizsla Club vizsla-club", o.Name, o.Slug)
		}
	})
	t.Run("explicit change", func(t *testing.T) {
		r := b.req(t, owner.caller, "PATCH", "/v1/organizations/"+second.ID, map[string]any{"slug": "vizslas"})
		want(t, r, http.StatusOK, "")
		if o := getOrg(t, b, owner.caller, second.ID); o.Slug != "vizslas" {
			t.Errorf("slug: got %q, want vizslas", o.Slug)
		}
		// The freed slug is generated again.
		if o := b.newOrg(owner, "Vizsla Club"); o.Slug != "vizsla-club-2" {
			t.Errorf("slug after vizsla-club-2 was freed: got %q, want vizsla-club-2", o.Slug)
		}
	})
	t.Run("given on create", func(t *testing.T) {
		r := post(t, map[string]any{"name": "Whatever", "slug": "my-own-slug"})
		want(t, r, http.StatusCreated, "")
		var o domain.Organization
		r.decode(t, &o)
		if o.Slug != "my-own-slug" {
			t.Errorf("given slug: got %q, want my-own-slug", o.Slug)
		}
	})
	t.Run("slug_taken", func(t *testing.T) {
		want(t, post(t, map[string]any{"name": "Other", "slug": "vizsla-club"}), http.StatusConflict, "slug_taken")
		r := b.req(t, owner.caller, "PATCH", "/v1/organizations/"+third.ID, map[string]any{"slug": "vizsla-club"})
		want(t, r, http.StatusConflict, "slug_taken")
		if o := getOrg(t, b, owner.caller, third.ID); o.Slug != "vizsla-club-3" {
			t.Errorf("slug after slug_taken: got %q, want vizsla-club-3", o.Slug)
		}
		r = b.req(t, anonymous, "POST", "/v1/signup", map[string]any{
			"email": freshEmail("signup"), "name": "S", "organization_name": "S", "organization_slug": "vizsla-club",
		})
		want(t, r, http.StatusConflict, "slug_taken")
	})
	t.Run("invalid slug", func(t *testing.T) {
		for _, s := range []string{"Upper", "with space", "-lead", "trail-", "double--hyphen", "", strings.Repeat("a", 101)} {
			wantLocation(t, post(t, map[string]any{"name": "X", "slug": s}), "body.slug")
		}
	})
}

func TestAPIRulesDeleteOrganization(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	owner := b.newUser("owner@example.com")
	admin := b.newUser("admin@example.com")
	org := b.newOrg(owner, "Doomed")
	other := b.newOrg(owner, "Survivor")
	b.addMember(owner.caller, org.ID, admin.Email, true)
	b.addMember(owner.caller, other.ID, admin.Email, true)
	invited := b.addMember(owner.caller, org.ID, freshEmail("invited"), false)

	want(t, b.req(t, admin.caller, "DELETE", "/v1/organizations/"+org.ID, nil), http.StatusForbidden, "forbidden")
	want(t, b.req(t, owner.caller, "DELETE", "/v1/organizations/"+org.ID, nil), http.StatusNoContent, "")

	want(t, b.req(t, owner.caller, "GET", "/v1/organizations/"+org.ID, nil), http.StatusNotFound, "not_found")
	want(t, b.req(t, service(), "GET", "/v1/organizations/"+org.ID, nil), http.StatusNotFound, "not_found")
	want(t, b.req(t, owner.caller, "DELETE", "/v1/organizations/"+org.ID, nil), http.StatusNotFound, "not_found")
	for _, q := range []string{
		`SELECT count(*) FROM memberships WHERE organization_id = $1`,
		`SELECT count(*) FROM invitations WHERE organization_id = $1`,
		`SELECT count(*) FROM organizations WHERE id = $1`,
	} {
		if n := b.count(t, q, org.ID); n != 0 {
			t.Errorf("%s: got %d, want 0", q, n)
		}
	}
	for _, u := range []domain.User{owner.User, admin.User, invited.User} {
		r := b.req(t, service(), "GET", "/v1/users?email="+u.Email, nil)
		want(t, r, http.StatusOK, "")
		var p page[domain.User]
		r.decode(t, &p)
		if len(p.Items) != 1 || p.Items[0].ID != u.ID {
			t.Errorf("user %s after deleting the organization: got %s, want them kept", u.Email, r.body)
		}
	}
	t.Run("GET /v1/users/{id}", func(t *testing.T) {
		for _, id := range []string{owner.ID, admin.ID, invited.User.ID} {
			r := b.req(t, service(), "GET", "/v1/users/"+id, nil)
			want(t, r, http.StatusOK, "")
		}
	})
	// The users' other organizations are untouched.
	if n := b.count(t, `SELECT count(*) FROM memberships WHERE organization_id = $1`, other.ID); n != 2 {
		t.Errorf("other organization's members: got %d, want 2", n)
	}
	want(t, b.req(t, admin.caller, "GET", "/v1/organizations/"+other.ID, nil), http.StatusOK, "")
}

func TestAPIRulesSessions(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	const password = "correct horse battery"
	u, _ := b.signupActivated(t, "Session.User@example.com", password, "Session Org")

	login := func(t *testing.T, email, pw string) res {
		t.Helper()
		return b.req(t, anonymous, "POST", "/v1/sessions", map[string]any{"email": email, "password": pw})
	}
	t.Run("right password", func(t *testing.T) {
		for _, email := range []string{"Session.User@example.com", "session.user@EXAMPLE.com"} {
			r := login(t, email, password)
			want(t, r, http.StatusCreated, "")
			var s struct {
				Token string      `json:"token"`
				User  domain.User `json:"user"`
			}
			r.decode(t, &s)
			if s.Token == "" || s.User.ID != u.ID {
				t.Errorf("session: got %s, want a token for user %s", r.body, u.ID)
			}
			want(t, b.req(t, caller{bearer: s.Token}, "GET", "/v1/organizations", nil), http.StatusOK, "")
		}
	})
	t.Run("wrong password and unknown email get the same answer", func(t *testing.T) {
		wrong := login(t, "Session.User@example.com", "wrong password!")
		unknown := login(t, "nobody@example.com", password)
		want(t, wrong, http.StatusUnauthorized, "unauthenticated")
		want(t, unknown, http.StatusUnauthorized, "unauthenticated")
		if !bytes.Equal(wrong.body, unknown.body) {
			t.Errorf("401 bodies differ: wrong password %s, unknown email %s", wrong.body, unknown.body)
		}
		// An invited (inactive, passwordless) user gets the same answer too.
		owner := b.newUser("inviter@example.com")
		org := b.newOrg(owner, "Inviters")
		inv := b.addMember(owner.caller, org.ID, freshEmail("inactive"), false)
		inactive := login(t, inv.User.Email, password)
		want(t, inactive, http.StatusUnauthorized, "unauthenticated")
		if !bytes.Equal(inactive.body, unknown.body) {
			t.Errorf("401 bodies differ: inactive user %s, unknown email %s", inactive.body, unknown.body)
		}
	})
	t.Run("me", func(t *testing.T) {
		want(t, b.req(t, anonymous, "GET", "/v1/me", nil), http.StatusUnauthorized, "unauthenticated")
		want(t, b.req(t, caller{bearer: "not-a-token"}, "GET", "/v1/me", nil), http.StatusUnauthorized, "unauthenticated")
		want(t, b.req(t, service(), "GET", "/v1/me", nil), http.StatusForbidden, "forbidden")
		r := b.req(t, u.caller, "GET", "/v1/me", nil)
		want(t, r, http.StatusOK, "")
		var me domain.User
		r.decode(t, &me)
		if me.ID != u.ID || me.Email != "Session.User@example.com" || !me.IsActive {
			t.Errorf("me: got %+v, want user %s as given, active", me, u.ID)
		}
		if bytes.Contains(bytes.ToLower(r.body), []byte("password")) {
			t.Errorf("me: got %s, want no password field", r.body)
		}
		r = b.req(t, onBehalf(u.ID), "GET", "/v1/me", nil)
		want(t, r, http.StatusOK, "")
		r.decode(t, &me)
		if me.ID != u.ID {
			t.Errorf("me on behalf: got %s, want %s", me.ID, u.ID)
		}
	})
	t.Run("logout ends only that session", func(t *testing.T) {
		var s1, s2 struct {
			Token string `json:"token"`
		}
		r := login(t, "Session.User@example.com", password)
		want(t, r, http.StatusCreated, "")
		r.decode(t, &s1)
		r = login(t, "Session.User@example.com", password)
		want(t, r, http.StatusCreated, "")
		r.decode(t, &s2)
		one, two := caller{bearer: s1.Token}, caller{bearer: s2.Token}
		want(t, b.req(t, one, "GET", "/v1/organizations", nil), http.StatusOK, "")
		want(t, b.req(t, one, "DELETE", "/v1/sessions/current", nil), http.StatusNoContent, "")
		want(t, b.req(t, one, "GET", "/v1/organizations", nil), http.StatusUnauthorized, "unauthenticated")
		want(t, b.req(t, one, "GET", "/v1/me", nil), http.StatusUnauthorized, "unauthenticated")
		want(t, b.req(t, one, "DELETE", "/v1/sessions/current", nil), http.StatusUnauthorized, "unauthenticated")
		want(t, b.req(t, two, "GET", "/v1/organizations", nil), http.StatusOK, "")
		want(t, b.req(t, u.caller, "GET", "/v1/organizations", nil), http.StatusOK, "")
		// A service key has no session to end.
		want(t, b.req(t, service(), "DELETE", "/v1/sessions/current", nil), http.StatusForbidden, "forbidden")
		want(t, b.req(t, anonymous, "DELETE", "/v1/sessions/current", nil), http.StatusUnauthorized, "unauthenticated")
	})
}

func TestAPIRulesUsers(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	upsert := func(t *testing.T, c caller, body map[string]any) res {
		t.Helper()
		return b.req(t, c, "POST", "/v1/users", body)
	}
	decode := func(t *testing.T, r res) domain.User {
		t.Helper()
		var u domain.User
		r.decode(t, &u)
		return u
	}

	var byExt domain.User
	t.Run("upsert by external_id", func(t *testing.T) {
		r := upsert(t, service(), map[string]any{"email": "ext@example.com", "name": "Ext", "external_id": "crm-1"})
		want(t, r, http.StatusCreated, "")
		byExt = decode(t, r)
		if byExt.ExternalID == nil || *byExt.ExternalID != "crm-1" || byExt.IsActive {
			t.Errorf("created: got %s, want external_id crm-1, inactive", r.body)
		}
		r = upsert(t, service(), map[string]any{"email": "ext.renamed@example.com", "external_id": "crm-1", "is_active": true})
		want(t, r, http.StatusOK, "")
		u := decode(t, r)
		if u.ID != byExt.ID || u.Email != "ext.renamed@example.com" || u.Name != "Ext" || !u.IsActive {
			t.Errorf("updated by external_id: got %s, want id %s, new email, name kept, active", r.body, byExt.ID)
		}
		byExt = u
	})
	var byEmail domain.User
	t.Run("upsert by email", func(t *testing.T) {
		r := upsert(t, service(), map[string]any{"email": "Plain@Example.com"})
		want(t, r, http.StatusCreated, "")
		byEmail = decode(t, r)
		r = upsert(t, service(), map[string]any{"email": "plain@example.com", "name": "Plain"})
		want(t, r, http.StatusOK, "")
		if u := decode(t, r); u.ID != byEmail.ID || u.Name != "Plain" {
			t.Errorf("updated by email: got %s, want id %s name Plain", r.body, byEmail.ID)
		}
		// An email found without external_id takes the given one.
		r = upsert(t, service(), map[string]any{"email": "plain@example.com", "external_id": "crm-2"})
		want(t, r, http.StatusOK, "")
		if u := decode(t, r); u.ID != byEmail.ID || u.ExternalID == nil || *u.ExternalID != "crm-2" {
			t.Errorf("external_id set by email: got %s, want id %s external_id crm-2", r.body, byEmail.ID)
		}
	})
	t.Run("conflicts", func(t *testing.T) {
		// external_id crm-1 names byExt; moving it to byEmail's address is taken.
		r := upsert(t, service(), map[string]any{"email": "PLAIN@example.com", "external_id": "crm-1"})
		want(t, r, http.StatusConflict, "email_taken")
		// byEmail has external_id crm-2: another external_id with its email is a conflict.
		r = upsert(t, service(), map[string]any{"email": "plain@example.com", "external_id": "crm-3"})
		if r.status != http.StatusConflict || (r.code() != "email_taken" && r.code() != "external_id_taken") {
			t.Errorf("other external_id for a taken email: got %d %s, want 409 email_taken or external_id_taken", r.status, r.body)
		}
		if n := b.count(t, `SELECT count(*) FROM users`); n != 2 {
			t.Errorf("users after conflicts: got %d, want 2", n)
		}
	})
	t.Run("only a service key upserts", func(t *testing.T) {
		u := b.newUser("someone@example.com")
		want(t, upsert(t, u.caller, map[string]any{"email": "x@example.com"}), http.StatusForbidden, "forbidden")
		want(t, upsert(t, onBehalf(u.ID), map[string]any{"email": "x@example.com"}), http.StatusForbidden, "forbidden")
		want(t, upsert(t, anonymous, map[string]any{"email": "x@example.com"}), http.StatusUnauthorized, "unauthenticated")
	})
	t.Run("list by email is case-insensitive", func(t *testing.T) {
		for _, q := range []string{"PLAIN@EXAMPLE.COM", "plain@example.com", "Plain@Example.com"} {
			r := b.req(t, service(), "GET", "/v1/users?email="+q, nil)
			want(t, r, http.StatusOK, "")
			var p page[domain.User]
			r.decode(t, &p)
			if len(p.Items) != 1 || p.Items[0].ID != byEmail.ID {
				t.Errorf("GET /v1/users?email=%s: got %s, want only %s", q, r.body, byEmail.ID)
			}
		}
		r := b.req(t, service(), "GET", "/v1/users?external_id=crm-1", nil)
		want(t, r, http.StatusOK, "")
		var p page[domain.User]
		r.decode(t, &p)
		if len(p.Items) != 1 || p.Items[0].ID != byExt.ID {
			t.Errorf("GET /v1/users?external_id=crm-1: got %s, want only %s", r.body, byExt.ID)
		}
	})
	t.Run("a user sees only themself", func(t *testing.T) {
		a := b.newUser("a@example.com")
		other := b.newUser("b@example.com")
		want(t, b.req(t, a.caller, "GET", "/v1/users/"+other.ID, nil), http.StatusNotFound, "not_found")
		want(t, b.req(t, onBehalf(a.ID), "GET", "/v1/users/"+other.ID, nil), http.StatusNotFound, "not_found")
		want(t, b.req(t, anonymous, "GET", "/v1/users/"+a.ID, nil), http.StatusUnauthorized, "unauthenticated")
		r := b.req(t, a.caller, "GET", "/v1/users?email="+other.Email, nil)
		want(t, r, http.StatusOK, "")
		var p page[domain.User]
		r.decode(t, &p)
		if len(p.Items) != 0 {
			t.Errorf("user listing another's email: got %s, want no items", r.body)
		}
		r = b.req(t, a.caller, "GET", "/v1/users/"+a.ID, nil)
		want(t, r, http.StatusOK, "")
		want(t, b.req(t, service(), "GET", "/v1/users/"+other.ID, nil), http.StatusOK, "")
	})
}

// TestAPIActivationJSON activates a signed-up user through POST
// /v1/activation/{user_id}/{token}: a session comes back, the password works, the link
// dies.
func TestAPIActivationJSON(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	r := b.req(t, anonymous, "POST", "/v1/signup", map[string]any{"email": "act@example.com", "name": "Act", "organization_name": "Act Org"})
	want(t, r, http.StatusAccepted, "")
	userID := b.userIDByEmail(t, "act@example.com")
	link := "/v1/activation/" + userID + "/" + b.activationToken(t, userID)
	want(t, b.req(t, anonymous, "GET", link, nil), http.StatusOK, "")
	r = b.req(t, anonymous, "POST", link, map[string]any{"password": "a good password", "name": "Activated"})
	want(t, r, http.StatusOK, "")
	var act struct {
		User    domain.User `json:"user"`
		Session struct {
			Token string `json:"token"`
		} `json:"session"`
	}
	r.decode(t, &act)
	if !act.User.IsActive || act.User.Name != "Activated" || act.Session.Token == "" {
		t.Fatalf("activation: got %s, want an active user named Activated and a session", r.body)
	}
	want(t, b.req(t, caller{bearer: act.Session.Token}, "GET", "/v1/organizations", nil), http.StatusOK, "")
	r = b.req(t, anonymous, "POST", "/v1/sessions", map[string]any{"email": "act@example.com", "password": "a good password"})
	want(t, r, http.StatusCreated, "")
	want(t, b.req(t, anonymous, "POST", link, map[string]any{"password": "a good password"}), http.StatusNotFound, "token_invalid")
	want(t, b.req(t, anonymous, "GET", link, nil), http.StatusNotFound, "token_invalid")
}
