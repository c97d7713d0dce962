package httpapi_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
)

// Idempotency-Key on POST: a retry replays the first response without doing the work
// again; another body is a conflict; keys are scoped per credential.

func wantReplay(t *testing.T, first, again res) {
	t.Helper()
	if again.status != first.status || !bytes.Equal(again.body, first.body) {
		t.Errorf("replay: got %d %s, want %d %s", again.status, again.body, first.status, first.body)
	}
	if got := again.header.Get("Idempotent-Replayed"); got != "true" {
		t.Errorf("replay: got Idempotent-Replayed %q, want true", got)
	}
	if got := first.header.Get("Idempotent-Replayed"); got != "" {
		t.Errorf("first response: got Idempotent-Replayed %q, want none", got)
	}
}

func TestAPIIdempotency(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	alice := b.newUser("alice@example.com")
	bob := b.newUser("bob@example.com")
	orgs := func(t *testing.T, name string) int {
		t.Helper()
		return b.count(t, `SELECT count(*) FROM organizations WHERE name = $1`, name)
	}

	t.Run("create organization", func(t *testing.T) {
		body := map[string]any{"name": "Idem Org"}
		first := b.req(t, alice.caller, "POST", "/v1/organizations", body, "Idempotency-Key", "key-1")
		want(t, first, http.StatusCreated, "")
		again := b.req(t, alice.caller, "POST", "/v1/organizations", body, "Idempotency-Key", "key-1")
		wantReplay(t, first, again)
		third := b.req(t, alice.caller, "POST", "/v1/organizations", body, "Idempotency-Key", "key-1")
		wantReplay(t, first, third)
		if n := orgs(t, "Idem Org"); n != 1 {
			t.Errorf("organizations after 3 requests with one key: got %d, want 1", n)
		}
		if got := b.outboxTypes(first.decodeID(t)); len(got) != 2 {
			t.Errorf("outbox after replays: got %v, want [org_created member_added]", got)
		}

		t.Run("another body is a conflict", func(t *testing.T) {
			r := b.req(t, alice.caller, "POST", "/v1/organizations", map[string]any{"name": "Other Org"}, "Idempotency-Key", "key-1")
			want(t, r, http.StatusConflict, "idempotency_conflict")
			if n := orgs(t, "Other Org"); n != 0 {
				t.Errorf("organizations after a conflict: got %d, want 0", n)
			}
		})
		t.Run("scoped per credential", func(t *testing.T) {
			r := b.req(t, bob.caller, "POST", "/v1/organizations", body, "Idempotency-Key", "key-1")
			want(t, r, http.StatusCreated, "")
			if r.header.Get("Idempotent-Replayed") != "" || bytes.Equal(r.body, first.body) {
				t.Errorf("another user's request with the same key: got a replay %s", r.body)
			}
			if n := orgs(t, "Idem Org"); n != 2 {
				t.Errorf("organizations: got %d, want 2 (one per user)", n)
			}
			// The service key acting for alice is another credential too.
			r = b.req(t, onBehalf(alice.ID), "POST", "/v1/organizations", body, "Idempotency-Key", "key-1")
			want(t, r, http.StatusCreated, "")
			if n := orgs(t, "Idem Org"); n != 3 {
				t.Errorf("organizations: got %d, want 3", n)
			}
		})
		t.Run("another key does the work", func(t *testing.T) {
			r := b.req(t, alice.caller, "POST", "/v1/organizations", body, "Idempotency-Key", "key-2")
			want(t, r, http.StatusCreated, "")
			if n := orgs(t, "Idem Org"); n != 4 {
				t.Errorf("organizations: got %d, want 4", n)
			}
		})
		t.Run("no key does the work", func(t *testing.T) {
			want(t, b.req(t, alice.caller, "POST", "/v1/organizations", body), http.StatusCreated, "")
			if n := orgs(t, "Idem Org"); n != 5 {
				t.Errorf("organizations: got %d, want 5", n)
			}
		})
	})

	t.Run("add member replays the 201, not already_member", func(t *testing.T) {
		org := b.newOrg(alice, "Idem Members")
		body := map[string]any{"email": "carol@example.com"}
		path := "/v1/organizations/" + org.ID + "/members"
		first := b.req(t, alice.caller, "POST", path, body, "Idempotency-Key", "add-carol")
		want(t, first, http.StatusCreated, "")
		again := b.req(t, alice.caller, "POST", path, body, "Idempotency-Key", "add-carol")
		wantReplay(t, first, again)
		if n := b.count(t, `SELECT count(*) FROM invitations WHERE organization_id = $1`, org.ID); n != 1 {
			t.Errorf("invitations: got %d, want 1", n)
		}
		// The same key on another path is another request.
		r := b.req(t, alice.caller, "POST", "/v1/organizations", map[string]any{"name": "Idem Path"}, "Idempotency-Key", "add-carol")
		want(t, r, http.StatusCreated, "")
	})

	t.Run("an error is replayed too", func(t *testing.T) {
		body := map[string]any{"name": "Taken", "slug": "taken-slug"}
		want(t, b.req(t, alice.caller, "POST", "/v1/organizations", body), http.StatusCreated, "")
		first := b.req(t, alice.caller, "POST", "/v1/organizations", body, "Idempotency-Key", "taken")
		want(t, first, http.StatusConflict, "slug_taken")
		again := b.req(t, alice.caller, "POST", "/v1/organizations", body, "Idempotency-Key", "taken")
		if again.status != first.status || again.code() != "slug_taken" {
			t.Errorf("retry of a 409: got %d %s, want 409 slug_taken", again.status, again.body)
		}
	})

	t.Run("anonymous sign-up", func(t *testing.T) {
		body := map[string]any{"email": "dave@example.com", "name": "Dave", "organization_name": "Dave's"}
		first := b.req(t, anonymous, "POST", "/v1/signup", body, "Idempotency-Key", "signup-dave")
		want(t, first, http.StatusAccepted, "")
		again := b.req(t, anonymous, "POST", "/v1/signup", body, "Idempotency-Key", "signup-dave")
		wantReplay(t, first, again)
		if n := orgs(t, "Dave's"); n != 1 {
			t.Errorf("sign-up organizations: got %d, want 1", n)
		}
		if n := b.count(t, `SELECT count(*) FROM users WHERE lower(email) = 'dave@example.com'`); n != 1 {
			t.Errorf("sign-up users: got %d, want 1", n)
		}
		r := b.req(t, anonymous, "POST", "/v1/signup", with(body, "organization_name", "Dave's Other"), "Idempotency-Key", "signup-dave")
		want(t, r, http.StatusConflict, "idempotency_conflict")
	})

	t.Run("malformed keys", func(t *testing.T) {
		for _, key := range []string{"with space", "tab\there", string(bytes.Repeat([]byte("k"), 256)), "ключ"} {
			r := b.req(t, alice.caller, "POST", "/v1/organizations", map[string]any{"name": "Bad Key"}, "Idempotency-Key", key)
			if r.status != http.StatusUnprocessableEntity && r.status != http.StatusBadRequest {
				t.Errorf("key %q: got %d %s, want 400 or 422", key, r.status, r.body)
			}
		}
		if n := orgs(t, "Bad Key"); n != 0 {
			t.Errorf("organizations made with malformed keys: got %d, want 0", n)
		}
	})
}

