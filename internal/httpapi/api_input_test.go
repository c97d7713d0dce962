package httpapi_test

import (
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/orgs-dev/orgs/internal/domain"
)

// Bad input on every endpoint with a body: always a 4xx problem, never a 500.

// bodyEndpoint is an endpoint that takes a JSON body: a valid body, the body fields that
// are required, and which fields hold an email, a name or metadata.
type bodyEndpoint struct {
	name     string
	c        caller
	method   string
	path     string
	valid    func() map[string]any
	required []string
	email    string // field holding an email, "" for none
	names    []string
	metadata string
	// loginOnly: a bad email is just wrong credentials (401) or a 422.
	loginOnly bool
}

type inputFixture struct {
	owner, member user
	org           domain.Organization
	endpoints     []bodyEndpoint
}

func newInputFixture(t *testing.T, b *apiBundle) inputFixture {
	owner := b.newUser("owner@example.com")
	member := b.newUser("member@example.com")
	org := b.newOrg(owner, "Input Club")
	b.addMember(owner.caller, org.ID, member.Email, false)
	r := b.req(t, anonymous, "POST", "/v1/signup", map[string]any{"email": "signup@example.com", "name": "S", "organization_name": "Signup Org"})
	want(t, r, http.StatusAccepted, "")
	signupID := b.userIDByEmail(t, "signup@example.com")
	activation := "/v1/activation/" + signupID + "/" + b.activationToken(t, signupID)
	orgPath := "/v1/organizations/" + org.ID
	return inputFixture{owner: owner, member: member, org: org, endpoints: []bodyEndpoint{
		{name: "create session", c: anonymous, method: "POST", path: "/v1/sessions",
			valid:    func() map[string]any { return map[string]any{"email": "owner@example.com", "password": "whatever1"} },
			required: []string{"email", "password"}, email: "email", loginOnly: true},
		{name: "upsert user", c: service(), method: "POST", path: "/v1/users",
			valid:    func() map[string]any { return map[string]any{"email": freshEmail("upsert"), "name": "U"} },
			required: []string{"email"}, email: "email", names: []string{"name"}},
		{name: "signup", c: anonymous, method: "POST", path: "/v1/signup",
			valid: func() map[string]any {
				return map[string]any{"email": freshEmail("signup"), "name": "N", "organization_name": "O"}
			},
			required: []string{"email", "name", "organization_name"}, email: "email", names: []string{"name", "organization_name"}},
		{name: "resend activation", c: anonymous, method: "POST", path: "/v1/activation/resend",
			valid:    func() map[string]any { return map[string]any{"email": "signup@example.com"} },
			required: []string{"email"}, email: "email"},
		{name: "activate", c: anonymous, method: "POST", path: activation,
			// A valid body that does not activate (the password is too short), so that the
			// link stays usable for every case.
			valid: func() map[string]any { return map[string]any{"password": "short"} },
			names: []string{"name"}},
		{name: "create organization", c: owner.caller, method: "POST", path: "/v1/organizations",
			valid:    func() map[string]any { return map[string]any{"name": "Created"} },
			required: []string{"name"}, names: []string{"name"}, metadata: "metadata"},
		{name: "update organization", c: owner.caller, method: "PATCH", path: orgPath,
			valid: func() map[string]any { return map[string]any{"name": "Input Club"} },
			names: []string{"name"}, metadata: "metadata"},
		{name: "transfer ownership", c: owner.caller, method: "PUT", path: orgPath + "/owner",
			valid:    func() map[string]any { return map[string]any{"user_id": owner.ID} },
			required: []string{"user_id"}},
		{name: "add member", c: owner.caller, method: "POST", path: orgPath + "/members",
			valid:    func() map[string]any { return map[string]any{"email": freshEmail("add")} },
			required: []string{"email"}, email: "email", metadata: "metadata"},
		{name: "add members", c: owner.caller, method: "POST", path: orgPath + "/members:bulk",
			valid: func() map[string]any {
				return map[string]any{"members": []any{map[string]any{"email": freshEmail("bulk")}}}
			},
			required: []string{"members"}},
		{name: "update member", c: owner.caller, method: "PATCH", path: orgPath + "/members/" + member.ID,
			valid:    func() map[string]any { return map[string]any{"is_admin": false} },
			metadata: "metadata"},
	}}
}

