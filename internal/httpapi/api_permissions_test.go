package httpapi_test

import (
	"fmt"
	"net/http"
	"slices"
	"testing"

	"github.com/orgs-dev/orgs/internal/domain"
)

// The permission truth table of django-organizations' tests, ported: a superuser (the
// service key), an owner, an admin, a plain member and an outsider, over three
// organizations, one of them inactive. Every organization, member and invitation endpoint
// is called by every kind of caller on an active and an inactive organization.

// permFixture is the people of the truth table.
type permFixture struct {
	owner, admin, member, outsider user
}

// permOrg is one organization of the fixture: owner, admin and member are its members,
// and invitee has a pending invitation.
type permOrg struct {
	org        domain.Organization
	inviteeID  string
	invitation string
}

// newPermOrg creates an organization with the fixture's members and a pending invitee;
// inactive deactivates it afterwards (PATCH is_active false).
func newPermOrg(t *testing.T, b *apiBundle, f permFixture, name string, inactive bool) permOrg {
	t.Helper()
	org := b.newOrg(f.owner, name)
	b.addMember(service(), org.ID, f.admin.Email, true)
	b.addMember(service(), org.ID, f.member.Email, false)
	inv := addInvitee(t, b, org.ID)
	if inactive {
		r := b.req(t, f.owner.caller, "PATCH", "/v1/organizations/"+org.ID, map[string]any{"is_active": false})
		want(t, r, http.StatusOK, "")
		r.decode(t, &org)
		if org.IsActive {
			t.Fatalf("PATCH is_active false: got is_active true")
		}
	}
	return permOrg{org: org, inviteeID: inv.UserID, invitation: inv.ID}
}

// addInvitee invites a new email into orgID with the service key and returns the invitation.
func addInvitee(t *testing.T, b *apiBundle, orgID string) domain.Invitation {
	t.Helper()
	r := b.req(t, service(), "POST", "/v1/organizations/"+orgID+"/members", map[string]any{"email": freshEmail("invitee")})
	want(t, r, http.StatusCreated, "")
	var m struct {
		Invitation *domain.Invitation `json:"invitation"`
	}
	r.decode(t, &m)
	if m.Invitation == nil {
		t.Fatalf("invite: got %s, want an invitation", r.body)
	}
	return *m.Invitation
}

// permEndpoint is one endpoint of the table: prep returns the path and body of one call
// against o (it may create what the call consumes), need is the least role that may call
// it, and ok the success status.
type permEndpoint struct {
	name string
	need domain.Role
	ok   int
	// fresh: each call gets its own organization (the call consumes it).
	fresh bool
	prep  func(t *testing.T, b *apiBundle, f permFixture, o permOrg) (method, path string, body any)
}

var permEndpoints = []permEndpoint{
	{name: "GET org", need: domain.RoleMember, ok: http.StatusOK,
		prep: func(t *testing.T, b *apiBundle, f permFixture, o permOrg) (string, string, any) {
			return "GET", "/v1/organizations/" + o.org.ID, nil
		}},
	{name: "PATCH org", need: domain.RoleAdmin, ok: http.StatusOK,
		prep: func(t *testing.T, b *apiBundle, f permFixture, o permOrg) (string, string, any) {
			return "PATCH", "/v1/organizations/" + o.org.ID, map[string]any{"metadata": map[string]any{"n": emailSeq.Add(1)}}
		}},
	{name: "DELETE org", need: domain.RoleOwner, ok: http.StatusNoContent, fresh: true,
		prep: func(t *testing.T, b *apiBundle, f permFixture, o permOrg) (string, string, any) {
			return "DELETE", "/v1/organizations/" + o.org.ID, nil
		}},
	{name: "PUT owner", need: domain.RoleOwner, ok: http.StatusOK, fresh: true,
		prep: func(t *testing.T, b *apiBundle, f permFixture, o permOrg) (string, string, any) {
			return "PUT", "/v1/organizations/" + o.org.ID + "/owner", map[string]any{"user_id": f.admin.ID}
		}},
	{name: "GET members", need: domain.RoleMember, ok: http.StatusOK,
		prep: func(t *testing.T, b *apiBundle, f permFixture, o permOrg) (string, string, any) {
			return "GET", "/v1/organizations/" + o.org.ID + "/members", nil
		}},
	{name: "POST members", need: domain.RoleAdmin, ok: http.StatusCreated,
		prep: func(t *testing.T, b *apiBundle, f permFixture, o permOrg) (string, string, any) {
			return "POST", "/v1/organizations/" + o.org.ID + "/members", map[string]any{"email": freshEmail("added")}
		}},
	{name: "POST members:bulk", need: domain.RoleAdmin, ok: http.StatusOK,
		prep: func(t *testing.T, b *apiBundle, f permFixture, o permOrg) (string, string, any) {
			return "POST", "/v1/organizations/" + o.org.ID + "/members:bulk", map[string]any{"members": []any{map[string]any{"email": freshEmail("bulk")}}}
		}},
	{name: "GET member", need: domain.RoleMember, ok: http.StatusOK,
		prep: func(t *testing.T, b *apiBundle, f permFixture, o permOrg) (string, string, any) {
			return "GET", "/v1/organizations/" + o.org.ID + "/members/" + f.member.ID, nil
		}},
	{name: "PATCH member", need: domain.RoleAdmin, ok: http.StatusOK,
		prep: func(t *testing.T, b *apiBundle, f permFixture, o permOrg) (string, string, any) {
			return "PATCH", "/v1/organizations/" + o.org.ID + "/members/" + f.member.ID, map[string]any{"metadata": map[string]any{"n": emailSeq.Add(1)}}
		}},
	{name: "DELETE member", need: domain.RoleAdmin, ok: http.StatusNoContent,
		prep: func(t *testing.T, b *apiBundle, f permFixture, o permOrg) (string, string, any) {
			target := b.newUser(freshEmail("target"))
			b.addMember(service(), o.org.ID, target.Email, false)
			return "DELETE", "/v1/organizations/" + o.org.ID + "/members/" + target.ID, nil
		}},
	{name: "POST reminders", need: domain.RoleAdmin, ok: http.StatusAccepted,
		prep: func(t *testing.T, b *apiBundle, f permFixture, o permOrg) (string, string, any) {
			return "POST", "/v1/organizations/" + o.org.ID + "/members/" + o.inviteeID + "/reminders", nil
		}},
	{name: "GET invitations", need: domain.RoleAdmin, ok: http.StatusOK,
		prep: func(t *testing.T, b *apiBundle, f permFixture, o permOrg) (string, string, any) {
			return "GET", "/v1/organizations/" + o.org.ID + "/invitations", nil
		}},
	{name: "DELETE invitation", need: domain.RoleAdmin, ok: http.StatusNoContent,
		prep: func(t *testing.T, b *apiBundle, f permFixture, o permOrg) (string, string, any) {
			inv := addInvitee(t, b, o.org.ID)
			return "DELETE", "/v1/organizations/" + o.org.ID + "/invitations/" + inv.ID, nil
		}},
}

