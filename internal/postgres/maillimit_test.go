package postgres_test

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orgs-dev/orgs/internal/domain"
	"github.com/orgs-dev/orgs/internal/postgres"
	"github.com/orgs-dev/orgs/internal/postgres/postgrestest"
)

// limitBundle is a store with mail limits and a clock the test moves.
type limitBundle struct {
	*testBundle
	clock *atomic.Int64 // Unix nanoseconds
	owner domain.User
}

// setupLimits returns a store limited to recipient emails per address and org emails per
// organization per hour, its clock at 10:20 (40 minutes before the window ends).
func setupLimits(t *testing.T, recipient, org int) *limitBundle {
	t.Helper()
	clock := &atomic.Int64{}
	clock.Store(time.Date(2026, 12, 3, 10, 20, 0, 0, time.UTC).UnixNano())
	store := postgres.NewStore(postgrestest.New(t), postgres.StoreConfig{
		MailLimitRecipient: recipient, MailLimitOrganization: org,
		Now: func() time.Time { return time.Unix(0, clock.Load()) },
	})
	b := &limitBundle{testBundle: &testBundle{store: store, ctx: t.Context()}, clock: clock}
	b.owner = b.activeUser(t, "owner@example.com")
	return b
}

func (b *limitBundle) advance(d time.Duration) { b.clock.Add(int64(d)) }

