package httpapi_test

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strconv"
	"testing"

	"github.com/orgs-dev/orgs/internal/domain"
)

// Cursor pagination: pages without gaps or duplicates, null next_cursor at the end.

// bulkAdd adds emails to orgID with the service key, up to 100 a request.
func bulkAdd(t *testing.T, b *apiBundle, orgID string, emails []string) {
	t.Helper()
	for len(emails) > 0 {
		n := min(len(emails), 100)
		items := make([]any, n)
		for i, e := range emails[:n] {
			items[i] = map[string]any{"email": e}
		}
		r := b.req(t, service(), "POST", "/v1/organizations/"+orgID+"/members:bulk", map[string]any{"members": items})
		want(t, r, http.StatusOK, "")
		var out struct {
			Results []struct {
				Status string `json:"status"`
			} `json:"results"`
		}
		r.decode(t, &out)
		for i, res := range out.Results {
			if res.Status == "failed" {
				t.Fatalf("bulk item %d: got %s", i, r.body)
			}
		}
		emails = emails[n:]
	}
}

// wantAllOnce fails unless got holds each of want exactly once.
func wantAllOnce(t *testing.T, what string, got, want []string) {
	t.Helper()
	seen := map[string]int{}
	for _, id := range got {
		seen[id]++
	}
	for id, n := range seen {
		if n > 1 {
			t.Errorf("%s: got %s %d times, want once", what, id, n)
		}
	}
	for _, id := range want {
		if seen[id] == 0 {
			t.Errorf("%s: %s missing", what, id)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%s: got %d items, want %d", what, len(got), len(want))
	}
}

func TestAPIPagination(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	owner := b.newUser("owner@example.com")
	org := b.newOrg(owner, "Big Club")
	// 119 more members: some active users added one by one, the rest invited in bulk (one
	// transaction, so with equal created_at: the cursor must break ties).
	var emails []string
	for i := 0; i < 9; i++ {
		u := b.newUser(freshEmail("active"))
		b.addMember(service(), org.ID, u.Email, i%2 == 0)
	}
	for i := 0; i < 110; i++ {
		emails = append(emails, freshEmail("invited"))
	}
	bulkAdd(t, b, org.ID, emails)

	var wantMembers []string
	rows, err := b.pool.Query(b.ctx, `SELECT user_id::text FROM memberships WHERE organization_id = $1`, org.ID)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		wantMembers = append(wantMembers, id)
	}
	rows.Close()
	if len(wantMembers) != 120 {
		t.Fatalf("members in the database: got %d, want 120", len(wantMembers))
	}
	if n := b.count(t, `SELECT count(DISTINCT created_at) FROM memberships WHERE organization_id = $1`, org.ID); n >= 120 {
		t.Fatalf("distinct created_at: got %d, want ties", n)
	}
	membersPath := "/v1/organizations/" + org.ID + "/members"

	t.Run("members", func(t *testing.T) {
		for _, limit := range []int{50, 1, 7, 119, 120, 200} {
			members, pages := collect[domain.Member](t, b, owner.caller, membersPath+"?limit="+strconv.Itoa(limit), limit)
			var got []string
			for _, m := range members {
				got = append(got, m.User.ID)
			}
			wantAllOnce(t, "members limit="+strconv.Itoa(limit), got, wantMembers)
			if wantPages := (120 + limit - 1) / limit; pages != wantPages && pages != wantPages+1 {
				t.Errorf("limit=%d: got %d pages, want %d", limit, pages, wantPages)
			}
		}
		// limit=50 is exactly 50, 50, 20 with null after the last.
		var sizes []int
		cursor := ""
		for {
			p := membersPath + "?limit=50"
			if cursor != "" {
				p += "&cursor=" + cursor
			}
			r := b.req(t, owner.caller, "GET", p, nil)
			want(t, r, http.StatusOK, "")
			var pg page[domain.Member]
			r.decode(t, &pg)
			sizes = append(sizes, len(pg.Items))
			if pg.NextCursor == nil {
				break
			}
			cursor = *pg.NextCursor
		}
		if len(sizes) != 3 || sizes[0] != 50 || sizes[1] != 50 || sizes[2] != 20 {
			t.Errorf("page sizes with limit=50: got %v, want [50 50 20]", sizes)
		}
		// The default limit is 50.
		r := b.req(t, owner.caller, "GET", membersPath, nil)
		want(t, r, http.StatusOK, "")
		var pg page[domain.Member]
		r.decode(t, &pg)
		if len(pg.Items) != 50 || pg.NextCursor == nil {
			t.Errorf("default page: got %d items, next %v, want 50 and a cursor", len(pg.Items), pg.NextCursor)
		}
		// Each item's owner flag is right on every page.
		members, _ := collect[domain.Member](t, b, owner.caller, membersPath+"?limit=13", 13)
		owners := 0
		for _, m := range members {
			if m.IsOwner {
				owners++
			}
		}
		if owners != 1 {
			t.Errorf("owners listed: got %d, want 1", owners)
		}
	})

	t.Run("empty last page", func(t *testing.T) {
		o := b.newOrg(owner, "Two Members")
		b.addMember(service(), o.ID, freshEmail("second"), false)
		members, _ := collect[domain.Member](t, b, owner.caller, "/v1/organizations/"+o.ID+"/members?limit=2", 2)
		if len(members) != 2 {
			t.Errorf("members: got %d, want 2", len(members))
		}
		r := b.req(t, owner.caller, "GET", "/v1/organizations/"+o.ID+"/members?limit=2", nil)
		var pg page[domain.Member]
		r.decode(t, &pg)
		if pg.NextCursor != nil {
			t.Errorf("a full last page: got next_cursor %q, want null", *pg.NextCursor)
		}
	})

	t.Run("invitations", func(t *testing.T) {
		invs, _ := collect[domain.Invitation](t, b, owner.caller, "/v1/organizations/"+org.ID+"/invitations?limit=50", 50)
		var got, wantIDs []string
		for _, inv := range invs {
			got = append(got, inv.ID)
		}
		rows, err := b.pool.Query(b.ctx, `SELECT id::text FROM invitations WHERE organization_id = $1`, org.ID)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id string
			_ = rows.Scan(&id)
			wantIDs = append(wantIDs, id)
		}
		rows.Close()
		if len(wantIDs) != 110 {
			t.Fatalf("invitations in the database: got %d, want 110", len(wantIDs))
		}
		wantAllOnce(t, "invitations", got, wantIDs)
		pending, _ := collect[domain.Invitation](t, b, owner.caller, "/v1/organizations/"+org.ID+"/invitations?status=pending&limit=30", 30)
		if len(pending) != 110 {
			t.Errorf("pending invitations: got %d, want 110", len(pending))
		}
		revoked, _ := collect[domain.Invitation](t, b, owner.caller, "/v1/organizations/"+org.ID+"/invitations?status=revoked&limit=30", 30)
		if len(revoked) != 0 {
			t.Errorf("revoked invitations: got %d, want 0", len(revoked))
		}
		wantLocation(t, b.req(t, owner.caller, "GET", "/v1/organizations/"+org.ID+"/invitations?status=bogus", nil), "query.status")
	})

	t.Run("organizations", func(t *testing.T) {
		lister := b.newUser("lister@example.com")
		var mine, inactive []string
		for i := 0; i < 11; i++ {
			o := b.newOrg(lister, "Listed")
			if i%4 == 0 {
				want(t, b.req(t, lister.caller, "PATCH", "/v1/organizations/"+o.ID, map[string]any{"is_active": false}), http.StatusOK, "")
				inactive = append(inactive, o.ID)
				continue
			}
			mine = append(mine, o.ID)
		}
		ids := func(orgs []domain.Organization) []string {
			var out []string
			for _, o := range orgs {
				out = append(out, o.ID)
			}
			return out
		}
		orgs, _ := collect[domain.Organization](t, b, lister.caller, "/v1/organizations?limit=3", 3)
		wantAllOnce(t, "organizations", ids(orgs), mine)
		orgs, _ = collect[domain.Organization](t, b, lister.caller, "/v1/organizations?limit=4&include_inactive=true", 4)
		wantAllOnce(t, "organizations include_inactive", ids(orgs), append(append([]string{}, mine...), inactive...))
		// The service key pages through every organization.
		all, _ := collect[domain.Organization](t, b, service(), "/v1/organizations?limit=5&include_inactive=true", 5)
		if n := b.count(t, `SELECT count(*) FROM organizations`); len(all) != n {
			t.Errorf("service list: got %d organizations, want %d", len(all), n)
		}
		wantAllOnce(t, "service list", ids(all), ids(all))
	})

	t.Run("users", func(t *testing.T) {
		users, _ := collect[domain.User](t, b, service(), "/v1/users?limit=17", 17)
		if n := b.count(t, `SELECT count(*) FROM users`); len(users) != n {
			t.Errorf("users: got %d, want %d", len(users), n)
		}
		var got []string
		for _, u := range users {
			got = append(got, u.ID)
		}
		wantAllOnce(t, "users", got, got)
	})

	t.Run("bad parameters", func(t *testing.T) {
		for _, path := range []string{membersPath, "/v1/organizations", "/v1/organizations/" + org.ID + "/invitations", "/v1/users"} {
			c := owner.caller
			if path == "/v1/users" {
				c = service()
			}
			for _, limit := range []string{"0", "201", "x", "-1", "1.5", "99999999999999999999"} {
				wantLocation(t, b.req(t, c, "GET", path+"?limit="+limit, nil), "query.limit")
			}
			for _, cursor := range []string{
				"!!!",
				"not-a-cursor",
				base64.RawURLEncoding.EncodeToString([]byte("garbage")),
				base64.RawURLEncoding.EncodeToString([]byte("2024-01-01T00:00:00Z,not-a-uuid")),
				base64.RawURLEncoding.EncodeToString([]byte("yesterday," + org.ID)),
				base64.RawURLEncoding.EncodeToString([]byte("2024-01-01T00:00:00Z,' OR 1=1 --")),
				url.QueryEscape("日本語"),
			} {
				wantLocation(t, b.req(t, c, "GET", path+"?cursor="+cursor, nil), "query.cursor")
			}
		}
		// Paging must not leak: an outsider gets 404 with or without a cursor.
		outsider := b.newUser("outsider@example.com")
		r := b.req(t, owner.caller, "GET", membersPath+"?limit=5", nil)
		var pg page[domain.Member]
		r.decode(t, &pg)
		want(t, b.req(t, outsider.caller, "GET", membersPath+"?limit=5&cursor="+*pg.NextCursor, nil), http.StatusNotFound, "not_found")
	})
}