// permCaller is one kind of caller: role is the rights it has in the fixture's
// organizations ("" for none); super passes every check; status, when set, is the
// answer whatever the endpoint.
type permCaller struct {
	name   string
	c      func(f permFixture) caller
	role   domain.Role
	super  bool
	status int
	code   string
}

var permCallers = []permCaller{
	{name: "anonymous", c: func(permFixture) caller { return anonymous }, status: http.StatusUnauthorized, code: "unauthenticated"},
	{name: "outsider", c: func(f permFixture) caller { return f.outsider.caller }},
	{name: "member", c: func(f permFixture) caller { return f.member.caller }, role: domain.RoleMember},
	{name: "admin", c: func(f permFixture) caller { return f.admin.caller }, role: domain.RoleAdmin},
	{name: "owner", c: func(f permFixture) caller { return f.owner.caller }, role: domain.RoleOwner},
	{name: "superuser", c: func(permFixture) caller { return service() }, super: true},
	{name: "service for outsider", c: func(f permFixture) caller { return onBehalf(f.outsider.ID) }},
	{name: "service for member", c: func(f permFixture) caller { return onBehalf(f.member.ID) }, role: domain.RoleMember},
	{name: "service for admin", c: func(f permFixture) caller { return onBehalf(f.admin.ID) }, role: domain.RoleAdmin},
	{name: "service for owner", c: func(f permFixture) caller { return onBehalf(f.owner.ID) }, role: domain.RoleOwner},
	{name: "member session with On-Behalf-Of", c: func(f permFixture) caller {
		return caller{bearer: f.member.bearer, onBehalf: f.owner.ID}
	}, status: http.StatusForbidden, code: "forbidden"},
	{name: "owner session with On-Behalf-Of", c: func(f permFixture) caller {
		return caller{bearer: f.owner.bearer, onBehalf: f.owner.ID}
	}, status: http.StatusForbidden, code: "forbidden"},
}

// expect returns the status and code pc should get from e.
func (pc permCaller) expect(e permEndpoint) (int, string) {
	switch {
	case pc.status != 0:
		return pc.status, pc.code
	case pc.super || (pc.role != "" && pc.role.AtLeast(e.need)):
		return e.ok, ""
	case pc.role == "":
		return http.StatusNotFound, "not_found"
	}
	return http.StatusForbidden, "forbidden"
}

func newPermFixture(b *apiBundle) permFixture {
	return permFixture{
		owner:    b.newUser("owner@example.com"),
		admin:    b.newUser("admin@example.com"),
		member:   b.newUser("member@example.com"),
		outsider: b.newUser("outsider@example.com"),
	}
}