// TestAPIIdempotencyConcurrentRetries sends one request with one key from many clients
// at once, as clients that lost their connection do: one change, one answer for all.
func TestAPIIdempotencyConcurrentRetries(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	alice := b.newUser("alice@example.com")
	org := b.newOrg(alice, "Racing")
	for _, tc := range []struct {
		name, path string
		body       map[string]any
		count      string
	}{
		{"create organization without a slug", "/v1/organizations", map[string]any{"name": "Same Name"}, `SELECT count(*) FROM organizations WHERE name = 'Same Name'`},
		{"invite", "/v1/organizations/" + org.ID + "/members", map[string]any{"email": "racer@example.com"}, `SELECT count(*) FROM invitations WHERE lower(email) = 'racer@example.com'`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const n = 8
			results := make(chan res, n)
			for range n {
				go func() {
					r, err := b.try(alice.caller, "POST", tc.path, tc.body, "Idempotency-Key", "race-"+strings.ReplaceAll(tc.name, " ", "-"))
					if err != nil {
						t.Error(err)
					}
					results <- r
				}()
			}
			var first res
			for i := range n {
				r := <-results
				want(t, r, http.StatusCreated, "")
				if i == 0 {
					first = r
				} else if !bytes.Equal(r.body, first.body) {
					t.Errorf("answers differ:\n%s\n%s", r.body, first.body)
				}
			}
			if got := b.count(t, tc.count); got != 1 {
				t.Errorf("made %d, want 1", got)
			}
		})
	}
}

