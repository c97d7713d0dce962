package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/orgs-dev/orgs/internal/events/eventstest"
	"github.com/orgs-dev/orgs/internal/mail/mailtest"
	"github.com/orgs-dev/orgs/internal/token"
	"github.com/orgs-dev/orgs/orgsevents"
)

const password = "correct horse battery staple"

// TestFlows runs the invitation and sign-up paths and every issue-3 error code on one
// deployment (api, mailer and reminder processes), and then checks that the events of it
// all reached JetStream in order, each valid, and that the replay endpoint matches.
func TestFlows(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	api := e.start("api", nil)
	mailer := e.start("mailer", nil)
	reminder := e.start("reminder", nil)

	// A subscriber from the start, strictly in stream order.
	_, js := eventstest.Connect(t, e.nats.URL())
	waitForStream(t, js)
	var (
		subMu  sync.Mutex
		subEvs []orgsevents.Event
	)
	subCtx, stopSub := context.WithCancel(context.Background())
	subDone := make(chan error, 1)
	go func() {
		subDone <- orgsevents.Subscribe(subCtx, js, orgsevents.Config{Durable: "e2e", MaxAckPending: 1},
			func(_ context.Context, ev orgsevents.Event) error {
				subMu.Lock()
				subEvs = append(subEvs, ev)
				subMu.Unlock()
				return nil
			})
	}()
	t.Cleanup(func() { stopSub(); <-subDone })

	owner := e.newActiveUser("olivia@example.com", "Olivia Owner")
	org := e.newOrg(owner.ID, "Acme Anvils")
	var secrets []string // tokens and passwords that no event may contain
	secrets = append(secrets, password)

	var invited user
	var invitedLink string
	t.Run("invitation", func(t *testing.T) {
		e := e.with(t)
		start := time.Now()
		m := e.invite(as(owner.ID), org.ID, "new.person@example.com")
		if m.Status != "pending" || m.User.IsActive {
			t.Fatalf("invited member: got status %q, user active %t; want pending, inactive", m.Status, m.User.IsActive)
		}
		msg := e.mailTo("new.person@example.com", 1, 10*time.Second)[0]
		t.Logf("invitation email arrived %v after the API's 201", time.Since(start).Round(100*time.Microsecond))
		for _, s := range []string{"Acme Anvils", "Olivia Owner"} {
			if !strings.Contains(msg.Text, s) || !strings.Contains(msg.HTML, s) {
				t.Errorf("invitation email lacks %q:\n%s", s, msg.Text)
			}
		}
		if msg.ContentType != "multipart/alternative" {
			t.Errorf("invitation email: got %s, want multipart/alternative", msg.ContentType)
		}
		url, uid, tok := e.link(msg)
		invitedLink = url
		secrets = append(secrets, tok)
		if uid != m.User.ID {
			t.Fatalf("link user id: got %s, want %s", uid, m.User.ID)
		}

		// The built-in page shows the form.
		page := e.do(anon, "GET", url, nil, http.StatusOK, "")
		if !strings.Contains(string(page.body), "Set your password") {
			t.Errorf("activation page: no set-password form:\n%s", page.body)
		}
		var a struct {
			User          user           `json:"user"`
			Organizations []organization `json:"organizations"`
		}
		e.do(anon, "GET", "/v1/activation/"+uid+"/"+tok, nil, http.StatusOK, "").decode(t, &a)
		if a.User.ID != uid || len(a.Organizations) != 1 || a.Organizations[0].ID != org.ID {
			t.Fatalf("GET activation: got user %s, organizations %+v; want %s and [%s]", a.User.ID, a.Organizations, uid, org.ID)
		}
		act := e.activate(uid, "new.person@example.com", tok, password, "New Person")
		if act.Session.Token == "" || !act.User.IsActive || act.User.Name != "New Person" {
			t.Fatalf("activation: got %+v, want an active user named New Person with a session", act)
		}
		secrets = append(secrets, act.Session.Token)
		if me, ok := e.me(act.Session.Token); ok && (me.ID != uid || !me.IsActive) {
			t.Fatalf("GET /v1/me: got %+v, want active user %s", me, uid)
		}
		var mm member
		e.do(as(owner.ID), "GET", "/v1/organizations/"+org.ID+"/members/"+uid, nil, http.StatusOK, "").decode(t, &mm)
		if mm.Status != "active" || !mm.User.IsActive {
			t.Fatalf("membership after activation: got status %q (user active %t), want active", mm.Status, mm.User.IsActive)
		}
		var orgs struct{ Items []organization }
		e.do(session(act.Session.Token), "GET", "/v1/organizations", nil, http.StatusOK, "").decode(t, &orgs)
		if len(orgs.Items) != 1 || orgs.Items[0].ID != org.ID {
			t.Fatalf("the new member's organizations: got %+v, want [%s]", orgs.Items, org.ID)
		}
		e.do(anon, "POST", "/v1/sessions", map[string]any{"email": "new.person@example.com", "password": password}, http.StatusCreated, "")
		invited = mm.User
	})

	t.Run("signup", func(t *testing.T) {
		e := e.with(t)
		var su struct {
			User         user         `json:"user"`
			Organization organization `json:"organization"`
		}
		e.do(anon, "POST", "/v1/signup", map[string]any{"email": "fiona@example.com", "name": "Fiona Founder", "organization_name": "Founders Inc"}, http.StatusAccepted, "").decode(t, &su)
		// An anonymous caller is not told the user's id (it could be an invited person's):
		// the link in the email carries it.
		if su.User.IsActive || su.Organization.IsActive || su.User.ID != "" || su.Organization.OwnerID != "" {
			t.Fatalf("sign-up: got %+v, want an inactive user and organization, no ids of the user", su)
		}
		msg := e.mailTo("fiona@example.com", 1, 10*time.Second)[0]
		_, uid, tok := e.link(msg)
		secrets = append(secrets, tok)
		act := e.activate(uid, "fiona@example.com", tok, password, "")
		var o organization
		e.do(session(act.Session.Token), "GET", "/v1/organizations/"+su.Organization.ID, nil, http.StatusOK, "").decode(t, &o)
		if !o.IsActive {
			t.Fatalf("organization after activation: is_active false, want true")
		}
		if me, ok := e.me(act.Session.Token); ok && (!me.IsActive || me.Name != "Fiona Founder") {
			t.Fatalf("GET /v1/me: got %+v, want active Fiona Founder", me)
		}
	})

	t.Run("errors", func(t *testing.T) {
		e := e.with(t)
		if invitedLink == "" {
			t.Skip("the invitation flow failed")
		}
		_, uid, tok := e.link(mailMessage(invitedLink))

		t.Run("used link", func(t *testing.T) {
			e := e.with(t)
			e.do(anon, "POST", "/v1/activation/"+uid+"/"+tok, map[string]any{"password": "another password"}, http.StatusNotFound, "token_invalid")
			e.do(anon, "GET", "/v1/activation/"+uid+"/"+tok, nil, http.StatusNotFound, "token_invalid")
			if page := e.do(anon, "GET", invitedLink, nil, http.StatusNotFound, ""); !strings.Contains(string(page.body), "expired or was already used") {
				t.Errorf("used link's page: want the expired page, got:\n%s", page.body)
			}
		})

		p1 := e.invite(as(owner.ID), org.ID, "pending.one@example.com")
		p2 := e.invite(as(owner.ID), org.ID, "pending.two@example.com")
		_, uid1, tok1 := e.link(e.mailTo("pending.one@example.com", 1, 10*time.Second)[0])
		secrets = append(secrets, tok1)
		if uid1 != p1.User.ID {
			t.Fatalf("link user id: got %s, want %s", uid1, p1.User.ID)
		}
		e.do(anon, "GET", "/v1/activation/"+uid1+"/"+tok1, nil, http.StatusOK, "")

		t.Run("expired link", func(t *testing.T) {
			e := e.with(t)
			signer, err := token.NewSigner([]string{keyA})
			if err != nil {
				t.Fatal(err)
			}
			expired := signer.Activation(token.Recipient{UserID: uid1, Email: "pending.one@example.com"}, time.Now().Add(-time.Minute))
			e.do(anon, "GET", "/v1/activation/"+uid1+"/"+expired, nil, http.StatusNotFound, "token_invalid")
			e.do(anon, "POST", "/v1/activation/"+uid1+"/"+expired, map[string]any{"password": password}, http.StatusNotFound, "token_invalid")
			// The same signer with a future expiry works: the key is right, only time is wrong.
			fresh := signer.Activation(token.Recipient{UserID: uid1, Email: "pending.one@example.com"}, time.Now().Add(time.Hour))
			e.do(anon, "GET", "/v1/activation/"+uid1+"/"+fresh, nil, http.StatusOK, "")
		})

		t.Run("forged link", func(t *testing.T) {
			e := e.with(t)
			i := strings.Index(tok1, ".") + 10
			c := byte('A')
			if tok1[i] == 'A' {
				c = 'B'
			}
			forged := tok1[:i] + string(c) + tok1[i+1:]
			e.do(anon, "GET", "/v1/activation/"+uid1+"/"+forged, nil, http.StatusNotFound, "token_invalid")
			e.do(anon, "POST", "/v1/activation/"+uid1+"/"+forged, map[string]any{"password": password}, http.StatusNotFound, "token_invalid")
			e.do(anon, "GET", "/v1/activation/"+uid1+"/"+tok1+"x", nil, http.StatusNotFound, "token_invalid")
		})

		t.Run("another user's token", func(t *testing.T) {
			e := e.with(t)
			e.do(anon, "GET", "/v1/activation/"+p2.User.ID+"/"+tok1, nil, http.StatusNotFound, "token_invalid")
			e.do(anon, "POST", "/v1/activation/"+p2.User.ID+"/"+tok1, map[string]any{"password": password}, http.StatusNotFound, "token_invalid")
		})

		t.Run("revoked invitation", func(t *testing.T) {
			e := e.with(t)
			m := e.invite(as(owner.ID), org.ID, "revoked@example.com")
			if m.Invitation == nil {
				t.Fatalf("invite: no invitation in the response")
			}
			_, uidR, tokR := e.link(e.mailTo("revoked@example.com", 1, 10*time.Second)[0])
			secrets = append(secrets, tokR)
			e.do(anon, "GET", "/v1/activation/"+uidR+"/"+tokR, nil, http.StatusOK, "")
			e.do(as(owner.ID), "DELETE", "/v1/organizations/"+org.ID+"/invitations/"+m.Invitation.ID, nil, http.StatusNoContent, "")
			e.do(anon, "GET", "/v1/activation/"+uidR+"/"+tokR, nil, http.StatusNotFound, "token_invalid")
			e.do(anon, "POST", "/v1/activation/"+uidR+"/"+tokR, map[string]any{"password": password}, http.StatusNotFound, "token_invalid")
			e.do(as(owner.ID), "DELETE", "/v1/organizations/"+org.ID+"/invitations/"+m.Invitation.ID, nil, http.StatusConflict, "invitation_not_pending")
		})

		t.Run("manual reminder", func(t *testing.T) {
			e := e.with(t)
			e.do(as(owner.ID), "POST", "/v1/organizations/"+org.ID+"/members/"+invited.ID+"/reminders", nil, http.StatusGone, "already_active")
			e.do(as(owner.ID), "POST", "/v1/organizations/"+org.ID+"/members/"+p2.User.ID+"/reminders", nil, http.StatusAccepted, "")
			msgs := e.mailTo("pending.two@example.com", 2, 10*time.Second)
			_, uid2, tok2 := e.link(msgs[len(msgs)-1])
			secrets = append(secrets, tok2)
			e.do(anon, "GET", "/v1/activation/"+uid2+"/"+tok2, nil, http.StatusOK, "")
		})

		t.Run("email taken", func(t *testing.T) {
			e := e.with(t)
			var orgsBefore, orgsAfter, jobsBefore, jobsAfter int
			countRows(t, e, &orgsBefore, &jobsBefore)
			mailsBefore := e.countMailTo(owner.Email)
			e.do(anon, "POST", "/v1/signup", map[string]any{"email": owner.Email, "name": "Someone", "organization_name": "Taken Co"}, http.StatusConflict, "email_taken")
			e.do(anon, "POST", "/v1/signup", map[string]any{"email": strings.ToUpper(owner.Email), "name": "Someone", "organization_name": "Taken Co"}, http.StatusConflict, "email_taken")
			countRows(t, e, &orgsAfter, &jobsAfter)
			if orgsAfter != orgsBefore || jobsAfter != jobsBefore {
				t.Errorf("after 409 email_taken: organizations %d -> %d, activation jobs %d -> %d; want nothing created", orgsBefore, orgsAfter, jobsBefore, jobsAfter)
			}
			// A later sign-up's email is the barrier: the mailer has worked everything before it.
			e.do(anon, "POST", "/v1/signup", map[string]any{"email": "barrier@example.com", "name": "Barrier", "organization_name": "Barrier Co"}, http.StatusAccepted, "")
			e.mailTo("barrier@example.com", 1, 10*time.Second)
			if n := e.countMailTo(owner.Email) - mailsBefore; n != 0 {
				t.Errorf("after 409 email_taken: %d emails to %s, want 0", n, owner.Email)
			}
		})

		t.Run("case-insensitive email", func(t *testing.T) {
			e := e.with(t)
			m := e.invite(as(owner.ID), org.ID, "Bob@Example.com")
			if m.User.Email != "Bob@Example.com" {
				t.Errorf("invited email stored as %q, want as given (Bob@Example.com)", m.User.Email)
			}
			e.do(as(owner.ID), "POST", "/v1/organizations/"+org.ID+"/members", map[string]any{"email": "bob@example.COM"}, http.StatusConflict, "already_member")
			msg := e.mailTo("bob@example.com", 1, 10*time.Second)[0]
			_, uidB, tokB := e.link(msg)
			secrets = append(secrets, tokB)
			e.activate(uidB, "bob@example.com", tokB, password, "")
			var s struct {
				Token string `json:"token"`
				User  user   `json:"user"`
			}
			e.do(anon, "POST", "/v1/sessions", map[string]any{"email": "bob@example.com", "password": password}, http.StatusCreated, "").decode(t, &s)
			if s.User.ID != uidB {
				t.Fatalf("session for bob@example.com: got user %s, want %s", s.User.ID, uidB)
			}
			e.do(anon, "POST", "/v1/sessions", map[string]any{"email": "BOB@EXAMPLE.COM", "password": password}, http.StatusCreated, "")
			e.do(anon, "POST", "/v1/signup", map[string]any{"email": "bob@EXAMPLE.com", "name": "Bob", "organization_name": "Bob Co"}, http.StatusConflict, "email_taken")
		})
	})

	t.Run("email latency", func(t *testing.T) {
		// Idle queue, warm mailer: the time from the API's 201 to the SMTP sink's acceptance.
		e := e.with(t)
		var lat []time.Duration
		for i := range 7 {
			addr := fmt.Sprintf("latency-%d@example.com", i)
			start := time.Now()
			e.invite(as(owner.ID), org.ID, addr)
			e.mailTo(addr, 1, 10*time.Second)
			lat = append(lat, time.Since(start))
			time.Sleep(100 * time.Millisecond)
		}
		slices.Sort(lat)
		t.Logf("API request start to SMTP acceptance, idle queue: min %v, median %v, max %v (n=%d)",
			lat[0].Round(100*time.Microsecond), lat[len(lat)/2].Round(100*time.Microsecond), lat[len(lat)-1].Round(100*time.Microsecond), len(lat))
	})

	t.Run("GET me", func(t *testing.T) {
		e := e.with(t)
		r := e.try(as(owner.ID), "GET", "/v1/me", nil)
		if r.status == http.StatusInternalServerError {
			t.Fatal(bugUserStatusText)
		}
		var u user
		e.do(as(owner.ID), "GET", "/v1/me", nil, http.StatusOK, "").decode(t, &u)
		if u.ID != owner.ID {
			t.Fatalf("GET /v1/me on behalf of %s: got %s", owner.ID, u.ID)
		}
		e.do(svc(), "GET", "/v1/users/"+owner.ID, nil, http.StatusOK, "")
	})

	t.Run("json activation", func(t *testing.T) {
		e := e.with(t)
		e.do(anon, "POST", "/v1/signup", map[string]any{"email": "json.activation@example.com", "name": "Jay Son", "organization_name": "JSON Co"}, http.StatusAccepted, "")
		_, uid, tok := e.link(e.mailTo("json.activation@example.com", 1, 10*time.Second)[0])
		secrets = append(secrets, tok)
		path := "/v1/activation/" + uid + "/" + tok
		r := e.try(anon, "POST", path, map[string]any{"password": password, "name": "Jay"})
		if r.status == http.StatusNotFound && r.code() == "token_invalid" && e.try(anon, "GET", path, nil).status == http.StatusOK {
			t.Fatal(bugActivationJSONText)
		}
		if r.err != nil || r.status != http.StatusOK {
			t.Fatalf("%s: want 200", r)
		}
		e.do(anon, "POST", path, map[string]any{"password": password}, http.StatusNotFound, "token_invalid")
	})

	t.Run("events", func(t *testing.T) {
		e := e.with(t)
		// A last change is the barrier: once it is on the stream, everything committed
		// before it is too.
		var o organization
		e.do(as(owner.ID), "PATCH", "/v1/organizations/"+org.ID, map[string]any{"name": "Acme Anvils and Anchors"}, http.StatusOK, "").decode(t, &o)
		evs := waitStream(t, js, 15*time.Second, "the barrier org_updated", func(evs []orgsevents.Event) bool {
			return slices.ContainsFunc(evs, func(ev orgsevents.Event) bool {
				return ev.Type == "org_updated" && ev.Subject == org.ID && strings.Contains(string(ev.Data), "Anchors")
			})
		})
		checkSeqIncreasing(t, "stream", evs)
		for _, ev := range evs {
			for _, s := range secrets {
				if strings.Contains(string(ev.Data), s) {
					t.Errorf("event %s (%s) contains a secret (token or password)", ev.ID, ev.Type)
				}
			}
		}

		// The invitation flow's events for the organization, in order.
		var orgTypes []string
		for _, ev := range evs {
			if ev.Subject == org.ID {
				orgTypes = append(orgTypes, ev.Type)
			}
		}
		if len(orgTypes) == 0 || orgTypes[0] != "org_created" {
			t.Errorf("first event of the organization: got %v, want org_created", orgTypes)
		}
		for _, pair := range [][2]string{{"org_created", "member_added"}, {"member_added", "user_invited"}, {"user_invited", "invitation_accepted"}, {"invitation_accepted", "invitation_revoked"}, {"invitation_revoked", "invitation_reminded"}} {
			i, j := slices.Index(orgTypes, pair[0]), slices.Index(orgTypes, pair[1])
			if i < 0 || j < 0 || i > j {
				t.Errorf("organization events %v: want %s before %s", orgTypes, pair[0], pair[1])
			}
		}
		if !slices.ContainsFunc(evs, func(ev orgsevents.Event) bool { return ev.Type == "user_activated" && ev.Subject == invited.ID }) {
			t.Errorf("no user_activated event with subject %s (the invited user)", invited.ID)
		}
		for _, typ := range []string{"user_registered", "invitation_revoked", "member_removed", "invitation_reminded", "org_updated"} {
			if !slices.ContainsFunc(evs, func(ev orgsevents.Event) bool { return ev.Type == typ }) {
				t.Errorf("no %s event on the stream", typ)
			}
		}

		// The subscriber got them all, in stream order.
		deadline := time.Now().Add(10 * time.Second)
		for {
			subMu.Lock()
			n := len(subEvs)
			subMu.Unlock()
			if n >= len(evs) || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		subMu.Lock()
		got := append([]orgsevents.Event(nil), subEvs...)
		subMu.Unlock()
		checkSeqIncreasing(t, "subscriber", got)
		if len(got) < len(evs) {
			t.Errorf("subscriber received %d events, the stream holds %d", len(got), len(evs))
		}
		for i := range min(len(got), len(evs)) {
			if got[i].ID != evs[i].ID {
				t.Errorf("subscriber event %d: got %s (%s), want %s (%s)", i, got[i].ID, got[i].Type, evs[i].ID, evs[i].Type)
				break
			}
		}

		// The replay endpoint matches the stream, id for id and seq for seq.
		rep := e.replay()
		if len(rep) < len(evs) {
			t.Errorf("GET /v1/events: %d events, the stream holds %d", len(rep), len(evs))
		}
		for i := range min(len(rep), len(evs)) {
			if err := eventstest.ValidateEvent(rep[i]); err != nil {
				t.Errorf("replayed event %d: %v", i, err)
			}
			ev, err := orgsevents.Parse(rep[i])
			if err != nil {
				t.Fatal(err)
			}
			if ev.ID != evs[i].ID || ev.Seq != evs[i].Seq || ev.Type != evs[i].Type {
				t.Fatalf("replayed event %d: got %s seq %d (%s), stream has %s seq %d (%s)", i, ev.ID, ev.Seq, ev.Type, evs[i].ID, evs[i].Seq, evs[i].Type)
			}
			var a, b map[string]any
			_ = json.Unmarshal(ev.Data, &a)
			_ = json.Unmarshal(evs[i].Data, &b)
			if fmt.Sprint(a) != fmt.Sprint(b) {
				t.Errorf("replayed event %d (%s): data differs from the stream's:\n%s\n%s", i, ev.Type, ev.Data, evs[i].Data)
			}
		}
		// A user session may not replay.
		e.do(session(mustSession(t, e, "new.person@example.com")), "GET", "/v1/events?after=0", nil, http.StatusForbidden, "forbidden")
		t.Logf("%d events on the stream, all valid, in seq order; subscriber and replay agree", len(evs))
	})

	t.Run("no token in logs", func(t *testing.T) {
		for _, p := range []*proc{api, mailer, reminder} {
			for _, s := range secrets[1:] {
				if p.logContains(s) {
					t.Errorf("the %s log contains an activation or session token (issue 3: never in a log line)", p.name)
				}
			}
		}
	})
}

// TestSecretRotation: links signed with key A keep working while the api verifies with
// "B,A", and die when A is dropped.
func TestSecretRotation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	api := e.start("api", nil) // signs and verifies with A
	e.start("mailer", nil)     // signs the emails' links with A
	owner := e.newActiveUser("rotation.owner@example.com", "Rotation Owner")
	org := e.newOrg(owner.ID, "Rotation Org")
	e.invite(as(owner.ID), org.ID, "first@example.com")
	e.invite(as(owner.ID), org.ID, "second@example.com")
	_, uid1, tok1 := e.link(e.mailTo("first@example.com", 1, 10*time.Second)[0])
	_, uid2, tok2 := e.link(e.mailTo("second@example.com", 1, 10*time.Second)[0])

	api.stop()
	api = e.start("api", map[string]string{"ORGS_SECRET_KEY": keyB + "," + keyA})
	e.do(anon, "GET", "/v1/activation/"+uid1+"/"+tok1, nil, http.StatusOK, "")
	e.activate(uid1, "first@example.com", tok1, password, "")
	e.do(anon, "GET", "/v1/activation/"+uid2+"/"+tok2, nil, http.StatusOK, "")

	api.stop()
	e.start("api", map[string]string{"ORGS_SECRET_KEY": keyB})
	e.do(anon, "GET", "/v1/activation/"+uid2+"/"+tok2, nil, http.StatusNotFound, "token_invalid")
	e.do(anon, "POST", "/v1/activation/"+uid2+"/"+tok2, map[string]any{"password": password}, http.StatusNotFound, "token_invalid")
	signerB, err := token.NewSigner([]string{keyB})
	if err != nil {
		t.Fatal(err)
	}
	tokB := signerB.Activation(token.Recipient{UserID: uid2, Email: "second@example.com"}, time.Now().Add(time.Hour))
	e.activate(uid2, "second@example.com", tokB, password, "")
}

