package httpapi_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/orgs-dev/orgs/internal/domain"
	"github.com/orgs-dev/orgs/internal/events/eventstest"
	"github.com/orgs-dev/orgs/orgsevents"
)

// Outbox rows per change, in order: every endpoint that changes state writes exactly its
// events from the contract's catalogue, in the same transaction.

// eventRecorder remembers how many outbox rows each organization had, so that a step's
// new rows can be checked.
type eventRecorder struct {
	b    *apiBundle
	seen map[string]int
}

// since returns orgID's outbox rows written since the last call for orgID.
func (e *eventRecorder) since(t *testing.T, orgID string) []outboxRow {
	t.Helper()
	rows := e.b.orgEvents(t, orgID)
	n := e.seen[orgID]
	e.seen[orgID] = len(rows)
	return rows[n:]
}

func types(rows []outboxRow) []string {
	out := []string{}
	for _, r := range rows {
		out = append(out, r.Type)
	}
	return out
}

// wantEvents fails unless orgID's new outbox rows have exactly the types want, in order.
func (e *eventRecorder) want(t *testing.T, orgID string, want ...string) []outboxRow {
	t.Helper()
	rows := e.since(t, orgID)
	if got := types(rows); !slices.Equal(got, want) {
		t.Errorf("outbox of %s: got %v, want %v", orgID, got, want)
	}
	return rows
}

// dataOf decodes an outbox row's data.
func dataOf(t *testing.T, r outboxRow) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Data, &m); err != nil {
		t.Fatalf("%s data %s: %v", r.Type, r.Data, err)
	}
	return m
}

