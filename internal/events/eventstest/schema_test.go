package eventstest_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/orgs-dev/orgs/internal/events/eventstest"
	"github.com/orgs-dev/orgs/orgsevents"
)

func TestValidateData(t *testing.T) {
	t.Parallel()
	const (
		org  = "0195a0f4-4c1e-7000-8000-0000000000aa"
		user = "0195a0f4-4c1e-7000-8000-0000000000bb"
		inv  = "0195a0f4-4c1e-7000-8000-0000000000cc"
	)
	now := time.Now().UTC()
	u := orgsevents.User{ID: user, Email: "a@example.com", Name: "A", IsActive: true, CreatedAt: now}
	o := orgsevents.Organization{ID: org, Name: "Vizsla Club", Slug: "vizsla-club", IsActive: true, OwnerID: user,
		Metadata: json.RawMessage(`{}`), CreatedAt: now, UpdatedAt: now}
	i := orgsevents.Invitation{ID: inv, OrganizationID: org, Email: "b@example.com", UserID: user, InvitedBy: user,
		Status: "pending", CreatedAt: now, ExpiresAt: now.Add(time.Hour), LastSentAt: &now}
	status := orgsevents.InvitationAccepted{InvitationID: inv, OrganizationID: org, UserID: user}
	samples := map[string]any{
		orgsevents.TypeOrgCreated:         orgsevents.OrgCreated{Organization: o, OwnerID: user, ActorID: user},
		orgsevents.TypeOrgUpdated:         orgsevents.OrgUpdated{Organization: o, Changed: []string{"name"}, ActorID: ""},
		orgsevents.TypeOrgDeleted:         orgsevents.OrgDeleted{OrganizationID: org, Slug: "x", ActorID: user},
		orgsevents.TypeOwnerChanged:       orgsevents.OwnerChanged{OrganizationID: org, OldOwnerID: user, NewOwnerID: user, ActorID: user},
		orgsevents.TypeUserRegistered:     orgsevents.UserRegistered{User: u, OrganizationID: org},
		orgsevents.TypeUserInvited:        orgsevents.UserInvited{Invitation: i, OrganizationID: org, InvitedBy: user},
		orgsevents.TypeInvitationReminded: orgsevents.InvitationReminded{InvitationID: inv, OrganizationID: org, RemindersSent: 1},
		orgsevents.TypeInvitationAccepted: status,
		orgsevents.TypeInvitationDeclined: orgsevents.InvitationDeclined(status),
		orgsevents.TypeInvitationRevoked:  orgsevents.InvitationRevoked(status),
		orgsevents.TypeInvitationExpired:  orgsevents.InvitationExpired(status),
		orgsevents.TypeUserActivated:      orgsevents.UserActivated{User: u, OrganizationIDs: []string{org}},
		orgsevents.TypeMemberAdded:        orgsevents.MemberAdded{OrganizationID: org, User: u, IsAdmin: true, ActorID: user},
		orgsevents.TypeMemberUpdated:      orgsevents.MemberUpdated{OrganizationID: org, UserID: user, ActorID: user},
		orgsevents.TypeMemberRemoved:      orgsevents.MemberRemoved{OrganizationID: org, UserID: user},
	}
	for _, typ := range orgsevents.Types() {
		b, err := json.Marshal(samples[typ])
		if err != nil {
			t.Fatal(err)
		}
		if err := eventstest.ValidateData(typ, b); err != nil {
			t.Errorf("%s: %v", typ, err)
		}
	}

	bad := []struct{ typ, data, want string }{
		{orgsevents.TypeMemberRemoved, `{"organization_id":"` + org + `","actor_id":null}`, "user_id"},
		{orgsevents.TypeOrgDeleted, `{"organization_id":"nope","slug":"x","actor_id":null}`, "uuid"},
		{orgsevents.TypeUserInvited, mustJSON(t, map[string]any{"invitation": withToken(t, i), "organization_id": org, "invited_by": user}), "not"},
		{"no_such_type", `{}`, "unknown type"},
	}
	for _, c := range bad {
		err := eventstest.ValidateData(c.typ, []byte(c.data))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %s: got %v, want an error mentioning %q", c.typ, c.data, err, c.want)
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func withToken(t *testing.T, i orgsevents.Invitation) map[string]any {
	var m map[string]any
	_ = json.Unmarshal([]byte(mustJSON(t, i)), &m)
	m["token"] = "secret"
	return m
}
