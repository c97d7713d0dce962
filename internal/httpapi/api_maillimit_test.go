package httpapi_test

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/orgs-dev/orgs/internal/domain"
	"github.com/orgs-dev/orgs/internal/postgres"
)

// wantRetryAfter fails unless r is a 429 rate_limited with a Retry-After of 1 to 3600
// seconds.
func wantRetryAfter(t *testing.T, r res) {
	t.Helper()
	want(t, r, http.StatusTooManyRequests, "rate_limited")
	secs, err := strconv.Atoi(r.header.Get("Retry-After"))
	if err != nil || secs < 1 || secs > 3600 {
		t.Fatalf("Retry-After: got %q, want 1 to 3600 seconds", r.header.Get("Retry-After"))
	}
}

func TestMailLimitAnswers429(t *testing.T) {
	t.Parallel()
	b := setupAPIStore(t, postgres.StoreConfig{MailLimitRecipient: 2, MailLimitOrganization: 3})
	owner := b.newUser("owner@example.com")
	orgs := make([]domain.Organization, 4)
	for i := range orgs {
		orgs[i] = b.newOrg(owner, fmt.Sprintf("Org %d", i))
	}
	members := func(orgID string) string { return "/v1/organizations/" + orgID + "/members" }

	t.Run("recipient", func(t *testing.T) {
		for _, org := range orgs[:2] {
			want(t, b.req(t, owner.caller, "POST", members(org.ID), map[string]any{"email": "victim@example.com"}), http.StatusCreated, "")
		}
		before := len(b.outbox(t))
		jobs := b.count(t, `SELECT count(*) FROM river_job`)
		r := b.req(t, owner.caller, "POST", members(orgs[2].ID), map[string]any{"email": "victim@example.com", "message": "hello again"})
		wantRetryAfter(t, r)
		if n := b.count(t, `SELECT count(*) FROM memberships WHERE organization_id = $1`, orgs[2].ID); n != 1 {
			t.Fatalf("memberships: got %d, want the owner's only", n)
		}
		if got, n := len(b.outbox(t)), b.count(t, `SELECT count(*) FROM river_job`); got != before || n != jobs {
			t.Fatalf("events %d → %d, jobs %d → %d: want nothing new", before, got, jobs, n)
		}
		// The same request with a service key goes through.
		want(t, b.req(t, service(), "POST", members(orgs[2].ID), map[string]any{"email": "victim@example.com"}), http.StatusCreated, "")
		// A manual reminder is refused likewise.
		var victim struct {
			Items []domain.User `json:"items"`
		}
		b.req(t, service(), "GET", "/v1/users?email=victim@example.com", nil).decode(t, &victim)
		if len(victim.Items) != 1 {
			t.Fatalf("victim: got %+v", victim)
		}
		wantRetryAfter(t, b.req(t, owner.caller, "POST", members(orgs[0].ID)+"/"+victim.Items[0].ID+"/reminders", nil))
		want(t, b.req(t, service(), "POST", members(orgs[0].ID)+"/"+victim.Items[0].ID+"/reminders", nil), http.StatusAccepted, "")
	})

	t.Run("signup", func(t *testing.T) {
		for i := range 2 {
			want(t, b.req(t, anonymous, "POST", "/v1/signup", map[string]any{"email": "signer@example.com", "name": "Signer", "organization_name": fmt.Sprintf("Mine %d", i)}), http.StatusAccepted, "")
		}
		orgsBefore := b.count(t, `SELECT count(*) FROM organizations`)
		wantRetryAfter(t, b.req(t, anonymous, "POST", "/v1/signup", map[string]any{"email": "signer@example.com", "name": "Signer", "organization_name": "Mine 2"}))
		if n := b.count(t, `SELECT count(*) FROM organizations`); n != orgsBefore {
			t.Fatalf("organizations: got %d, want %d", n, orgsBefore)
		}
		// Re-sending stays 202 (as for any address), and sends nothing.
		want(t, b.req(t, anonymous, "POST", "/v1/activation/resend", map[string]any{"email": "signer@example.com"}), http.StatusAccepted, "")
	})

	t.Run("bulk", func(t *testing.T) {
		// orgs[3]'s limit is 3: the third item's email is refused, the fourth is an
		// invalid address, the others go on.
		r := b.req(t, owner.caller, "POST", members(orgs[3].ID)+":bulk", map[string]any{"members": []map[string]any{
			{"email": "b1@example.com"}, {"email": "b2@example.com"}, {"email": "b3@example.com"}, {"email": "b4@example.com"}, {"email": "not an address"},
		}})
		want(t, r, http.StatusOK, "")
		var out struct {
			Results []struct {
				Email  string `json:"email"`
				Status string `json:"status"`
				Error  *struct {
					Status int    `json:"status"`
					Code   string `json:"code"`
					Detail string `json:"detail"`
				} `json:"error"`
			} `json:"results"`
		}
		r.decode(t, &out)
		var invited, limited int
		for _, res := range out.Results {
			switch {
			case res.Status == "invited":
				invited++
			case res.Status == "failed" && res.Error != nil && res.Error.Code == "rate_limited" && res.Error.Status == http.StatusTooManyRequests:
				limited++
			case res.Email == "not an address" && res.Status == "failed":
			default:
				t.Fatalf("result %+v", res)
			}
		}
		if invited != 3 || limited != 1 {
			t.Fatalf("got %d invited, %d rate_limited, want 3 and 1: %s", invited, limited, r.body)
		}
		if n := b.count(t, `SELECT count(*) FROM invitations WHERE organization_id = $1`, orgs[3].ID); n != 3 {
			t.Fatalf("invitations: got %d, want 3", n)
		}
	})
}