func TestAPIPermissionTruthTable(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	f := newPermFixture(b)
	// Three organizations, as in django-organizations' fixture; the outsider has one of
	// their own, so that "not a member" is not "a user with no organizations".
	nirvana := newPermOrg(t, b, f, "Nirvana", false)
	_ = newPermOrg(t, b, f, "Foo Fighters", false)
	scream := newPermOrg(t, b, f, "Scream", true)
	b.newOrg(f.outsider, "Outsiders")

	for _, state := range []struct {
		name     string
		inactive bool
		org      permOrg
	}{{"active", false, nirvana}, {"inactive", true, scream}} {
		for _, e := range permEndpoints {
			for _, pc := range permCallers {
				t.Run(fmt.Sprintf("%s/%s/%s", state.name, e.name, pc.name), func(t *testing.T) {
					o := state.org
					if e.fresh {
						o = newPermOrg(t, b, f, "Fresh "+e.name, state.inactive)
					}
					method, path, body := e.prep(t, b, f, o)
					r := b.req(t, pc.c(f), method, path, body)
					status, code := pc.expect(e)
					want(t, r, status, code)
				})
			}
		}
	}
}

func TestAPIPermissionOrganizationList(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	f := newPermFixture(b)
	nirvana := newPermOrg(t, b, f, "Nirvana", false)
	foo := newPermOrg(t, b, f, "Foo Fighters", false)
	scream := newPermOrg(t, b, f, "Scream", true)
	own := b.newOrg(f.outsider, "Outsiders")
	mine := []string{nirvana.org.ID, foo.org.ID}
	all := []string{nirvana.org.ID, foo.org.ID, scream.org.ID}

	ids := func(t *testing.T, c caller, query string) []string {
		t.Helper()
		orgs, _ := collect[domain.Organization](t, b, c, "/v1/organizations?limit=200"+query, 200)
		var out []string
		for _, o := range orgs {
			out = append(out, o.ID)
		}
		return out
	}
	for _, tc := range []struct {
		name        string
		c           caller
		has, hasNot []string // without include_inactive
		hasAll      []string // with include_inactive=true
	}{
		{"owner", f.owner.caller, mine, []string{scream.org.ID, own.ID}, all},
		{"admin", f.admin.caller, mine, []string{scream.org.ID, own.ID}, all},
		{"member", f.member.caller, mine, []string{scream.org.ID, own.ID}, all},
		{"service for member", onBehalf(f.member.ID), mine, []string{scream.org.ID, own.ID}, all},
		{"outsider", f.outsider.caller, []string{own.ID}, all, []string{own.ID}},
		{"superuser", service(), append([]string{own.ID}, mine...), []string{scream.org.ID}, append([]string{own.ID}, all...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ids(t, tc.c, "")
			for _, id := range tc.has {
				if !slices.Contains(got, id) {
					t.Errorf("list: got %v, want it to contain %s", got, id)
				}
			}
			for _, id := range tc.hasNot {
				if slices.Contains(got, id) {
					t.Errorf("list: got %v, want it without %s", got, id)
				}
			}
			gotAll := ids(t, tc.c, "&include_inactive=true")
			for _, id := range tc.hasAll {
				if !slices.Contains(gotAll, id) {
					t.Errorf("list include_inactive: got %v, want it to contain %s", gotAll, id)
				}
			}
			if tc.name == "outsider" && len(gotAll) != 1 {
				t.Errorf("outsider list include_inactive: got %v, want only %s", gotAll, own.ID)
			}
		})
	}
	t.Run("inactive reachable by id", func(t *testing.T) {
		for _, c := range []caller{f.owner.caller, f.admin.caller, f.member.caller, service()} {
			r := b.req(t, c, "GET", "/v1/organizations/"+scream.org.ID, nil)
			want(t, r, http.StatusOK, "")
			var o domain.Organization
			r.decode(t, &o)
			if o.IsActive {
				t.Errorf("GET inactive org: got is_active true, want false")
			}
		}
		want(t, b.req(t, f.outsider.caller, "GET", "/v1/organizations/"+scream.org.ID, nil), http.StatusNotFound, "not_found")
	})
	t.Run("anonymous", func(t *testing.T) {
		want(t, b.req(t, anonymous, "GET", "/v1/organizations", nil), http.StatusUnauthorized, "unauthenticated")
		want(t, b.req(t, anonymous, "GET", "/v1/organizations?include_inactive=true", nil), http.StatusUnauthorized, "unauthenticated")
	})
	t.Run("session with On-Behalf-Of", func(t *testing.T) {
		r := b.req(t, caller{bearer: f.member.bearer, onBehalf: f.owner.ID}, "GET", "/v1/organizations", nil)
		want(t, r, http.StatusForbidden, "forbidden")
	})
	t.Run("service for an unknown user", func(t *testing.T) {
		r := b.req(t, onBehalf("00000000-0000-7000-8000-000000000000"), "GET", "/v1/organizations", nil)
		if r.status != http.StatusUnauthorized && r.status != http.StatusForbidden && r.status != http.StatusNotFound {
			t.Errorf("got %d %s, want a 401, 403 or 404 problem", r.status, r.body)
		}
	})
}
