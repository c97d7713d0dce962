package httpapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orgs-dev/orgs/internal/domain"
)

// Helpers shared by the api_*_test.go suites (black-box, through HTTP).

var emailSeq atomic.Int64

// freshEmail returns a new unique address with prefix as its local part's start.
func freshEmail(prefix string) string {
	return fmt.Sprintf("%s-%d@example.com", prefix, emailSeq.Add(1))
}

// try is do that reports transport errors instead of failing the test, so that it can be
// called from goroutines.
func (b *apiBundle) try(c caller, method, path string, body any, headers ...string) (res, error) {
	var rd io.Reader
	switch v := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(v)
	case []byte:
		rd = bytes.NewReader(v)
	default:
		j, err := json.Marshal(v)
		if err != nil {
			return res{}, err
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(b.ctx, method, b.srv.URL+path, rd)
	if err != nil {
		return res{}, err
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	if c.onBehalf != "" {
		req.Header.Set("On-Behalf-Of", c.onBehalf)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := b.srv.Client().Do(req)
	if err != nil {
		return res{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return res{}, err
	}
	return res{status: resp.StatusCode, header: resp.Header, body: data}, nil
}

// req is do with the subtest's t, so that a failure is reported where it happens.
func (b *apiBundle) req(t *testing.T, c caller, method, path string, body any, headers ...string) res {
	t.Helper()
	r, err := b.try(c, method, path, body, headers...)
	if err != nil {
		t.Fatal(err)
	}
	if r.status >= 500 {
		t.Errorf("%s %s: got %d %s, want no 5xx", method, path, r.status, r.body)
	}
	return r
}

// count runs a SQL query returning one integer.
func (b *apiBundle) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	if err := b.pool.QueryRow(b.ctx, query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// onBehalf is the service key acting for u.
func onBehalf(userID string) caller { return caller{bearer: serviceKey, onBehalf: userID} }

// signupActivated signs up email with organization orgName and activates the user with
// password through the JSON API. It returns the active user with the activation's session
// and the sign-up's organization.
func (b *apiBundle) signupActivated(t *testing.T, email, password, orgName string) (user, domain.Organization) {
	t.Helper()
	r := b.req(t, anonymous, "POST", "/v1/signup", map[string]any{"email": email, "name": "Signed Up", "organization_name": orgName})
	want(t, r, http.StatusAccepted, "")
	var su struct {
		User         domain.User         `json:"user"`
		Organization domain.Organization `json:"organization"`
	}
	r.decode(t, &su)
	return b.activate(t, b.userIDByEmail(t, email), password), su.Organization
}

// activationToken returns a valid activation token for user userID, as the emails have
// it: bound to the user's current address and activation, valid for an hour.
func (b *apiBundle) activationToken(t testing.TB, userID string) string {
	t.Helper()
	r, err := b.store.FindActivationRecipient(b.ctx, userID)
	if err != nil {
		t.Fatalf("find activation recipient %s: %v", userID, err)
	}
	return b.signer.Activation(r, time.Now().Add(time.Hour))
}

// activate activates inactive user userID with password through POST
// /v1/activation/{user_id}/{token} and returns them with the new session.
func (b *apiBundle) activate(t *testing.T, userID, password string) user {
	t.Helper()
	r := b.req(t, anonymous, "POST", b.activationPath(t, userID), map[string]any{"password": password})
	want(t, r, http.StatusOK, "")
	var act struct {
		User    domain.User `json:"user"`
		Session struct {
			Token string `json:"token"`
		} `json:"session"`
	}
	r.decode(t, &act)
	if !act.User.IsActive || act.Session.Token == "" {
		t.Fatalf("activation: got %s, want an active user and a session", r.body)
	}
	return user{User: act.User, caller: caller{bearer: act.Session.Token}}
}

// activationPath is the JSON API's activation path of userID with a fresh link.
func (b *apiBundle) activationPath(t testing.TB, userID string) string {
	return "/v1/activation/" + userID + "/" + b.activationToken(t, userID)
}

// outboxRow is one outbox event as stored.
type outboxRow struct {
	Type    string
	Subject string
	OrgID   *string
	Data    json.RawMessage
}

// outbox returns every outbox row in commit order.
func (b *apiBundle) outbox(t *testing.T) []outboxRow {
	t.Helper()
	rows, err := b.pool.Query(b.ctx, `SELECT type, subject, organization_id::text, data FROM outbox ORDER BY xid, pos`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []outboxRow
	for rows.Next() {
		var r outboxRow
		if err := rows.Scan(&r.Type, &r.Subject, &r.OrgID, &r.Data); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// orgEvents returns organization orgID's outbox rows in commit order.
func (b *apiBundle) orgEvents(t *testing.T, orgID string) []outboxRow {
	t.Helper()
	var out []outboxRow
	for _, r := range b.outbox(t) {
		if r.OrgID != nil && *r.OrgID == orgID {
			out = append(out, r)
		}
	}
	return out
}

// page is a list response.
type page[T any] struct {
	Items      []T     `json:"items"`
	NextCursor *string `json:"next_cursor"`
}

// collect follows next_cursor from path (which has a query string) and returns every
// item and the number of pages; each page must have at most limit items.
func collect[T any](t *testing.T, b *apiBundle, c caller, path string, limit int) ([]T, int) {
	t.Helper()
	var all []T
	cursor := ""
	for pages := 1; ; pages++ {
		p := path
		if cursor != "" {
			p += "&cursor=" + cursor
		}
		r := b.req(t, c, "GET", p, nil)
		want(t, r, http.StatusOK, "")
		var pg page[T]
		r.decode(t, &pg)
		if len(pg.Items) > limit {
			t.Fatalf("page %d of %s: got %d items, want at most %d", pages, path, len(pg.Items), limit)
		}
		all = append(all, pg.Items...)
		if pg.NextCursor == nil {
			return all, pages
		}
		if *pg.NextCursor == "" {
			t.Fatalf("page %d of %s: got next_cursor \"\", want a cursor or null", pages, path)
		}
		if pages > 1000 {
			t.Fatalf("%s: more than 1000 pages", path)
		}
		cursor = *pg.NextCursor
	}
}

// problemBody is an RFC 9457 problem as the API sends it.
type problemBody struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Code   string `json:"code"`
	Errors []struct {
		Location string `json:"location"`
		Message  string `json:"message"`
	} `json:"errors"`
}

// wantLocation fails unless r is a 422 validation_failed with a field error at loc.
func wantLocation(t *testing.T, r res, loc string) {
	t.Helper()
	want(t, r, http.StatusUnprocessableEntity, "validation_failed")
	var p problemBody
	r.decode(t, &p)
	var got []string
	for _, e := range p.Errors {
		if e.Location == loc {
			return
		}
		got = append(got, e.Location)
	}
	t.Fatalf("errors[].location: got %q, want one %q (body %s)", got, loc, r.body)
}
