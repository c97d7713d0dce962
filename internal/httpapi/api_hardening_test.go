package httpapi_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orgs-dev/orgs/internal/domain"
	"github.com/orgs-dev/orgs/internal/httpapi"
	"github.com/orgs-dev/orgs/internal/password"
)

// Regression tests for the findings of issue 8's review that concern the HTTP contract.

// TestAPIBulkChecksPermissionFirst: a bulk add whose items are all invalid still needs the
// right to add members; an outsider learns nothing of the organization (404) and a plain
// member is refused (403), instead of a 200 listing the failed items.
func TestAPIBulkChecksPermissionFirst(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	owner := b.newUser(freshEmail("owner"))
	member := b.newUser(freshEmail("member"))
	outsider := b.newUser(freshEmail("outsider"))
	org := b.newOrg(owner, "Bulk Permissions")
	b.addMember(service(), org.ID, member.Email, false)

	path := "/v1/organizations/" + org.ID + "/members:bulk"
	invalid := map[string]any{"members": []any{
		map[string]any{"email": "not an address"},
		map[string]any{"email": freshEmail("m"), "metadata": []any{1}},
	}}
	want(t, b.req(t, outsider.caller, "POST", path, invalid), http.StatusNotFound, "not_found")
	want(t, b.req(t, member.caller, "POST", path, invalid), http.StatusForbidden, "forbidden")
	want(t, b.req(t, owner.caller, "POST", "/v1/organizations/00000000-0000-4000-8000-000000000000/members:bulk", invalid), http.StatusNotFound, "not_found")

	// The admin still gets each item's problem.
	r := b.req(t, owner.caller, "POST", path, invalid)
	want(t, r, http.StatusOK, "")
	var out struct {
		Results []struct {
			Status string `json:"status"`
			Error  struct {
				Code string `json:"code"`
			} `json:"error"`
		} `json:"results"`
	}
	r.decode(t, &out)
	if len(out.Results) != 2 {
		t.Fatalf("got %d results, want 2: %s", len(out.Results), r.body)
	}
	for i, res := range out.Results {
		if res.Status != "failed" || res.Error.Code != "validation_failed" {
			t.Errorf("item %d: got %s %s, want failed validation_failed", i, res.Status, res.Error.Code)
		}
	}
}

// TestAPITransferOwnershipInvalidUserID: a user_id that is not a UUID is a field error
// (422 validation_failed at body.user_id), not a 409 not_a_member.
func TestAPITransferOwnershipInvalidUserID(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	owner := b.newUser(freshEmail("owner"))
	org := b.newOrg(owner, "Owner Input")
	path := "/v1/organizations/" + org.ID + "/owner"
	for _, id := range []string{"not-a-uuid", "12345", "0000000000000000000000000000000000g0", "{00000000-0000-4000-8000-000000000000}"} {
		r := b.req(t, owner.caller, "PUT", path, map[string]any{"user_id": id})
		want(t, r, http.StatusUnprocessableEntity, "validation_failed")
		var p struct {
			Errors []struct {
				Location string `json:"location"`
			} `json:"errors"`
		}
		r.decode(t, &p)
		if len(p.Errors) != 1 || p.Errors[0].Location != "body.user_id" {
			t.Errorf("user_id %q: got errors %s, want one at body.user_id", id, r.body)
		}
	}
	// A well-formed id of nobody in the organization stays 409 not_a_member.
	want(t, b.req(t, owner.caller, "PUT", path, map[string]any{"user_id": "00000000-0000-4000-8000-000000000000"}), http.StatusConflict, "not_a_member")
}