// with returns a copy of e that reports to t (for subtests).
func (e *env) with(t *testing.T) *env {
	c := &env{t: t, ctx: e.ctx, pool: e.pool, dbURL: e.dbURL, nats: e.nats, smtp: e.smtp, apiAddr: e.apiAddr, apiURL: e.apiURL, client: e.client}
	return c
}

// mailMessage wraps a link in a message's text, for env.link.
func mailMessage(link string) mailtest.Message { return mailtest.Message{Text: "link: " + link + "\n"} }

func countRows(t *testing.T, e *env, orgs, jobs *int) {
	t.Helper()
	if err := e.pool.QueryRow(e.ctx, "SELECT (SELECT count(*) FROM organizations), (SELECT count(*) FROM river_job WHERE kind = 'send_activation')").Scan(orgs, jobs); err != nil {
		t.Fatal(err)
	}
}

func mustSession(t *testing.T, e *env, email string) string {
	t.Helper()
	var s struct {
		Token string `json:"token"`
	}
	e.do(anon, "POST", "/v1/sessions", map[string]any{"email": email, "password": password}, http.StatusCreated, "").decode(t, &s)
	return s.Token
}

func checkSeqIncreasing(t *testing.T, what string, evs []orgsevents.Event) {
	t.Helper()
	for i := 1; i < len(evs); i++ {
		if evs[i].Seq <= evs[i-1].Seq {
			t.Errorf("%s: event %d (%s) has seq %d after seq %d; want strictly increasing", what, i, evs[i].Type, evs[i].Seq, evs[i-1].Seq)
			return
		}
	}
}

// waitForStream waits until the api has created the ORGS_EVENTS stream.
func waitForStream(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := js.Stream(ctx, orgsevents.StreamName)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream %s: %v", orgsevents.StreamName, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