func (b *limitBundle) org(t *testing.T, name string) domain.Organization {
	t.Helper()
	org, err := b.store.CreateOrganization(b.ctx, domain.Actor{UserID: b.owner.ID}, postgres.CreateOrganizationInput{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	return org
}

func (b *limitBundle) invite(actor domain.Actor, orgID, email string) error {
	_, err := b.store.AddMember(b.ctx, actor, orgID, postgres.AddMemberInput{Email: email, SendEmail: true})
	return err
}

// count returns the single integer query returns.
func (b *limitBundle) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	if err := b.store.Pool().QueryRow(b.ctx, query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func (b *limitBundle) jobs(t *testing.T) int {
	return b.count(t, `SELECT count(*) FROM river_job`)
}

// wantLimited fails unless err is a mail limit's refusal of limit with a wait until the
// window's end (40 minutes at setupLimits' clock).
func wantLimited(t *testing.T, err error, limit string, retryAfter time.Duration) {
	t.Helper()
	var rl *domain.RateLimitError
	if !errors.As(err, &rl) || !errors.Is(err, domain.ErrRateLimited) {
		t.Fatalf("got %v, want a *domain.RateLimitError", err)
	}
	if rl.Limit != limit || rl.RetryAfter != retryAfter {
		t.Fatalf("got %+v, want limit %s, retry after %s", rl, limit, retryAfter)
	}
}

func TestMailLimitRecipient(t *testing.T) {
	t.Parallel()
	b := setupLimits(t, 3, 0)
	me := domain.Actor{UserID: b.owner.ID}
	orgs := make([]domain.Organization, 5)
	for i := range orgs {
		orgs[i] = b.org(t, fmt.Sprintf("Org %d", i))
	}
	for i := range 3 {
		if err := b.invite(me, orgs[i].ID, "Victim@example.com"); err != nil {
			t.Fatalf("invitation %d: %v", i, err)
		}
	}
	jobs, events := b.jobs(t), b.count(t, `SELECT count(*) FROM outbox`)
	// The address (in any case) has had its three emails this hour: nothing changes.
	wantLimited(t, b.invite(me, orgs[3].ID, "victim@EXAMPLE.com"), "recipient", 40*time.Minute)
	if n := b.count(t, `SELECT count(*) FROM memberships WHERE organization_id = $1`, orgs[3].ID); n != 1 {
		t.Fatalf("memberships of the fourth organization: got %d, want only the owner's", n)
	}
	if n := b.count(t, `SELECT count(*) FROM invitations WHERE organization_id = $1`, orgs[3].ID); n != 0 {
		t.Fatalf("invitations of the fourth organization: got %d, want 0", n)
	}
	if got, gotEvents := b.jobs(t), b.count(t, `SELECT count(*) FROM outbox`); got != jobs || gotEvents != events {
		t.Fatalf("jobs %d → %d, events %d → %d: want no change", jobs, got, events, gotEvents)
	}
	// A manual reminder is an email to the address too.
	victim, err := b.store.FindUsers(b.ctx, postgres.UserFilter{Email: "victim@example.com", Limit: 1})
	if err != nil || len(victim.Items) != 1 {
		t.Fatalf("find victim: %v", err)
	}
	_, err = b.store.RemindMember(b.ctx, me, orgs[0].ID, victim.Items[0].ID)
	wantLimited(t, err, "recipient", 40*time.Minute)

	// A service key is not limited, and does not count.
	if err := b.invite(domain.Actor{Service: "billing"}, orgs[3].ID, "victim@example.com"); err != nil {
		t.Fatalf("service key: %v", err)
	}
	if err := b.invite(domain.Actor{Service: "billing", UserID: b.owner.ID}, orgs[4].ID, "victim@example.com"); err != nil {
		t.Fatalf("service key on behalf of a user: %v", err)
	}
	// Another address is not affected.
	if err := b.invite(me, orgs[0].ID, "someone.else@example.com"); err != nil {
		t.Fatalf("another address: %v", err)
	}

	// The next hour, the address may get emails again.
	b.advance(40 * time.Minute)
	if _, err := b.store.RemindMember(b.ctx, me, orgs[0].ID, victim.Items[0].ID); err != nil {
		t.Fatalf("reminder in the next window: %v", err)
	}
	// Pruning keeps the current window only.
	if n, err := b.store.PruneMailLimits(b.ctx); err != nil || n != 2 {
		t.Fatalf("prune: got %d (%v), want the last window's 2 counters", n, err)
	}
	if n := b.count(t, `SELECT count(*) FROM mail_limits`); n != 1 {
		t.Fatalf("counters left: got %d, want 1", n)
	}
}

func TestMailLimitRecipientSparesActiveUsers(t *testing.T) {
	t.Parallel()
	b := setupLimits(t, 1, 0)
	me := domain.Actor{UserID: b.owner.ID}
	alice := b.activeUser(t, "alice@example.com")
	for i := range 3 {
		org := b.org(t, fmt.Sprintf("Org %d", i))
		// A notification, and an invitation that needs accepting, to an active user.
		res, err := b.store.AddMember(b.ctx, me, org.ID, postgres.AddMemberInput{Email: alice.Email, SendEmail: true})
		if err != nil || res.Status != "added" {
			t.Fatalf("add alice to org %d: %+v, %v", i, res, err)
		}
		org2 := b.org(t, fmt.Sprintf("Accept %d", i))
		if _, err := b.store.AddMember(b.ctx, me, org2.ID, postgres.AddMemberInput{Email: alice.Email, RequireAcceptance: true, SendEmail: true}); err != nil {
			t.Fatalf("invite alice to org %d: %v", i, err)
		}
	}
	if n := b.count(t, `SELECT count(*) FROM mail_limits`); n != 0 {
		t.Fatalf("counters: got %d, want none for an active user's address", n)
	}
}

func TestMailLimitOrganization(t *testing.T) {
	t.Parallel()
	b := setupLimits(t, 0, 3)
	me := domain.Actor{UserID: b.owner.ID}
	org, other := b.org(t, "Busy"), b.org(t, "Other")
	alice := b.activeUser(t, "alice@example.com")
	for i := range 2 {
		if err := b.invite(me, org.ID, fmt.Sprintf("new%d@example.com", i)); err != nil {
			t.Fatal(err)
		}
	}
	if res, err := b.store.AddMember(b.ctx, me, org.ID, postgres.AddMemberInput{Email: alice.Email, SendEmail: true}); err != nil || res.Status != "added" {
		t.Fatalf("notification: %+v, %v", res, err)
	}
	// Invitations, notifications and reminders all count.
	wantLimited(t, b.invite(me, org.ID, "new2@example.com"), "organization", 40*time.Minute)
	bob := b.activeUser(t, "bob@example.com")
	wantLimited(t, b.invite(me, org.ID, bob.Email), "organization", 40*time.Minute)
	if _, err := b.store.FindMember(b.ctx, me, org.ID, bob.ID); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("bob after a refused add: got %v, want no membership", err)
	}
	users, _ := b.store.FindUsers(b.ctx, postgres.UserFilter{Email: "new0@example.com", Limit: 1})
	_, err := b.store.RemindMember(b.ctx, me, org.ID, users.Items[0].ID)
	wantLimited(t, err, "organization", 40*time.Minute)
	// Without an email, nothing counts; another organization has its own count.
	if _, err := b.store.AddMember(b.ctx, domain.Actor{Service: "crm", UserID: b.owner.ID}, org.ID, postgres.AddMemberInput{Email: "quiet@example.com"}); err != nil {
		t.Fatalf("add without email: %v", err)
	}
	if err := b.invite(me, other.ID, "new2@example.com"); err != nil {
		t.Fatalf("other organization: %v", err)
	}
}

func TestMailLimitBulkItemFails(t *testing.T) {
	t.Parallel()
	b := setupLimits(t, 0, 2)
	me := domain.Actor{UserID: b.owner.ID}
	org := b.org(t, "Bulk")
	items := []postgres.AddMemberInput{{Email: "a@example.com", SendEmail: true}, {Email: "b@example.com", SendEmail: true}, {Email: "c@example.com", SendEmail: true}}
	results, err := b.store.AddMembers(b.ctx, me, org.ID, items)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range results[:2] {
		if r.Err != nil || r.Status != "invited" {
			t.Fatalf("item %d: got %+v, want invited", i, r)
		}
	}
	wantLimited(t, results[2].Err, "organization", 40*time.Minute)
	if n := b.count(t, `SELECT count(*) FROM memberships WHERE organization_id = $1`, org.ID); n != 3 {
		t.Fatalf("memberships: got %d, want the owner and two invitees", n)
	}
	if n := b.count(t, `SELECT count(*) FROM outbox WHERE organization_id = $1 AND type = 'user_invited'`, org.ID); n != 2 {
		t.Fatalf("user_invited events: got %d, want 2", n)
	}
	if n := b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'send_invitation'`); n != 2 {
		t.Fatalf("invitation jobs: got %d, want 2", n)
	}
}

// Concurrent requests never send more than a limit allows: the count is taken in the
// transaction that enqueues the email, on a row each waits for.
func TestMailLimitConcurrent(t *testing.T) {
	t.Parallel()
	const limit, parallel = 5, 24
	b := setupLimits(t, limit, limit)
	me := domain.Actor{UserID: b.owner.ID}
	orgs := make([]domain.Organization, parallel)
	for i := range orgs {
		orgs[i] = b.org(t, fmt.Sprintf("Org %d", i))
	}
	busy := b.org(t, "Busy")

	run := func(invite func(i int) error) (ok, limited int) {
		t.Helper()
		errs := make([]error, parallel)
		var wg sync.WaitGroup
		for i := range parallel {
			wg.Go(func() { errs[i] = invite(i) })
		}
		wg.Wait()
		for i, err := range errs {
			switch {
			case err == nil:
				ok++
			case errors.Is(err, domain.ErrRateLimited):
				limited++
			default:
				t.Fatalf("request %d: %v", i, err)
			}
		}
		return ok, limited
	}

	// One address invited by many organizations at once.
	ok, limited := run(func(i int) error { return b.invite(me, orgs[i].ID, "victim@example.com") })
	if ok != limit || limited != parallel-limit {
		t.Fatalf("one address: %d sent, %d limited; want %d, %d", ok, limited, limit, parallel-limit)
	}
	if n := b.count(t, `SELECT count(*) FROM invitations WHERE lower(email) = 'victim@example.com'`); n != limit {
		t.Fatalf("invitations of the address: got %d, want %d", n, limit)
	}
	// One organization inviting many addresses at once, singly and in bulk.
	ok, limited = run(func(i int) error {
		if i%2 == 0 {
			return b.invite(me, busy.ID, fmt.Sprintf("p%d@example.com", i))
		}
		res, err := b.store.AddMembers(b.ctx, me, busy.ID, []postgres.AddMemberInput{{Email: fmt.Sprintf("p%d@example.com", i), SendEmail: true}})
		if err != nil {
			return err
		}
		return res[0].Err
	})
	if ok != limit || limited != parallel-limit {
		t.Fatalf("one organization: %d sent, %d limited; want %d, %d", ok, limited, limit, parallel-limit)
	}
	if n := b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'send_invitation'`); n != 2*limit {
		t.Fatalf("invitation jobs: got %d, want %d", n, 2*limit)
	}
}

func TestMailLimitActivations(t *testing.T) {
	t.Parallel()
	b := setupLimits(t, 2, 0)
	for i := range 2 {
		if _, _, err := b.store.SignUp(b.ctx, postgres.SignUpInput{Email: "new@example.com", OrganizationName: fmt.Sprintf("Mine %d", i)}); err != nil {
			t.Fatalf("sign-up %d: %v", i, err)
		}
	}
	orgs := b.count(t, `SELECT count(*) FROM organizations`)
	_, _, err := b.store.SignUp(b.ctx, postgres.SignUpInput{Email: "new@example.com", OrganizationName: "Mine 2"})
	wantLimited(t, err, "recipient", 40*time.Minute)
	if n := b.count(t, `SELECT count(*) FROM organizations`); n != orgs {
		t.Fatalf("organizations: got %d, want %d (nothing created)", n, orgs)
	}
	// A re-send answers as always (no enumeration) and sends nothing. (River folds
	// activation jobs of one user within a minute of real time into one, so the test
	// reads the counters.)
	counted := func(window string) int {
		return b.count(t, `SELECT coalesce(sum(count), 0) FROM mail_limits WHERE scope = 'recipient' AND window_start = $1`, window)
	}
	jobs := b.jobs(t)
	if err := b.store.ResendActivation(b.ctx, "new@example.com"); err != nil {
		t.Fatalf("resend: got %v, want nil", err)
	}
	if got, n := b.jobs(t), counted("2026-12-03T10:00:00Z"); got != jobs || n != 2 {
		t.Fatalf("jobs %d → %d, counted %d: want no job and still 2", jobs, got, n)
	}
	b.advance(time.Hour)
	if err := b.store.ResendActivation(b.ctx, "new@example.com"); err != nil {
		t.Fatal(err)
	}
	if n := counted("2026-12-03T11:00:00Z"); n != 1 {
		t.Fatalf("counted in the next window: got %d, want the re-send", n)
	}
}

// A scheduled reminder counts against its address's limit; beyond it nothing changes and
// the reminder is left for the next window.
func TestMailLimitScheduledReminder(t *testing.T) {
	t.Parallel()
	b := setupLimits(t, 2, 1)
	me := domain.Actor{UserID: b.owner.ID}
	org := b.org(t, "R")
	res, err := b.store.AddMember(b.ctx, me, org.ID, postgres.AddMemberInput{Email: "i@example.com", SendEmail: true})
	if err != nil {
		t.Fatal(err)
	}
	id := res.Invitation.ID
	// The organization's limit (1, used by the invitation) does not apply: no member
	// caused the reminder.
	if sent, err := b.store.RemindInvitation(b.ctx, id, 1, 0); err != nil || !sent {
		t.Fatalf("reminder 1: sent %v (%v), want sent", sent, err)
	}
	sent, err := b.store.RemindInvitation(b.ctx, id, 2, 0)
	if sent {
		t.Fatal("reminder 2 sent beyond the address's limit")
	}
	wantLimited(t, err, "recipient", 40*time.Minute)
	if n := b.count(t, `SELECT scheduled_reminders FROM invitations WHERE id = $1`, id); n != 1 {
		t.Fatalf("scheduled_reminders: got %d, want 1 (reminder 2 still to send)", n)
	}
	b.advance(40 * time.Minute)
	if sent, err := b.store.RemindInvitation(b.ctx, id, 2, 0); err != nil || !sent {
		t.Fatalf("reminder 2 in the next window: sent %v (%v), want sent", sent, err)
	}
}