// Parallel requests over HTTP never send more than the limit allows.
func TestMailLimitConcurrentRequests(t *testing.T) {
	t.Parallel()
	const limit, parallel = 4, 16
	b := setupAPIStore(t, postgres.StoreConfig{MailLimitOrganization: limit})
	owner := b.newUser("owner@example.com")
	org := b.newOrg(owner, "Busy")
	statuses := make([]int, parallel)
	var wg sync.WaitGroup
	for i := range parallel {
		wg.Go(func() {
			r, err := b.try(owner.caller, "POST", "/v1/organizations/"+org.ID+"/members", map[string]any{"email": fmt.Sprintf("p%d@example.com", i)})
			if err != nil {
				t.Error(err)
				return
			}
			if r.status == http.StatusTooManyRequests && r.header.Get("Retry-After") == "" {
				t.Errorf("429 without Retry-After")
			}
			statuses[i] = r.status
		})
	}
	wg.Wait()
	counts := map[int]int{}
	for _, s := range statuses {
		counts[s]++
	}
	if counts[http.StatusCreated] != limit || counts[http.StatusTooManyRequests] != parallel-limit {
		t.Fatalf("statuses: got %v, want %d × 201 and %d × 429", counts, limit, parallel-limit)
	}
	if n := b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'send_invitation'`); n != limit {
		t.Fatalf("invitation jobs: got %d, want %d", n, limit)
	}
}

// The sign-up page answers the address's mail limit with 429 and the form, not a 500.
func TestMailLimitSignupPage(t *testing.T) {
	t.Parallel()
	b := setupAPIStore(t, postgres.StoreConfig{MailLimitRecipient: 1})
	get, err := b.srv.Client().Get(b.srv.URL + "/signup")
	if err != nil {
		t.Fatal(err)
	}
	get.Body.Close()
	cookies := get.Cookies()
	if len(cookies) != 1 {
		t.Fatalf("cookies: got %v, want the CSRF cookie", cookies)
	}
	post := func(org string) *http.Response {
		t.Helper()
		form := url.Values{"email": {"page@example.com"}, "name": {"Page"}, "organization_name": {org}, "csrf_token": {cookies[0].Value}}
		req, _ := http.NewRequestWithContext(b.ctx, "POST", b.srv.URL+"/signup", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.AddCookie(cookies[0])
		resp, err := b.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	if resp := post("Page One"); resp.StatusCode != http.StatusOK {
		t.Fatalf("first sign-up: got %d, want 200", resp.StatusCode)
	}
	resp := post("Page Two")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("second sign-up: got %d with Retry-After %q, want 429 with one", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}