// TestAPIMetadataStoredSize: metadata within 16 KiB as sent but larger once stored
// (invalid UTF-8 becomes U+FFFD, three bytes each; an exponent becomes digits) is refused
// for organizations and members, and what is accepted is at most 16 KiB as returned.
func TestAPIMetadataStoredSize(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	owner := b.newUser(freshEmail("owner"))
	org := b.newOrg(owner, "Metadata Size")
	o := "/v1/organizations/" + org.ID
	invalidUTF8 := `{"a":"` + strings.Repeat("\xff", domain.MaxMetadataBytes-10) + `"}`
	exponents := `{"a":[1e300` + strings.Repeat(",1e300", 60) + `]}` // 61 numbers of 301 digits
	for _, meta := range []string{invalidUTF8, exponents} {
		for _, tc := range []struct{ method, path, body string }{
			{"POST", "/v1/organizations", `{"name":"Big","metadata":` + meta + `}`},
			{"PATCH", o, `{"metadata":` + meta + `}`},
			{"POST", o + "/members", `{"email":"` + freshEmail("big") + `","metadata":` + meta + `}`},
			{"PATCH", o + "/members/" + owner.ID, `{"metadata":` + meta + `}`},
		} {
			r := b.req(t, owner.caller, tc.method, tc.path, tc.body)
			want(t, r, http.StatusUnprocessableEntity, "validation_failed")
		}
		r := b.req(t, owner.caller, "POST", o+"/members:bulk", `{"members":[{"email":"`+freshEmail("big")+`","metadata":`+meta+`}]}`)
		want(t, r, http.StatusOK, "")
		if !strings.Contains(string(r.body), `"status":"failed"`) || !strings.Contains(string(r.body), "body.members[0].metadata") {
			t.Errorf("bulk: got %s, want the item failed at body.members[0].metadata", r.body)
		}
	}

	// A little invalid UTF-8 is normalized and stored; the stored form is what counts.
	meta := `{"a":"` + strings.Repeat("\xff", domain.MaxMetadataBytes/3-10) + `"}`
	r := b.req(t, owner.caller, "PATCH", o, `{"metadata":`+meta+`}`)
	want(t, r, http.StatusOK, "")
	var got domain.Organization
	r.decode(t, &got)
	var stored int
	if err := b.pool.QueryRow(b.ctx, `SELECT octet_length(metadata::text) FROM organizations WHERE id = $1`, org.ID).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored > domain.MaxMetadataBytes || len(got.Metadata) > domain.MaxMetadataBytes {
		t.Errorf("stored %d bytes, returned %d, want at most %d", stored, len(got.Metadata), domain.MaxMetadataBytes)
	}
}

// userIDByEmail reads the id of the user with email from the database: a sign-up's
// answer to an anonymous caller does not say it.
func (b *apiBundle) userIDByEmail(t testing.TB, email string) string {
	t.Helper()
	var id string
	if err := b.pool.QueryRow(b.ctx, `SELECT id FROM users WHERE lower(email) = lower($1)`, email).Scan(&id); err != nil {
		t.Fatalf("user %s: %v", email, err)
	}
	return id
}

// TestAPISignupRevealsNoInvitedUser: an anonymous sign-up with the address of an invited
// (inactive) user reuses that user, but its answer holds nothing of them (id, the name the
// admin gave, the stored spelling of the email, external_id) and has the fields of
// the answer for an address nobody knew; a service key sees everything.
func TestAPISignupRevealsNoInvitedUser(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	owner := b.newUser(freshEmail("owner"))
	org := b.newOrg(owner, "Inviting")
	r := b.req(t, service(), "POST", "/v1/users", map[string]any{"email": "Invited.Person@example.com", "name": "Name The Admin Gave", "external_id": "crm-4711"})
	want(t, r, http.StatusCreated, "")
	var invited domain.User
	r.decode(t, &invited)
	b.addMember(owner.caller, org.ID, invited.Email, false)

	keys := func(t *testing.T, body []byte) map[string][]string {
		t.Helper()
		var v map[string]map[string]any
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatal(err)
		}
		out := map[string][]string{}
		for part, fields := range v {
			for k := range fields {
				out[part] = append(out[part], k)
			}
			slices.Sort(out[part])
		}
		return out
	}

	r = b.req(t, anonymous, "POST", "/v1/signup", map[string]any{"email": "invited.person@EXAMPLE.com", "name": "Mallory", "organization_name": "Mallory Co"})
	want(t, r, http.StatusAccepted, "")
	for _, secret := range []string{invited.ID, "Name The Admin Gave", "Invited.Person", "crm-4711"} {
		if strings.Contains(string(r.body), secret) {
			t.Errorf("anonymous sign-up answer %s reveals %q of the invited user", r.body, secret)
		}
	}
	var su struct {
		User         domain.User         `json:"user"`
		Organization domain.Organization `json:"organization"`
	}
	r.decode(t, &su)
	if su.User.Email != "invited.person@EXAMPLE.com" || su.User.Name != "Mallory" || su.User.IsActive || su.Organization.Name != "Mallory Co" {
		t.Errorf("anonymous sign-up: got %s, want what was sent and the new organization", r.body)
	}
	if got := b.userIDByEmail(t, invited.Email); got != invited.ID {
		t.Fatalf("the sign-up made user %s, want the invited user %s reused", got, invited.ID)
	}

	fresh := b.req(t, anonymous, "POST", "/v1/signup", map[string]any{"email": freshEmail("fresh"), "name": "Fresh", "organization_name": "Fresh Co"})
	want(t, fresh, http.StatusAccepted, "")
	if got, wantKeys := keys(t, r.body), keys(t, fresh.body); !reflect.DeepEqual(got, wantKeys) {
		t.Errorf("fields for an invited address %v, for a new one %v: want the same", got, wantKeys)
	}

	email := freshEmail("svc")
	r = b.req(t, service(), "POST", "/v1/signup", map[string]any{"email": email, "name": "By Service", "organization_name": "Service Co"})
	want(t, r, http.StatusAccepted, "")
	r.decode(t, &su)
	if id := b.userIDByEmail(t, email); su.User.ID != id || su.Organization.OwnerID != id || su.User.CreatedAt.IsZero() {
		t.Errorf("service key sign-up: got %s, want the user's id %s, owner_id and created_at", r.body, id)
	}
}