func with(m map[string]any, k string, v any) map[string]any {
	m = maps.Clone(m)
	m[k] = v
	return m
}

func without(m map[string]any, k string) map[string]any {
	m = maps.Clone(m)
	delete(m, k)
	return m
}

// badEmails are not bare local@domain addresses of at most 254 characters.
var badEmails = map[string]string{
	"display name":     "Bob <bob@example.com>",
	"quoted name":      `"Bob" <bob@example.com>`,
	"inner space":      "bob smith@example.com",
	"leading space":    " bob@example.com",
	"trailing newline": "bob@example.com\n",
	"no at":            "bob.example.com",
	"no domain":        "bob@",
	"two addresses":    "a@example.com, b@example.com",
	"long local part":  strings.Repeat("a", 65) + "@example.com",
	"too long":         strings.Repeat("a", 60) + "@" + strings.Repeat("b", 190) + ".com",
	"control char":     "bob\x00@example.com",
}

func TestAPIInputBodies(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	f := newInputFixture(t, b)
	huge := strings.Repeat("a", 100_000)
	twoMiB := `{"name":"` + strings.Repeat("a", 2<<20) + `"}`

	for _, e := range f.endpoints {
		t.Run(e.name, func(t *testing.T) {
			send := func(t *testing.T, body any, headers ...string) res {
				t.Helper()
				return b.req(t, e.c, e.method, e.path, body, headers...)
			}
			t.Run("valid body is not a client error", func(t *testing.T) {
				r := send(t, e.valid())
				if e.name == "activate" || e.name == "create session" {
					// Neither succeeds with these bodies, but both must get past decoding.
					if r.code() == "malformed_request" || r.code() == "unsupported_media_type" {
						t.Errorf("got %d %s, want the body accepted", r.status, r.body)
					}
					return
				}
				if r.status >= 300 {
					t.Errorf("got %d %s, want a 2xx", r.status, r.body)
				}
			})
			t.Run("malformed JSON", func(t *testing.T) {
				for _, body := range []string{`{"email": `, `{`, `{"a" 1}`, `not json`, `{"email":"x@example.com",}`} {
					want(t, send(t, body), http.StatusBadRequest, "malformed_request")
				}
			})
			t.Run("wrong JSON types", func(t *testing.T) {
				for _, body := range []string{`[]`, `"string"`, `42`, `null`, `{"email": 5, "name": [], "members": {}, "user_id": true, "is_admin": "yes", "password": 1}`} {
					r := send(t, body)
					if r.status < 400 && body != `null` {
						t.Errorf("body %s: got %d %s, want a 4xx", body, r.status, r.body)
					}
				}
			})
			t.Run("unknown field", func(t *testing.T) {
				want(t, send(t, with(e.valid(), "bogus_field", 1)), http.StatusUnprocessableEntity, "validation_failed")
				want(t, send(t, with(e.valid(), "Email ", "x")), http.StatusUnprocessableEntity, "validation_failed")
			})
			t.Run("missing required field", func(t *testing.T) {
				for _, field := range e.required {
					wantLocation(t, send(t, without(e.valid(), field)), "body."+field)
				}
			})
			if e.email != "" {
				t.Run("invalid email", func(t *testing.T) {
					for name, email := range badEmails {
						t.Run(name, func(t *testing.T) {
							r := b.req(t, e.c, e.method, e.path, with(e.valid(), e.email, email))
							if e.loginOnly && r.status == http.StatusUnauthorized {
								return
							}
							if r.status != http.StatusUnprocessableEntity || r.code() != "validation_failed" {
								t.Errorf("%q: got %d %s, want 422 validation_failed", email, r.status, r.body)
							}
						})
					}
				})
			}
			for _, field := range e.names {
				t.Run("100k-character "+field, func(t *testing.T) {
					wantLocation(t, send(t, with(e.valid(), field, huge)), "body."+field)
				})
			}
			if e.metadata != "" {
				t.Run("metadata", func(t *testing.T) {
					for _, m := range []any{[]any{1, 2}, "a string", 42, true} {
						wantLocation(t, send(t, with(e.valid(), e.metadata, m)), "body."+e.metadata)
					}
					big := map[string]any{"blob": strings.Repeat("x", 17<<10)}
					wantLocation(t, send(t, with(e.valid(), e.metadata, big)), "body."+e.metadata)
				})
			}
			t.Run("2 MiB body", func(t *testing.T) {
				want(t, send(t, twoMiB), http.StatusRequestEntityTooLarge, "payload_too_large")
			})
			t.Run("text/plain", func(t *testing.T) {
				j, _ := json.Marshal(e.valid())
				want(t, send(t, string(j), "Content-Type", "text/plain"), http.StatusUnsupportedMediaType, "unsupported_media_type")
				want(t, send(t, string(j), "Content-Type", "application/x-www-form-urlencoded"), http.StatusUnsupportedMediaType, "unsupported_media_type")
			})
			t.Run("invalid UTF-8", func(t *testing.T) {
				r := send(t, "{\"name\":\"\xff\xfe\",\"email\":\"\xc3\x28@example.com\"}")
				if r.status < 400 {
					t.Errorf("got %d %s, want a 4xx", r.status, r.body)
				}
			})
		})
	}

	t.Run("bulk items are answered one by one", func(t *testing.T) {
		path := "/v1/organizations/" + f.org.ID + "/members:bulk"
		good := freshEmail("bulk-good")
		items := []any{
			map[string]any{"email": "Bob <bob@example.com>"},
			map[string]any{"email": good},
			map[string]any{"email": freshEmail("bulk-meta"), "metadata": []any{1}},
			map[string]any{"email": f.member.Email},
		}
		r := b.req(t, f.owner.caller, "POST", path, map[string]any{"members": items})
		want(t, r, http.StatusOK, "")
		var out struct {
			Results []struct {
				Email  string      `json:"email"`
				Status string      `json:"status"`
				Error  problemBody `json:"error"`
			} `json:"results"`
		}
		r.decode(t, &out)
		wantResults := []struct{ status, code string }{
			{"failed", "validation_failed"}, {"invited", ""}, {"failed", "validation_failed"}, {"failed", "already_member"},
		}
		if len(out.Results) != len(wantResults) {
			t.Fatalf("results: got %s, want %d", r.body, len(wantResults))
		}
		for i, w := range wantResults {
			if got := out.Results[i]; got.Status != w.status || got.Error.Code != w.code {
				t.Errorf("result %d: got %s %q, want %s %q", i, got.Status, got.Error.Code, w.status, w.code)
			}
		}
		wantLocation(t, b.req(t, f.owner.caller, "POST", path, map[string]any{"members": []any{}}), "body.members")
		many := make([]any, 101)
		for i := range many {
			many[i] = map[string]any{"email": freshEmail("many")}
		}
		wantLocation(t, b.req(t, f.owner.caller, "POST", path, map[string]any{"members": many}), "body.members")
		want(t, b.req(t, f.owner.caller, "POST", path, map[string]any{"members": []any{map[string]any{"email": good, "bogus": 1}}}),
			http.StatusUnprocessableEntity, "validation_failed")
	})
	t.Run("message over 1000 characters", func(t *testing.T) {
		r := b.req(t, f.owner.caller, "POST", "/v1/organizations/"+f.org.ID+"/members", map[string]any{"email": freshEmail("msg"), "message": strings.Repeat("m", 1001)})
		wantLocation(t, r, "body.message")
	})
	t.Run("short password", func(t *testing.T) {
		var ep bodyEndpoint
		for _, e := range f.endpoints {
			if e.name == "activate" {
				ep = e
			}
		}
		for _, pw := range []string{"short", "password", "Password123", "qwertyuiop", strings.Repeat("p", 257)} {
			r := b.req(t, anonymous, "POST", ep.path, map[string]any{"password": pw})
			wantLocation(t, r, "body.password")
		}
	})
}

