package httpapi_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
)

// Concurrency through HTTP, with goroutines against the real database.

// race runs the requests at once (released together) and returns their responses in order.
func race(t *testing.T, b *apiBundle, reqs ...func() (res, error)) []res {
	t.Helper()
	out := make([]res, len(reqs))
	errs := make([]error, len(reqs))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, r := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			out[i], errs[i] = r()
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if out[i].status >= 500 {
			t.Errorf("request %d: got %d %s, want no 5xx", i, out[i].status, out[i].body)
		}
	}
	return out
}

// call returns a request for race.
func (b *apiBundle) call(c caller, method, path string, body any) func() (res, error) {
	return func() (res, error) { return b.try(c, method, path, body) }
}

// wantOneOwner fails unless organization orgID has exactly one owner, who is an active,
// admin member of it, and returns the owner's id.
func wantOneOwner(t *testing.T, b *apiBundle, orgID string) string {
	t.Helper()
	var owners int
	var ownerID string
	err := b.pool.QueryRow(b.ctx, `SELECT count(*), min(owner_id::text) FROM organizations WHERE id = $1`, orgID).Scan(&owners, &ownerID)
	if err != nil {
		t.Fatal(err)
	}
	if owners != 1 {
		t.Fatalf("organization %s: got %d rows, want 1", orgID, owners)
	}
	n := b.count(t, `SELECT count(*) FROM memberships m JOIN users u ON u.id = m.user_id
		WHERE m.organization_id = $1 AND m.user_id = $2 AND m.is_admin AND NOT m.pending AND u.is_active`, orgID, ownerID)
	if n != 1 {
		t.Errorf("organization %s: owner %s is not an active admin member", orgID, ownerID)
	}
	// Through the API too: exactly one member is listed as owner.
	members, _ := collect[struct {
		User    struct{ ID string } `json:"user"`
		IsOwner bool                `json:"is_owner"`
	}](t, b, service(), "/v1/organizations/"+orgID+"/members?limit=200", 200)
	listed := 0
	for _, m := range members {
		if m.IsOwner {
			listed++
			if m.User.ID != ownerID {
				t.Errorf("listed owner: got %s, want %s", m.User.ID, ownerID)
			}
		}
	}
	if listed != 1 {
		t.Errorf("organization %s: got %d members listed as owner, want 1", orgID, listed)
	}
	return ownerID
}