// passwordLoad is a set of requests that each run one password hash or check: logins
// (right password, wrong password, unknown address) and activations through the JSON API
// and the activation page.
type passwordLoad struct {
	b    *apiBundle
	reqs []func() (res, error)
	// expect is each request's status when it gets a slot.
	expect []int
}

const loadPassword = "a long and good password"

func newPasswordLoad(t *testing.T, b *apiBundle, orgID string, logins, activations int) *passwordLoad {
	t.Helper()
	l := &passwordLoad{b: b}
	active, _ := b.signupActivated(t, freshEmail("load"), loadPassword, "Load "+freshEmail("org"))
	for i := range logins {
		body := map[string]any{"email": active.Email, "password": loadPassword}
		status := http.StatusCreated
		switch i % 3 {
		case 1:
			body["password"] = "a wrong password"
			status = http.StatusUnauthorized
		case 2:
			body["email"] = freshEmail("nobody")
			status = http.StatusUnauthorized
		}
		l.add(b.call(anonymous, "POST", "/v1/sessions", body), status)
	}
	for i := range activations {
		m := b.addMember(service(), orgID, freshEmail("invitee"), false)
		link := m.User.ID + "/" + b.activationToken(t, m.User.ID)
		if i%2 == 0 {
			l.add(b.call(anonymous, "POST", "/v1/activation/"+link, map[string]any{"password": loadPassword}), http.StatusOK)
		} else {
			l.add(func() (res, error) { return b.postActivationPage(link, loadPassword) }, http.StatusOK)
		}
	}
	return l
}

func (l *passwordLoad) add(req func() (res, error), status int) {
	l.reqs = append(l.reqs, req)
	l.expect = append(l.expect, status)
}