func TestAPIInputPathIDs(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	owner := b.newUser("owner@example.com")
	org := b.newOrg(owner, "Path Club")
	o := "/v1/organizations/" + org.ID
	for _, bad := range []string{"not-a-uuid", "1", "00000000000000000000000000000000", "{" + org.ID + "}",
		org.ID + "0", url.PathEscape("' OR 1=1 --"), url.PathEscape("日本語"), strings.Repeat("a", 300)} {
		for _, tc := range []struct {
			c            caller
			method, path string
			body         any
		}{
			{service(), "GET", "/v1/users/" + bad, nil},
			{service(), "GET", "/v1/organizations/" + bad, nil},
			{service(), "PATCH", "/v1/organizations/" + bad, map[string]any{"name": "x"}},
			{service(), "DELETE", "/v1/organizations/" + bad, nil},
			{service(), "PUT", "/v1/organizations/" + bad + "/owner", map[string]any{"user_id": owner.ID}},
			{service(), "PUT", o + "/owner", map[string]any{"user_id": bad}},
			{service(), "GET", "/v1/organizations/" + bad + "/members", nil},
			{service(), "POST", "/v1/organizations/" + bad + "/members", map[string]any{"email": freshEmail("p")}},
			{service(), "POST", "/v1/organizations/" + bad + "/members:bulk", map[string]any{"members": []any{map[string]any{"email": freshEmail("p")}}}},
			{service(), "GET", o + "/members/" + bad, nil},
			{service(), "PATCH", o + "/members/" + bad, map[string]any{"is_admin": true}},
			{service(), "DELETE", o + "/members/" + bad, nil},
			{service(), "POST", o + "/members/" + bad + "/reminders", nil},
			{service(), "GET", "/v1/organizations/" + bad + "/invitations", nil},
			{service(), "DELETE", o + "/invitations/" + bad, nil},
			{owner.caller, "POST", "/v1/invitations/" + bad + "/accept", nil},
			{owner.caller, "POST", "/v1/invitations/" + bad + "/decline", nil},
			{anonymous, "GET", "/v1/activation/" + bad + "/tok.en", nil},
			{anonymous, "POST", "/v1/activation/" + bad + "/tok.en", map[string]any{"password": "long enough"}},
			{anonymous, "POST", "/v1/activation/" + bad + "/tok.en/decline", nil},
		} {
			r := b.req(t, tc.c, tc.method, tc.path, tc.body)
			switch {
			case tc.path == o+"/owner": // the bad id is in the body
				// A user_id in the body that is no UUID names no member.
				if r.status != http.StatusConflict && r.status != http.StatusUnprocessableEntity {
					t.Errorf("%s %s: got %d %s, want 409 not_a_member or 422", tc.method, tc.path, r.status, r.body)
				}
			case strings.HasPrefix(tc.path, "/v1/activation/"):
				if r.status != http.StatusNotFound || (r.code() != "token_invalid" && r.code() != "not_found") {
					t.Errorf("%s %s: got %d %s, want 404 token_invalid or not_found", tc.method, tc.path, r.status, r.body)
				}
			default:
				if r.status != http.StatusNotFound || r.code() != "not_found" {
					t.Errorf("%s %s: got %d %s, want 404 not_found", tc.method, tc.path, r.status, r.body)
				}
			}
		}
	}
	// Unknown but well-formed ids are 404 too.
	unknown := "0190a0a0-0000-7000-8000-000000000000"
	for _, p := range []string{"/v1/organizations/" + unknown, o + "/members/" + unknown, "/v1/organizations/" + unknown + "/members"} {
		want(t, b.req(t, service(), "GET", p, nil), http.StatusNotFound, "not_found")
	}
	want(t, b.req(t, service(), "DELETE", o+"/invitations/"+unknown, nil), http.StatusNotFound, "not_found")
}