func TestAPIConcurrency(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	owner := b.newUser("owner@example.com")
	a := b.newUser("a@example.com")
	c := b.newUser("c@example.com")
	const rounds = 6

	t.Run("two transfers", func(t *testing.T) {
		for i := range rounds {
			org := b.newOrg(owner, fmt.Sprintf("Transfers %d", i))
			b.addMember(service(), org.ID, a.Email, i%2 == 0)
			b.addMember(service(), org.ID, c.Email, false)
			path := "/v1/organizations/" + org.ID + "/owner"
			out := race(t, b,
				b.call(owner.caller, "PUT", path, map[string]any{"user_id": a.ID}),
				b.call(owner.caller, "PUT", path, map[string]any{"user_id": c.ID}))
			ok := 0
			for _, r := range out {
				switch {
				case r.status == http.StatusOK:
					ok++
				case r.status == http.StatusForbidden && r.code() == "forbidden":
					// The other transfer won: the caller is no longer the owner.
				default:
					t.Errorf("transfer: got %d %s, want 200 or 403", r.status, r.body)
				}
			}
			if ok != 1 {
				t.Errorf("round %d: got %d successful transfers, want 1", i, ok)
			}
			got := wantOneOwner(t, b, org.ID)
			if got != a.ID && got != c.ID {
				t.Errorf("owner: got %s, want a or c", got)
			}
		}
	})
	t.Run("two transfers by the service key", func(t *testing.T) {
		for i := range rounds {
			org := b.newOrg(owner, fmt.Sprintf("Service transfers %d", i))
			b.addMember(service(), org.ID, a.Email, false)
			b.addMember(service(), org.ID, c.Email, false)
			path := "/v1/organizations/" + org.ID + "/owner"
			out := race(t, b,
				b.call(service(), "PUT", path, map[string]any{"user_id": a.ID}),
				b.call(service(), "PUT", path, map[string]any{"user_id": c.ID}))
			for _, r := range out {
				want(t, r, http.StatusOK, "")
			}
			wantOneOwner(t, b, org.ID)
			// Both became admins on the way; the old owner stays an admin member.
			if n := b.count(t, `SELECT count(*) FROM memberships WHERE organization_id = $1 AND is_admin`, org.ID); n != 3 {
				t.Errorf("admins: got %d, want 3", n)
			}
		}
	})
	t.Run("transfer racing a removal", func(t *testing.T) {
		for i := range rounds {
			org := b.newOrg(owner, fmt.Sprintf("Transfer vs removal %d", i))
			b.addMember(service(), org.ID, a.Email, true)
			b.addMember(service(), org.ID, c.Email, true)
			remover := c.caller
			if i%2 == 1 {
				remover = service()
			}
			out := race(t, b,
				b.call(owner.caller, "PUT", "/v1/organizations/"+org.ID+"/owner", map[string]any{"user_id": a.ID}),
				b.call(remover, "DELETE", "/v1/organizations/"+org.ID+"/members/"+a.ID, nil))
			transfer, removal := out[0], out[1]
			switch {
			case transfer.status == http.StatusOK:
				want(t, removal, http.StatusConflict, "owner_cannot_be_removed")
				if got := wantOneOwner(t, b, org.ID); got != a.ID {
					t.Errorf("owner after the transfer won: got %s, want %s", got, a.ID)
				}
			case removal.status == http.StatusNoContent:
				want(t, transfer, http.StatusConflict, "not_a_member")
				if got := wantOneOwner(t, b, org.ID); got != owner.ID {
					t.Errorf("owner after the removal won: got %s, want %s", got, owner.ID)
				}
			default:
				t.Errorf("got transfer %d %s and removal %d %s, want one to win", transfer.status, transfer.body, removal.status, removal.body)
			}
		}
	})
	t.Run("owner leaving while handing over", func(t *testing.T) {
		for i := range rounds {
			org := b.newOrg(owner, fmt.Sprintf("Handover %d", i))
			b.addMember(service(), org.ID, a.Email, false)
			out := race(t, b,
				b.call(owner.caller, "PUT", "/v1/organizations/"+org.ID+"/owner", map[string]any{"user_id": a.ID}),
				b.call(owner.caller, "DELETE", "/v1/organizations/"+org.ID+"/members/"+owner.ID, nil))
			if out[0].status != http.StatusOK {
				t.Errorf("transfer: got %d %s, want 200", out[0].status, out[0].body)
			}
			if s := out[1].status; s != http.StatusNoContent && s != http.StatusConflict {
				t.Errorf("leave: got %d %s, want 204 or 409", s, out[1].body)
			}
			wantOneOwner(t, b, org.ID)
		}
	})
	t.Run("two adds of one user", func(t *testing.T) {
		org := b.newOrg(owner, "Double adds")
		for i := range rounds {
			email := freshEmail("double")
			if i%2 == 0 {
				email = b.newUser(email).Email // an active user; odd rounds invite a new email
			}
			path := "/v1/organizations/" + org.ID + "/members"
			out := race(t, b,
				b.call(owner.caller, "POST", path, map[string]any{"email": email}),
				b.call(service(), "POST", path, map[string]any{"email": email}))
			created, conflict := 0, 0
			for _, r := range out {
				switch {
				case r.status == http.StatusCreated:
					created++
				case r.status == http.StatusConflict && r.code() == "already_member":
					conflict++
				default:
					t.Errorf("add: got %d %s, want 201 or 409 already_member", r.status, r.body)
				}
			}
			if created != 1 || conflict != 1 {
				t.Errorf("round %d: got %d created and %d already_member, want 1 and 1", i, created, conflict)
			}
			if n := b.count(t, `SELECT count(*) FROM users WHERE lower(email) = lower($1)`, email); n != 1 {
				t.Errorf("users with %s: got %d, want 1", email, n)
			}
			if n := b.count(t, `SELECT count(*) FROM invitations WHERE organization_id = $1 AND lower(email) = lower($2)`, org.ID, email); i%2 == 1 && n != 1 {
				t.Errorf("invitations for %s: got %d, want 1", email, n)
			}
		}
		if n := b.count(t, `SELECT count(*) FROM outbox WHERE organization_id = $1 AND type = 'member_added'`, org.ID); n != 1+rounds {
			t.Errorf("member_added events: got %d, want %d", n, 1+rounds)
		}
	})
	t.Run("20 concurrent invites", func(t *testing.T) {
		org := b.newOrg(owner, "Many invites")
		var reqs []func() (res, error)
		for range 20 {
			reqs = append(reqs, b.call(owner.caller, "POST", "/v1/organizations/"+org.ID+"/members", map[string]any{"email": freshEmail("many")}))
		}
		for _, r := range race(t, b, reqs...) {
			want(t, r, http.StatusCreated, "")
		}
		if n := b.count(t, `SELECT count(*) FROM memberships WHERE organization_id = $1`, org.ID); n != 21 {
			t.Errorf("members: got %d, want 21", n)
		}
		if n := b.count(t, `SELECT count(*) FROM invitations WHERE organization_id = $1 AND status = 'pending'`, org.ID); n != 20 {
			t.Errorf("pending invitations: got %d, want 20", n)
		}
		types := b.outboxTypes(org.ID)
		if len(types) != 2+40 {
			t.Errorf("outbox rows: got %d, want 42", len(types))
		}
		// Each invite's two events are adjacent: the organization's row lock orders them.
		for i := 2; i+1 < len(types); i += 2 {
			if types[i] != "member_added" || types[i+1] != "user_invited" {
				t.Errorf("outbox %d-%d: got %s %s, want member_added user_invited", i, i+1, types[i], types[i+1])
			}
		}
	})
	t.Run("concurrent sign-ups of one email", func(t *testing.T) {
		var reqs []func() (res, error)
		for i := range 8 {
			reqs = append(reqs, b.call(anonymous, "POST", "/v1/signup", map[string]any{
				"email": "Racer@example.com", "name": "Racer", "organization_name": fmt.Sprintf("Racer %d", i),
			}))
		}
		accepted := 0
		for _, r := range race(t, b, reqs...) {
			switch {
			case r.status == http.StatusAccepted:
				accepted++
			case r.status == http.StatusConflict:
			default:
				t.Errorf("sign-up: got %d %s, want 202 or 409", r.status, r.body)
			}
		}
		if accepted == 0 {
			t.Errorf("sign-ups: got none accepted, want at least one")
		}
		if n := b.count(t, `SELECT count(*) FROM users WHERE lower(email) = 'racer@example.com'`); n != 1 {
			t.Errorf("users with the email: got %d, want 1", n)
		}
		if n := b.count(t, `SELECT count(*) FROM organizations o JOIN users u ON u.id = o.owner_id WHERE lower(u.email) = 'racer@example.com'`); n != accepted {
			t.Errorf("organizations of the racer: got %d, want %d (one per 202)", n, accepted)
		}
	})
	t.Run("concurrent sign-ups and an invite of one email", func(t *testing.T) {
		org := b.newOrg(owner, "Inviting racer")
		out := race(t, b,
			b.call(anonymous, "POST", "/v1/signup", map[string]any{"email": "both@example.com", "name": "Both", "organization_name": "Both"}),
			b.call(owner.caller, "POST", "/v1/organizations/"+org.ID+"/members", map[string]any{"email": "BOTH@example.com"}),
			b.call(service(), "POST", "/v1/users", map[string]any{"email": "both@EXAMPLE.com"}))
		want(t, out[0], http.StatusAccepted, "")
		want(t, out[1], http.StatusCreated, "")
		if n := b.count(t, `SELECT count(*) FROM users WHERE lower(email) = 'both@example.com'`); n != 1 {
			t.Errorf("users with the email: got %d, want 1", n)
		}
		if out[2].status != http.StatusOK && out[2].status != http.StatusCreated {
			t.Errorf("upsert: got %d %s, want 200 or 201", out[2].status, out[2].body)
		}
	})
	t.Run("concurrent upserts of one email", func(t *testing.T) {
		var conflicts []res
		for i := range rounds {
			email := fmt.Sprintf("upsert-race-%d@example.com", i)
			out := race(t, b,
				b.call(service(), "POST", "/v1/users", map[string]any{"email": email, "name": "One"}),
				b.call(service(), "POST", "/v1/users", map[string]any{"email": email, "name": "Two"}))
			if n := b.count(t, `SELECT count(*) FROM users WHERE lower(email) = lower($1)`, email); n != 1 {
				t.Errorf("users with %s: got %d, want 1", email, n)
			}
			created := 0
			for _, r := range out {
				switch r.status {
				case http.StatusCreated:
					created++
				case http.StatusOK:
				default:
					conflicts = append(conflicts, r)
				}
			}
			if created > 1 {
				t.Errorf("round %d: got %d created, want 1", i, created)
			}
		}
		for _, r := range conflicts {
			t.Errorf("upsert: got %d %s, want 200 or 201", r.status, r.body)
		}
	})
}