// TestAPIIdempotencyRetryAfterStateMoved: a retry whose request would now be refused
// (the link is used, the member was added) still gets the first answer.
func TestAPIIdempotencyRetryAfterStateMoved(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	r := b.req(t, anonymous, "POST", "/v1/signup", map[string]any{"email": "eve@example.com", "name": "Eve", "organization_name": "Eve's"})
	want(t, r, http.StatusAccepted, "")
	userID := b.userIDByEmail(t, "eve@example.com")
	path := b.activationPath(t, userID)
	body := map[string]any{"password": "correct horse battery"}
	first := b.req(t, anonymous, "POST", path, body, "Idempotency-Key", "activate-eve")
	want(t, first, http.StatusOK, "")
	// Without the key, the used link is refused...
	want(t, b.req(t, anonymous, "POST", path, body), http.StatusNotFound, "token_invalid")
	// ...with it, the retry gets the first answer, session token included.
	wantReplay(t, first, b.req(t, anonymous, "POST", path, body, "Idempotency-Key", "activate-eve"))
	if n := b.count(t, `SELECT count(*) FROM sessions WHERE user_id = $1`, userID); n != 1 {
		t.Errorf("sessions: %d, want 1", n)
	}

	t.Run("sign-in", func(t *testing.T) {
		login := map[string]any{"email": "eve@example.com", "password": "correct horse battery"}
		first := b.req(t, anonymous, "POST", "/v1/sessions", login, "Idempotency-Key", "login-eve")
		want(t, first, http.StatusCreated, "")
		wantReplay(t, first, b.req(t, anonymous, "POST", "/v1/sessions", login, "Idempotency-Key", "login-eve"))
		if n := b.count(t, `SELECT count(*) FROM sessions WHERE user_id = $1`, userID); n != 2 {
			t.Errorf("sessions: %d, want 2 (activation, one sign-in)", n)
		}
	})
}

// decodeID returns the "id" of a JSON body.
func (r res) decodeID(t *testing.T) string {
	t.Helper()
	var v struct {
		ID string `json:"id"`
	}
	r.decode(t, &v)
	return v.ID
}

// TestAPIIdempotencyReadsTheirOwnWrite: a handler that reads after its change (the
// activation link of send_email: false is bound to the new user's row) sees the change
// of its own, still uncommitted, transaction.
func TestAPIIdempotencyReadsTheirOwnWrite(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	owner := b.newUser("owner@example.com")
	org := b.newOrg(owner, "Own Links")
	body := map[string]any{"email": "linked@example.com", "send_email": false}
	first := b.req(t, service(), "POST", "/v1/organizations/"+org.ID+"/members", body, "Idempotency-Key", "own-link")
	want(t, first, http.StatusCreated, "")
	var m struct {
		ActivationURL string `json:"activation_url"`
	}
	first.decode(t, &m)
	rest, ok := strings.CutPrefix(m.ActivationURL, "http://orgs.test/activate/")
	if !ok {
		t.Fatalf("activation_url: got %q", m.ActivationURL)
	}
	wantReplay(t, first, b.req(t, service(), "POST", "/v1/organizations/"+org.ID+"/members", body, "Idempotency-Key", "own-link"))
	want(t, b.req(t, anonymous, "POST", "/v1/activation/"+rest, map[string]any{"password": "a good password"}), http.StatusOK, "")
}

// An invitation whose row conflicts (it goes to Postgres after the member's, with the
// outbox rows) answers 409 already_member with an Idempotency-Key too, keeps nothing, and
// the key's retry gets the same answer.
func TestAPIIdempotentInvitationConflict(t *testing.T) {
	t.Parallel()
	b := setupAPI(t)
	alice := b.newUser("alice@example.com")
	org := b.newOrg(alice, "Conflicts")
	body := map[string]any{"email": "twice@example.com"}
	first := b.req(t, alice.caller, "POST", "/v1/organizations/"+org.ID+"/members", body)
	want(t, first, http.StatusCreated, "")
	// A pending invitation without its membership.
	if _, err := b.pool.Exec(context.Background(), `DELETE FROM memberships WHERE organization_id = $1 AND user_id <> $2`, org.ID, alice.ID); err != nil {
		t.Fatal(err)
	}
	r := b.req(t, alice.caller, "POST", "/v1/organizations/"+org.ID+"/members", body, "Idempotency-Key", "conflict-1")
	want(t, r, http.StatusConflict, "already_member")
	again := b.req(t, alice.caller, "POST", "/v1/organizations/"+org.ID+"/members", body, "Idempotency-Key", "conflict-1")
	want(t, again, http.StatusConflict, "already_member")
	if n := b.count(t, `SELECT count(*) FROM memberships WHERE organization_id = $1`, org.ID); n != 1 {
		t.Errorf("memberships: got %d, want 1 (the owner's)", n)
	}
}