func TestAPIInputStoredVerbatim(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	owner := b.newUser("owner@example.com")
	for _, s := range []string{
		"Robert'); DROP TABLE organizations;--",
		"日本語 🎉",
		"Ærø",
		`"quoted" \backslash\ <b>html</b> & %s %d $1 ?`,
		"  spaces around  ",
		"null",
		"Ｆｕｌｌｗｉｄｔｈ ﷽ עברית",
	} {
		t.Run(s, func(t *testing.T) {
			r := b.req(t, owner.caller, "POST", "/v1/organizations", map[string]any{"name": s, "metadata": map[string]any{s: s}})
			want(t, r, http.StatusCreated, "")
			var created domain.Organization
			r.decode(t, &created)
			if domain.ValidSlug(created.Slug) != "" {
				t.Errorf("generated slug %q is not a valid slug", created.Slug)
			}
			got := getOrg(t, b, owner.caller, created.ID)
			var meta map[string]string
			if err := json.Unmarshal(got.Metadata, &meta); err != nil {
				t.Fatal(err)
			}
			if got.Name != s || meta[s] != s {
				t.Errorf("round trip: got name %q metadata %s, want %q both", got.Name, got.Metadata, s)
			}
			r = b.req(t, owner.caller, "PATCH", "/v1/organizations/"+created.ID, map[string]any{"name": s + "!"})
			want(t, r, http.StatusOK, "")
			if got := getOrg(t, b, owner.caller, created.ID); got.Name != s+"!" {
				t.Errorf("renamed: got %q, want %q", got.Name, s+"!")
			}

			email := freshEmail("verbatim")
			r = b.req(t, service(), "POST", "/v1/users", map[string]any{"email": email, "name": s, "external_id": s})
			want(t, r, http.StatusCreated, "")
			var u domain.User
			r.decode(t, &u)
			r = b.req(t, service(), "GET", "/v1/users?external_id="+url.QueryEscape(s), nil)
			want(t, r, http.StatusOK, "")
			var p page[domain.User]
			r.decode(t, &p)
			if len(p.Items) != 1 || p.Items[0].Name != s || p.Items[0].ExternalID == nil || *p.Items[0].ExternalID != s {
				t.Errorf("user round trip: got %s, want name and external_id %q", r.body, s)
			}

			r = b.req(t, owner.caller, "POST", "/v1/organizations/"+created.ID+"/members",
				map[string]any{"email": email, "message": s, "metadata": map[string]any{"note": s}})
			want(t, r, http.StatusCreated, "")
			m := getMember(t, b, owner.caller, created.ID, u.ID)
			var mm map[string]string
			if err := json.Unmarshal(m.Metadata, &mm); err != nil {
				t.Fatal(err)
			}
			if mm["note"] != s || m.User.Name != s {
				t.Errorf("member round trip: got metadata %s name %q, want %q", m.Metadata, m.User.Name, s)
			}
			r = b.req(t, service(), "GET", "/v1/users?email="+url.QueryEscape(s), nil)
			if r.status != http.StatusOK && r.status != http.StatusUnprocessableEntity {
				t.Errorf("GET /v1/users?email=%q: got %d %s, want 200 or 422", s, r.status, r.body)
			}
		})
	}
	if n := b.count(t, `SELECT count(*) FROM organizations`); n != 7 {
		t.Errorf("organizations: got %d, want 7", n)
	}
	t.Run("SQL-looking slug is generated safely", func(t *testing.T) {
		o := b.newOrg(owner, "Robert'); DROP TABLE organizations;--")
		if o.Slug != "robert-drop-table-organizations-2" {
			t.Errorf("slug: got %q, want robert-drop-table-organizations-2", o.Slug)
		}
	})
	t.Run("signup keeps names verbatim", func(t *testing.T) {
		r := b.req(t, service(), "POST", "/v1/signup", map[string]any{"email": freshEmail("sig"), "name": "日本語 🎉", "organization_name": "Ærø; DROP TABLE users;--"})
		want(t, r, http.StatusAccepted, "")
		var su struct {
			User         domain.User         `json:"user"`
			Organization domain.Organization `json:"organization"`
		}
		r.decode(t, &su)
		if su.User.Name != "日本語 🎉" || su.Organization.Name != "Ærø; DROP TABLE users;--" || su.Organization.Slug != "aero-drop-table-users" {
			t.Errorf("signup: got %s", r.body)
		}
	})
}