// run sends every request at once and returns the answers in order.
func (l *passwordLoad) run(t *testing.T) []res {
	t.Helper()
	out := make([]res, len(l.reqs))
	errs := make([]error, len(l.reqs))
	var wg sync.WaitGroup
	for i, req := range l.reqs {
		wg.Go(func() { out[i], errs[i] = req() })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// postActivationPage submits the built-in activation page's form for link (user id and
// token), with a CSRF cookie and its token.
func (b *apiBundle) postActivationPage(link, pw string) (res, error) {
	csrf := strings.Repeat("c", 43)
	form := url.Values{"csrf_token": {csrf}, "password": {pw}, "password_confirmation": {pw}}
	req, err := http.NewRequestWithContext(b.ctx, "POST", b.srv.URL+"/activate/"+link, strings.NewReader(form.Encode()))
	if err != nil {
		return res{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: "orgs_csrf", Value: csrf})
	resp, err := b.srv.Client().Do(req)
	if err != nil {
		return res{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return res{status: resp.StatusCode, header: resp.Header, body: body}, err
}

// TestAPIPasswordHashesBounded sends many logins and activations at once: with room for
// two hashes at a time, every one of them is answered as it should be, each ran its one
// hash through the bound, and never more than two ran at once.
func TestAPIPasswordHashesBounded(t *testing.T) {
	t.Parallel()
	limiter := password.NewLimiter(2, time.Minute)
	b := setupAPI(t, func(c *httpapi.Config) { c.Passwords = limiter })
	owner := b.newUser(freshEmail("owner"))
	org := b.newOrg(owner, "Hash Bound")
	load := newPasswordLoad(t, b, org.ID, 24, 8)
	before := limiter.Runs()

	for i, r := range load.run(t) {
		if r.status != load.expect[i] {
			t.Errorf("request %d: got %d %s, want %d", i, r.status, r.body, load.expect[i])
		}
	}
	if got := limiter.Runs() - before; got != len(load.reqs) {
		t.Errorf("hashes through the bound: got %d, want %d (one per request)", got, len(load.reqs))
	}
	if p := limiter.Peak(); p < 1 || p > 2 {
		t.Errorf("hashes at once: got %d, want at most 2", p)
	}
}

// TestAPIPasswordHashesBusy: while every slot is taken, logins and activations are
// answered 429 rate_limited with Retry-After (the page with its own 429 page), compute
// nothing and change nothing; once a slot frees, the same requests succeed.
func TestAPIPasswordHashesBusy(t *testing.T) {
	t.Parallel()
	limiter := password.NewLimiter(2, time.Millisecond)
	b := setupAPI(t, func(c *httpapi.Config) { c.Passwords = limiter })
	owner := b.newUser(freshEmail("owner"))
	org := b.newOrg(owner, "Hash Busy")
	load := newPasswordLoad(t, b, org.ID, 12, 4)

	var releases []func()
	for range limiter.Size() {
		release, err := limiter.Acquire(b.ctx)
		if err != nil {
			t.Fatal(err)
		}
		releases = append(releases, release)
	}
	before := limiter.Runs()
	for i, r := range load.run(t) {
		if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
			t.Errorf("request %d while busy: got %d Retry-After %q %s, want 429 with Retry-After", i, r.status, r.header.Get("Retry-After"), r.body)
		}
		if strings.HasPrefix(r.header.Get("Content-Type"), "application/") && r.code() != "rate_limited" {
			t.Errorf("request %d while busy: got code %q, want rate_limited", i, r.code())
		}
	}
	if got := limiter.Runs() - before; got != 0 {
		t.Errorf("hashes while busy: got %d, want 0", got)
	}
	if n := b.count(t, `SELECT count(*) FROM users WHERE is_active AND email LIKE 'invitee-%'`); n != 0 {
		t.Errorf("users activated while busy: got %d, want 0", n)
	}

	for _, release := range releases {
		release()
	}
	// One at a time now (the 1 ms wait would refuse a crowd), the same requests succeed.
	for i, req := range load.reqs {
		r, err := req()
		if err != nil {
			t.Fatal(err)
		}
		if r.status != load.expect[i] {
			t.Errorf("request %d after: got %d %s, want %d", i, r.status, r.body, load.expect[i])
		}
	}
}

// TestAPIRateLimitBehindProxy: behind a trusted proxy (here the test's loopback peer)
// each client named by X-Forwarded-For has its own anonymous rate, instead of everyone
// sharing the proxy's; a peer that is not trusted is limited as itself.
func TestAPIRateLimitBehindProxy(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		trusted []netip.Prefix
		want    []int // for clients A, B, A
	}{
		{"trusted proxy", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
			[]int{http.StatusAccepted, http.StatusAccepted, http.StatusTooManyRequests}},
		{"no trusted proxy", nil, []int{http.StatusAccepted, http.StatusTooManyRequests, http.StatusTooManyRequests}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := setupAPI(t, func(c *httpapi.Config) {
				c.AnonymousRate, c.AnonymousBurst, c.TrustedProxies = 0.001, 1, tt.trusted
			})
			for i, client := range []string{"198.51.100.1", "2001:db8:1:2::1", "198.51.100.1"} {
				r := b.req(t, anonymous, "POST", "/v1/activation/resend", map[string]any{"email": freshEmail("x")}, "X-Forwarded-For", "203.0.113.9, "+client)
				if r.status != tt.want[i] {
					t.Errorf("request %d from %s: got %d %s, want %d", i+1, client, r.status, r.body, tt.want[i])
				}
				if r.status == http.StatusTooManyRequests && r.header.Get("Retry-After") == "" {
					t.Errorf("request %d: 429 without Retry-After", i+1)
				}
			}
		})
	}
}