func TestAPIEvents(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	ev := &eventRecorder{b: b, seen: map[string]int{}}
	owner := b.newUser("owner@example.com")
	active := b.newUser("active@example.com")
	accepter := b.newUser("accepter@example.com")
	decliner := b.newUser("decliner@example.com")
	leaver := b.newUser("leaver@example.com")
	var org domain.Organization

	t.Run("create organization", func(t *testing.T) {
		org = b.newOrg(owner, "Events Club")
		rows := ev.want(t, org.ID, "org_created", "member_added")
		if len(rows) == 2 {
			d := dataOf(t, rows[0])
			if d["owner_id"] != owner.ID || d["actor_id"] != owner.ID {
				t.Errorf("org_created data: got %s, want owner_id and actor_id %s", rows[0].Data, owner.ID)
			}
			if o, _ := d["organization"].(map[string]any); o == nil || o["id"] != org.ID {
				t.Errorf("org_created data: got %s, want organization %s", rows[0].Data, org.ID)
			}
			d = dataOf(t, rows[1])
			if u, _ := d["user"].(map[string]any); u == nil || u["id"] != owner.ID || d["is_admin"] != true {
				t.Errorf("member_added data: got %s, want user %s, is_admin true", rows[1].Data, owner.ID)
			}
			for _, r := range rows {
				if r.Subject != org.ID {
					t.Errorf("%s subject: got %s, want the organization %s", r.Type, r.Subject, org.ID)
				}
			}
		}
	})
	t.Run("add active member", func(t *testing.T) {
		b.addMember(owner.caller, org.ID, active.Email, false)
		rows := ev.want(t, org.ID, "member_added")
		if len(rows) == 1 {
			if d := dataOf(t, rows[0]); d["actor_id"] != owner.ID || d["is_admin"] != false {
				t.Errorf("member_added data: got %s, want actor_id %s is_admin false", rows[0].Data, owner.ID)
			}
		}
		b.addMember(owner.caller, org.ID, leaver.Email, false)
		ev.want(t, org.ID, "member_added")
	})
	t.Run("added by the service key", func(t *testing.T) {
		m := b.addMember(service(), org.ID, freshEmail("by-service"), false)
		rows := ev.want(t, org.ID, "member_added", "user_invited")
		if len(rows) == 2 {
			if d := dataOf(t, rows[0]); d["actor_id"] != nil {
				t.Errorf("member_added by a service: got actor_id %v, want null", d["actor_id"])
			}
		}
		want(t, b.req(t, owner.caller, "DELETE", "/v1/organizations/"+org.ID+"/members/"+m.User.ID, nil), http.StatusNoContent, "")
		ev.want(t, org.ID, "invitation_revoked", "member_removed")
	})
	var invited domain.Invitation
	t.Run("invite", func(t *testing.T) {
		invited = addInvitee(t, b, org.ID)
		rows := ev.want(t, org.ID, "member_added", "user_invited")
		if len(rows) == 2 {
			d := dataOf(t, rows[1])
			inv, _ := d["invitation"].(map[string]any)
			if inv == nil || inv["id"] != invited.ID || d["organization_id"] != org.ID {
				t.Errorf("user_invited data: got %s, want invitation %s", rows[1].Data, invited.ID)
			}
			if u, _ := dataOf(t, rows[0])["user"].(map[string]any); u == nil || u["is_active"] != false {
				t.Errorf("member_added of an invitee: got %s, want user.is_active false", rows[0].Data)
			}
		}
	})
	t.Run("remind", func(t *testing.T) {
		want(t, b.req(t, owner.caller, "POST", "/v1/organizations/"+org.ID+"/members/"+invited.UserID+"/reminders", nil), http.StatusAccepted, "")
		rows := ev.want(t, org.ID, "invitation_reminded")
		if len(rows) == 1 {
			if d := dataOf(t, rows[0]); d["invitation_id"] != invited.ID || d["reminders_sent"] != float64(1) {
				t.Errorf("invitation_reminded data: got %s, want invitation %s reminders_sent 1", rows[0].Data, invited.ID)
			}
		}
		want(t, b.req(t, owner.caller, "POST", "/v1/organizations/"+org.ID+"/members/"+active.ID+"/reminders", nil), http.StatusGone, "already_active")
		ev.want(t, org.ID)
	})
	t.Run("revoke", func(t *testing.T) {
		want(t, b.req(t, owner.caller, "DELETE", "/v1/organizations/"+org.ID+"/invitations/"+invited.ID, nil), http.StatusNoContent, "")
		rows := ev.want(t, org.ID, "invitation_revoked", "member_removed")
		if len(rows) == 2 {
			if d := dataOf(t, rows[0]); d["invitation_id"] != invited.ID || d["user_id"] != invited.UserID {
				t.Errorf("invitation_revoked data: got %s", rows[0].Data)
			}
		}
		want(t, b.req(t, owner.caller, "DELETE", "/v1/organizations/"+org.ID+"/invitations/"+invited.ID, nil), http.StatusConflict, "invitation_not_pending")
		ev.want(t, org.ID)
	})
	t.Run("accept and decline", func(t *testing.T) {
		invite := func(u user) string {
			r := b.req(t, owner.caller, "POST", "/v1/organizations/"+org.ID+"/members", map[string]any{"email": u.Email, "require_acceptance": true})
			want(t, r, http.StatusCreated, "")
			var m struct {
				Invitation *domain.Invitation `json:"invitation"`
			}
			r.decode(t, &m)
			if m.Invitation == nil {
				t.Fatalf("require_acceptance: got %s, want an invitation", r.body)
			}
			return m.Invitation.ID
		}
		acc := invite(accepter)
		ev.want(t, org.ID, "member_added", "user_invited")
		want(t, b.req(t, accepter.caller, "POST", "/v1/invitations/"+acc+"/accept", nil), http.StatusOK, "")
		ev.want(t, org.ID, "invitation_accepted")
		dec := invite(decliner)
		ev.want(t, org.ID, "member_added", "user_invited")
		want(t, b.req(t, decliner.caller, "POST", "/v1/invitations/"+dec+"/decline", nil), http.StatusOK, "")
		ev.want(t, org.ID, "invitation_declined", "member_removed")
	})
	t.Run("bulk", func(t *testing.T) {
		someone := b.newUser(freshEmail("bulk-active"))
		items := []any{map[string]any{"email": someone.Email}, map[string]any{"email": freshEmail("bulk-new")}, map[string]any{"email": active.Email}}
		want(t, b.req(t, owner.caller, "POST", "/v1/organizations/"+org.ID+"/members:bulk", map[string]any{"members": items}), http.StatusOK, "")
		ev.want(t, org.ID, "member_added", "member_added", "user_invited")
	})
	t.Run("update organization", func(t *testing.T) {
		patch := func(body map[string]any) {
			t.Helper()
			want(t, b.req(t, owner.caller, "PATCH", "/v1/organizations/"+org.ID, body), http.StatusOK, "")
		}
		for _, tc := range []struct {
			body    map[string]any
			changed []string
		}{
			{map[string]any{"name": "Renamed Club"}, []string{"name"}},
			{map[string]any{"name": "Renamed Club"}, nil},
			{map[string]any{"name": "Renamed Club", "slug": "renamed", "metadata": map[string]any{"a": 1}}, []string{"slug", "metadata"}},
			{map[string]any{"metadata": map[string]any{"a": 1}}, nil},
			{map[string]any{"is_active": false}, []string{"is_active"}},
			{map[string]any{"is_active": true, "name": "Events Club"}, []string{"name", "is_active"}},
			{map[string]any{}, nil},
		} {
			patch(tc.body)
			if tc.changed == nil {
				ev.want(t, org.ID)
				continue
			}
			rows := ev.want(t, org.ID, "org_updated")
			if len(rows) != 1 {
				continue
			}
			var d struct {
				Changed []string `json:"changed"`
				ActorID string   `json:"actor_id"`
			}
			if err := json.Unmarshal(rows[0].Data, &d); err != nil {
				t.Fatal(err)
			}
			got, wantChanged := slices.Sorted(slices.Values(d.Changed)), slices.Sorted(slices.Values(tc.changed))
			if !slices.Equal(got, wantChanged) || d.ActorID != owner.ID {
				t.Errorf("PATCH %v: got changed %v actor %s, want %v %s", tc.body, d.Changed, d.ActorID, tc.changed, owner.ID)
			}
		}
	})
	t.Run("update member", func(t *testing.T) {
		path := "/v1/organizations/" + org.ID + "/members/" + active.ID
		want(t, b.req(t, owner.caller, "PATCH", path, map[string]any{"is_admin": true}), http.StatusOK, "")
		rows := ev.want(t, org.ID, "member_updated")
		if len(rows) == 1 {
			if d := dataOf(t, rows[0]); d["user_id"] != active.ID || d["is_admin"] != true {
				t.Errorf("member_updated data: got %s", rows[0].Data)
			}
		}
		want(t, b.req(t, owner.caller, "PATCH", path, map[string]any{"is_admin": true}), http.StatusOK, "")
		ev.want(t, org.ID)
		want(t, b.req(t, owner.caller, "PATCH", path, map[string]any{"metadata": map[string]any{"team": "red"}}), http.StatusOK, "")
		ev.want(t, org.ID, "member_updated")
		// Refused changes write nothing.
		want(t, b.req(t, owner.caller, "PATCH", "/v1/organizations/"+org.ID+"/members/"+owner.ID, map[string]any{"is_admin": false}), http.StatusConflict, "owner_must_be_admin")
		want(t, b.req(t, owner.caller, "DELETE", "/v1/organizations/"+org.ID+"/members/"+owner.ID, nil), http.StatusConflict, "owner_cannot_be_removed")
		ev.want(t, org.ID)
	})
	t.Run("leave", func(t *testing.T) {
		want(t, b.req(t, leaver.caller, "DELETE", "/v1/organizations/"+org.ID+"/members/"+leaver.ID, nil), http.StatusNoContent, "")
		rows := ev.want(t, org.ID, "member_removed")
		if len(rows) == 1 {
			if d := dataOf(t, rows[0]); d["user_id"] != leaver.ID || d["actor_id"] != leaver.ID {
				t.Errorf("member_removed on leave: got %s, want user_id and actor_id %s", rows[0].Data, leaver.ID)
			}
		}
	})
	t.Run("transfer", func(t *testing.T) {
		// active is an admin now: owner_changed only.
		r := b.req(t, owner.caller, "PUT", "/v1/organizations/"+org.ID+"/owner", map[string]any{"user_id": active.ID})
		want(t, r, http.StatusOK, "")
		rows := ev.want(t, org.ID, "owner_changed")
		if len(rows) == 1 {
			if d := dataOf(t, rows[0]); d["old_owner_id"] != owner.ID || d["new_owner_id"] != active.ID || d["actor_id"] != owner.ID {
				t.Errorf("owner_changed data: got %s", rows[0].Data)
			}
		}
		// accepter is a plain member: member_updated (made admin) and owner_changed.
		r = b.req(t, active.caller, "PUT", "/v1/organizations/"+org.ID+"/owner", map[string]any{"user_id": accepter.ID})
		want(t, r, http.StatusOK, "")
		got := types(ev.since(t, org.ID))
		if !slices.Equal(got, []string{"member_updated", "owner_changed"}) && !slices.Equal(got, []string{"owner_changed", "member_updated"}) {
			t.Errorf("transfer to a non-admin: got %v, want member_updated and owner_changed", got)
		}
		// A refused transfer writes nothing.
		want(t, b.req(t, accepter.caller, "PUT", "/v1/organizations/"+org.ID+"/owner", map[string]any{"user_id": decliner.ID}), http.StatusConflict, "not_a_member")
		ev.want(t, org.ID)
	})
	t.Run("delete organization", func(t *testing.T) {
		n := b.count(t, `SELECT count(*) FROM memberships WHERE organization_id = $1`, org.ID)
		want(t, b.req(t, accepter.caller, "DELETE", "/v1/organizations/"+org.ID, nil), http.StatusNoContent, "")
		wantTypes := slices.Repeat([]string{"member_removed"}, n)
		rows := ev.want(t, org.ID, append(wantTypes, "org_deleted")...)
		if len(rows) == n+1 {
			if d := dataOf(t, rows[n]); d["organization_id"] != org.ID || d["slug"] != "renamed" || d["actor_id"] != accepter.ID {
				t.Errorf("org_deleted data: got %s", rows[n].Data)
			}
		}
	})

	var signupUser domain.User
	var signupOrg domain.Organization
	t.Run("sign-up", func(t *testing.T) {
		r := b.req(t, anonymous, "POST", "/v1/signup", map[string]any{"email": "newbie@example.com", "name": "Newbie", "organization_name": "Newbie Org"})
		want(t, r, http.StatusAccepted, "")
		var su struct {
			User         domain.User         `json:"user"`
			Organization domain.Organization `json:"organization"`
		}
		r.decode(t, &su)
		signupUser, signupOrg = su.User, su.Organization
		signupUser.ID = b.userIDByEmail(t, "newbie@example.com") // not in an anonymous answer
		rows := ev.want(t, signupOrg.ID, "org_created", "member_added", "user_registered")
		if len(rows) == 3 {
			if d := dataOf(t, rows[2]); d["organization_id"] != signupOrg.ID {
				t.Errorf("user_registered data: got %s", rows[2].Data)
			}
		}
		// Signing up again with the inactive user's email: another organization.
		r = b.req(t, anonymous, "POST", "/v1/signup", map[string]any{"email": "NEWBIE@example.com", "name": "Newbie", "organization_name": "Newbie Two"})
		want(t, r, http.StatusAccepted, "")
		var again struct {
			User         domain.User         `json:"user"`
			Organization domain.Organization `json:"organization"`
		}
		r.decode(t, &again)
		var againOwner string
		if err := b.pool.QueryRow(b.ctx, `SELECT owner_id FROM organizations WHERE id = $1`, again.Organization.ID).Scan(&againOwner); err != nil {
			t.Fatal(err)
		}
		if againOwner != signupUser.ID {
			t.Errorf("second sign-up: got owner %s, want the same inactive user %s", againOwner, signupUser.ID)
		}
		ev.want(t, again.Organization.ID, "org_created", "member_added", "user_registered")
	})
	t.Run("activation", func(t *testing.T) {
		other := b.newOrg(owner, "Inviting Org")
		ev.since(t, other.ID)
		b.addMember(owner.caller, other.ID, signupUser.Email, false)
		ev.want(t, other.ID, "member_added", "user_invited")
		before := len(b.outbox(t))
		b.activate(t, signupUser.ID, "a long password")
		ev.want(t, other.ID, "invitation_accepted")
		rows := ev.want(t, signupOrg.ID, "org_updated")
		if len(rows) == 1 {
			if d := dataOf(t, rows[0]); !slices.Equal(anyStrings(d["changed"]), []string{"is_active"}) {
				t.Errorf("org_updated on activation: got %s, want changed [is_active]", rows[0].Data)
			}
		}
		var activated []outboxRow
		for _, r := range b.outbox(t)[before:] {
			if r.Type == "user_activated" {
				activated = append(activated, r)
			}
		}
		if len(activated) != 1 {
			t.Fatalf("user_activated rows: got %d, want 1", len(activated))
		}
		if activated[0].Subject != signupUser.ID {
			t.Errorf("user_activated subject: got %s, want the user %s", activated[0].Subject, signupUser.ID)
		}
		d := dataOf(t, activated[0])
		ids := anyStrings(d["organization_ids"])
		if !slices.Contains(ids, other.ID) || !slices.Contains(ids, signupOrg.ID) {
			t.Errorf("user_activated organization_ids: got %v, want %s and %s", ids, other.ID, signupOrg.ID)
		}
	})
	t.Run("activation by upsert", func(t *testing.T) {
		before := len(b.outbox(t))
		r := b.req(t, service(), "POST", "/v1/users", map[string]any{"email": "sleeper@example.com"})
		want(t, r, http.StatusCreated, "")
		var u domain.User
		r.decode(t, &u)
		want(t, b.req(t, service(), "POST", "/v1/users", map[string]any{"email": "sleeper@example.com", "is_active": true}), http.StatusOK, "")
		got := b.outbox(t)[before:]
		if len(got) != 1 || got[0].Type != "user_activated" || got[0].Subject != u.ID {
			t.Errorf("outbox after activating by upsert: got %v, want one user_activated for %s", types(got), u.ID)
		}
	})

	t.Run("no secrets in any event", func(t *testing.T) {
		for _, r := range b.outbox(t) {
			lower := strings.ToLower(string(r.Data))
			for _, secret := range []string{"a long password", "correct horse", owner.bearer, active.bearer, "$argon2"} {
				if strings.Contains(lower, strings.ToLower(secret)) {
					t.Errorf("%s data contains a secret: %s", r.Type, r.Data)
				}
			}
			var v any
			if err := json.Unmarshal(r.Data, &v); err != nil {
				t.Fatal(err)
			}
			walkJSON(v, func(key string, val any) {
				k := strings.ToLower(key)
				if strings.Contains(k, "password") || strings.Contains(k, "token") || strings.Contains(k, "hash") {
					t.Errorf("%s data has key %q: %s", r.Type, key, r.Data)
				}
				if s, ok := val.(string); ok {
					ls := strings.ToLower(s)
					if strings.Contains(ls, "password") || strings.Contains(ls, "token") || strings.Contains(ls, "hash") {
						t.Errorf("%s data has value %q under %q: %s", r.Type, s, key, r.Data)
					}
				}
			})
		}
	})
	t.Run("every event's data matches its schema", func(t *testing.T) {
		rows := b.outbox(t)
		seen := map[string]bool{}
		for _, r := range rows {
			seen[r.Type] = true
			if err := eventstest.ValidateData(r.Type, r.Data); err != nil {
				t.Errorf("%s data %s: %v", r.Type, r.Data, err)
			}
			// The public types carry every field the events do.
			dec := json.NewDecoder(bytes.NewReader(r.Data))
			dec.DisallowUnknownFields()
			if err := dec.Decode(orgsevents.NewData(r.Type)); err != nil {
				t.Errorf("%s data %s: orgsevents type: %v", r.Type, r.Data, err)
			}
		}
		for _, typ := range []domain.EventType{domain.OrgCreated, domain.OrgUpdated, domain.OrgDeleted, domain.OwnerChanged,
			domain.UserRegistered, domain.UserInvited, domain.InvitationReminded, domain.InvitationAccepted,
			domain.InvitationDeclined, domain.InvitationRevoked, domain.UserActivated, domain.MemberAdded,
			domain.MemberUpdated, domain.MemberRemoved} {
			if !seen[string(typ)] {
				t.Errorf("no %s event was written by this test", typ)
			}
		}
	})
}

// walkJSON calls fn for every object member of v, recursively.
func walkJSON(v any, fn func(key string, val any)) {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			fn(k, val)
			walkJSON(val, fn)
		}
	case []any:
		for _, val := range x {
			fn("", val)
			walkJSON(val, fn)
		}
	}
}

func anyStrings(v any) []string {
	var out []string
	xs, _ := v.([]any)
	for _, x := range xs {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}