// TestAPIInputUnstorableText sends text Postgres cannot store (NUL, lone surrogates) in
// every free-text field: a 4xx, never a 500.
func TestAPIInputUnstorableText(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	owner := b.newUser("owner@example.com")
	org := b.newOrg(owner, "NUL Club")
	o := "/v1/organizations/" + org.ID
	for _, tc := range []struct {
		name         string
		c            caller
		method, path string
		body         any
	}{
		{"user external_id", service(), "POST", "/v1/users", map[string]any{"email": "a@example.com", "external_id": "a\x00b"}},
		{"user name", service(), "POST", "/v1/users", map[string]any{"email": "b@example.com", "name": "a\x00b"}},
		{"users by email", service(), "GET", "/v1/users?email=a%00b@example.com", nil},
		{"users by external_id", service(), "GET", "/v1/users?external_id=a%00b", nil},
		{"organization name", owner.caller, "POST", "/v1/organizations", map[string]any{"name": "a\x00b"}},
		{"organization metadata value", owner.caller, "POST", "/v1/organizations", map[string]any{"name": "n", "metadata": map[string]any{"a": "\x00"}}},
		{"organization metadata key", owner.caller, "POST", "/v1/organizations", map[string]any{"name": "n", "metadata": map[string]any{"a\x00": 1}}},
		{"organization metadata escaped NUL", owner.caller, "POST", "/v1/organizations", `{"name":"n","metadata":{"a":"\u0000"}}`},
		{"organization metadata lone surrogate", owner.caller, "POST", "/v1/organizations", `{"name":"n","metadata":{"a":"\ud800"}}`},
		{"organization metadata update", owner.caller, "PATCH", o, map[string]any{"metadata": map[string]any{"a": "\x00"}}},
		{"member message", owner.caller, "POST", o + "/members", map[string]any{"email": "c@example.com", "message": "hi\x00"}},
		{"member metadata", owner.caller, "POST", o + "/members", map[string]any{"email": "d@example.com", "metadata": map[string]any{"a": "\x00"}}},
		{"member metadata update", owner.caller, "PATCH", o + "/members/" + owner.ID, map[string]any{"metadata": map[string]any{"a": "\x00"}}},
		{"session email", anonymous, "POST", "/v1/sessions", map[string]any{"email": "owner\x00@example.com", "password": "whatever1"}},
		{"session password", anonymous, "POST", "/v1/sessions", map[string]any{"email": "owner@example.com", "password": "a\x00b"}},
		{"resend email", anonymous, "POST", "/v1/activation/resend", map[string]any{"email": "x\x00@example.com"}},
		{"signup name", anonymous, "POST", "/v1/signup", map[string]any{"email": "e@example.com", "name": "a\x00", "organization_name": "o"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := b.req(t, tc.c, tc.method, tc.path, tc.body)
			if r.status < 400 {
				t.Errorf("got %d %s, want a 4xx", r.status, r.body)
			}
		})
	}
	t.Run("bulk item metadata", func(t *testing.T) {
		r := b.req(t, owner.caller, "POST", o+"/members:bulk", map[string]any{"members": []any{map[string]any{"email": "f@example.com", "metadata": map[string]any{"a": "\x00"}}}})
		want(t, r, http.StatusOK, "")
		var out struct {
			Results []struct {
				Status string      `json:"status"`
				Error  problemBody `json:"error"`
			} `json:"results"`
		}
		r.decode(t, &out)
		if len(out.Results) != 1 || out.Results[0].Status != "failed" || out.Results[0].Error.Status != http.StatusUnprocessableEntity {
			t.Errorf("got %s, want one failed item with a 422 problem", r.body)
		}
	})
}
