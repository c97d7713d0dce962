package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orgs-dev/orgs/internal/domain"
	"github.com/orgs-dev/orgs/internal/postgres"
	"github.com/orgs-dev/orgs/internal/postgres/postgrestest"
	"github.com/orgs-dev/orgs/internal/token"
)

type testBundle struct {
	store *postgres.Store
	ctx   context.Context
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	pool := postgrestest.New(t)
	return &testBundle{store: postgres.NewStore(pool, postgres.StoreConfig{}), ctx: context.Background()}
}

// activeUser creates an active user through the customer-user upsert.
func (b *testBundle) activeUser(t *testing.T, email string) domain.User {
	t.Helper()
	active := true
	u, _, err := b.store.UpsertUser(b.ctx, domain.Actor{Service: "test"}, postgres.UpsertUserInput{Email: email, IsActive: &active})
	if err != nil {
		t.Fatalf("upsert user %s: %v", email, err)
	}
	return u
}

// outboxTypes returns the event types in the outbox for org, in (xid, pos) order.
func (b *testBundle) outboxTypes(t *testing.T, orgID string) []string {
	t.Helper()
	rows, err := b.store.Pool().Query(b.ctx, `SELECT type FROM outbox WHERE organization_id = $1 ORDER BY xid, pos`, orgID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var types []string
	for rows.Next() {
		var s string
		_ = rows.Scan(&s)
		types = append(types, s)
	}
	return types
}

func TestOrganizationLifecycle(t *testing.T) {
	t.Parallel()
	b := setup(t)
	owner := b.activeUser(t, "owner@example.com")
	alice := b.activeUser(t, "Alice@Example.com")
	actor := domain.Actor{UserID: owner.ID}

	org, err := b.store.CreateOrganization(b.ctx, actor, postgres.CreateOrganizationInput{Name: "Vizsla Club"})
	if err != nil {
		t.Fatal(err)
	}
	if org.Slug != "vizsla-club" || org.OwnerID != owner.ID || !org.IsActive {
		t.Fatalf("got %+v, want slug vizsla-club owned by %s", org, owner.ID)
	}
	org2, err := b.store.CreateOrganization(b.ctx, actor, postgres.CreateOrganizationInput{Name: "Vizsla  club!"})
	if err != nil || org2.Slug != "vizsla-club-2" {
		t.Fatalf("second slug: got %q (%v), want vizsla-club-2", org2.Slug, err)
	}

	res, err := b.store.AddMember(b.ctx, actor, org.ID, postgres.AddMemberInput{Email: "alice@example.COM", SendEmail: true})
	if err != nil || res.Status != "added" || res.Member.User.ID != alice.ID {
		t.Fatalf("add alice: got %+v, %v", res, err)
	}
	if _, err := b.store.AddMember(b.ctx, actor, org.ID, postgres.AddMemberInput{Email: "ALICE@example.com"}); !errors.Is(err, domain.ErrAlreadyMember) {
		t.Fatalf("add alice twice: got %v, want ErrAlreadyMember", err)
	}
	if err := b.store.RemoveMember(b.ctx, actor, org.ID, owner.ID); !errors.Is(err, domain.ErrOwnerCannotBeRemoved) {
		t.Fatalf("remove owner: got %v", err)
	}
	no := false
	if _, err := b.store.UpdateMember(b.ctx, actor, org.ID, owner.ID, postgres.UpdateMemberInput{IsAdmin: &no}); !errors.Is(err, domain.ErrOwnerMustBeAdmin) {
		t.Fatalf("demote owner: got %v", err)
	}
	if _, err := b.store.TransferOwnership(b.ctx, actor, org.ID, alice.ID); err != nil {
		t.Fatal(err)
	}
	m, err := b.store.FindMember(b.ctx, actor, org.ID, owner.ID)
	if err != nil || !m.IsAdmin || m.IsOwner || m.Role != domain.RoleAdmin {
		t.Fatalf("old owner: got %+v, %v; want admin, not owner", m, err)
	}
	// invite a new user
	inv, err := b.store.AddMember(b.ctx, domain.Actor{UserID: alice.ID}, org.ID, postgres.AddMemberInput{Email: "new@example.com", SendEmail: true})
	if err != nil || inv.Status != "invited" || inv.Invitation == nil || inv.Member.User.IsActive {
		t.Fatalf("invite: got %+v, %v", inv, err)
	}
	if err := b.store.DeleteOrganization(b.ctx, actor, org.ID); !errors.Is(err, domain.ErrForbidden) {
		t.Fatalf("delete by non-owner: got %v, want ErrForbidden", err)
	}
	if err := b.store.DeleteOrganization(b.ctx, domain.Actor{UserID: alice.ID}, org.ID); err != nil {
		t.Fatal(err)
	}
	got := b.outboxTypes(t, org.ID)
	want := []string{"org_created", "member_added", "member_added", "member_updated", "owner_changed",
		"member_added", "user_invited", "member_removed", "member_removed", "member_removed", "org_deleted"}
	if !slices.Equal(got, want) {
		t.Fatalf("outbox:\n got %v\nwant %v", got, want)
	}
}

func TestSignUpActivate(t *testing.T) {
	t.Parallel()
	b := setup(t)
	u, org, err := b.store.SignUp(b.ctx, postgres.SignUpInput{Email: "Bob@example.com", Name: "Bob", OrganizationName: "Bob's Ærø Café"})
	if err != nil {
		t.Fatal(err)
	}
	if u.IsActive || org.IsActive || org.Slug != "bob-s-aero-cafe" {
		t.Fatalf("got user %+v org %+v", u, org)
	}
	_, orgs, err := b.store.FindActivation(b.ctx, u.ID)
	if err != nil || len(orgs) != 1 {
		t.Fatalf("find activation: %v %v", orgs, err)
	}
	link, err := b.store.FindActivationRecipient(b.ctx, u.ID)
	if err != nil || link.Email != "Bob@example.com" || !link.LinksResetAt.IsZero() {
		t.Fatalf("find activation recipient: got %+v, %v; want Bob@example.com, never activated", link, err)
	}
	hash := "x"
	u2, _, err := b.store.Activate(b.ctx, link, postgres.ActivateInput{PasswordHash: &hash, SessionHash: []byte("0123456789")})
	if err != nil || !u2.IsActive {
		t.Fatalf("activate: %+v %v", u2, err)
	}
	if _, _, err := b.store.Activate(b.ctx, link, postgres.ActivateInput{SessionHash: []byte("abc")}); !errors.Is(err, domain.ErrTokenInvalid) {
		t.Fatalf("second activation: got %v, want ErrTokenInvalid", err)
	}
	if _, _, err := b.store.SignUp(b.ctx, postgres.SignUpInput{Email: "bob@EXAMPLE.com", OrganizationName: "x"}); !errors.Is(err, domain.ErrEmailTaken) {
		t.Fatalf("sign-up of active email: got %v, want ErrEmailTaken", err)
	}
}

// TestActivationRecipient checks what activation links are bound to: every activation
// (by link or by the customer's upsert) moves links_reset_at forward, a deactivation keeps
// it, and the store refuses an activation or a decline for a recipient that is no longer
// the user's (another address, or activated since).
func TestActivationRecipient(t *testing.T) {
	t.Parallel()
	b := setup(t)
	owner := b.activeUser(t, "owner@example.com")
	org, err := b.store.CreateOrganization(b.ctx, domain.Actor{UserID: owner.ID}, postgres.CreateOrganizationInput{Name: "Links"})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := b.store.FindActivationRecipient(b.ctx, owner.ID); err != nil || r.LinksResetAt.IsZero() {
		t.Fatalf("a user created active: got %+v, %v; want an activation time", r, err)
	}
	for _, id := range []string{"not-a-uuid", "0190b7a4-8f7e-7c4e-9d7e-3f1d2c3b4a59"} {
		if _, err := b.store.FindActivationRecipient(b.ctx, id); !errors.Is(err, domain.ErrTokenInvalid) {
			t.Errorf("unknown user %q: got %v, want ErrTokenInvalid", id, err)
		}
	}
	invite := func(email string) {
		t.Helper()
		if _, err := b.store.AddMember(b.ctx, domain.Actor{UserID: owner.ID}, org.ID, postgres.AddMemberInput{Email: email}); err != nil {
			t.Fatalf("invite %s: %v", email, err)
		}
	}
	upsert := func(in postgres.UpsertUserInput) domain.User {
		t.Helper()
		u, _, err := b.store.UpsertUser(b.ctx, domain.Actor{Service: "test"}, in)
		if err != nil {
			t.Fatalf("upsert %+v: %v", in, err)
		}
		return u
	}
	recipient := func(id string) token.Recipient {
		t.Helper()
		r, err := b.store.FindActivationRecipient(b.ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	active, inactive := true, false

	// Activated by link, deactivated, invited again: the first link's recipient is gone.
	invite("dora@example.com")
	dora := upsert(postgres.UpsertUserInput{Email: "dora@example.com"})
	first := recipient(dora.ID)
	if _, _, err := b.store.Activate(b.ctx, first, postgres.ActivateInput{SessionHash: []byte("s1")}); err != nil {
		t.Fatal(err)
	}
	activated := recipient(dora.ID)
	if activated.LinksResetAt.IsZero() {
		t.Fatal("activation did not record its time")
	}
	upsert(postgres.UpsertUserInput{Email: "dora@example.com", IsActive: &inactive})
	if got := recipient(dora.ID); !got.LinksResetAt.Equal(activated.LinksResetAt) {
		t.Errorf("deactivation moved links_reset_at: got %v, want %v", got.LinksResetAt, activated.LinksResetAt)
	}
	if err := b.store.RemoveMember(b.ctx, domain.Actor{UserID: owner.ID}, org.ID, dora.ID); err != nil {
		t.Fatal(err)
	}
	invite("dora@example.com")
	if _, _, err := b.store.Activate(b.ctx, first, postgres.ActivateInput{SessionHash: []byte("s2")}); !errors.Is(err, domain.ErrTokenInvalid) {
		t.Fatalf("activation for the recipient before the first activation: got %v, want ErrTokenInvalid", err)
	}
	if _, err := b.store.DeclineActivation(b.ctx, first); !errors.Is(err, domain.ErrTokenInvalid) {
		t.Fatalf("decline for the recipient before the first activation: got %v, want ErrTokenInvalid", err)
	}
	// The customer reactivates her: a new activation time, so links made after the first
	// activation die too.
	upsert(postgres.UpsertUserInput{Email: "dora@example.com", IsActive: &active})
	if got := recipient(dora.ID); !got.LinksResetAt.After(activated.LinksResetAt) {
		t.Errorf("reactivation by upsert: links_reset_at %v, want after %v", got.LinksResetAt, activated.LinksResetAt)
	}

	// The address changes by external_id: the recipient at the former address is gone.
	ext := "crm-42"
	upsert(postgres.UpsertUserInput{Email: "eve@example.com", ExternalID: &ext})
	invite("eve@example.com")
	eve := upsert(postgres.UpsertUserInput{Email: "eve@example.com", ExternalID: &ext})
	former := recipient(eve.ID)
	upsert(postgres.UpsertUserInput{Email: "eve@new.example.com", ExternalID: &ext})
	if got := recipient(eve.ID); got.Email != "eve@new.example.com" {
		t.Errorf("recipient after the change: got %q, want eve@new.example.com", got.Email)
	}
	if _, err := b.store.DeclineActivation(b.ctx, former); !errors.Is(err, domain.ErrTokenInvalid) {
		t.Fatalf("decline for the former address: got %v, want ErrTokenInvalid", err)
	}
	if _, _, err := b.store.Activate(b.ctx, former, postgres.ActivateInput{SessionHash: []byte("s3")}); !errors.Is(err, domain.ErrTokenInvalid) {
		t.Fatalf("activation for the former address: got %v, want ErrTokenInvalid", err)
	}
	// Her pending invitation moved with her: the former address is free to be invited as
	// someone else.
	invs, err := b.store.FindInvitations(b.ctx, domain.Actor{UserID: owner.ID}, org.ID, postgres.InvitationFilter{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	for _, inv := range invs.Items {
		if inv.UserID == eve.ID && inv.Status == domain.StatusPending && inv.Email != "eve@new.example.com" {
			t.Errorf("pending invitation of the moved user: email %q, want eve@new.example.com", inv.Email)
		}
	}
	invite("eve@example.com")
	current := recipient(eve.ID)
	current.Email = "EVE@new.example.com" // addresses compare case-insensitively
	if _, _, err := b.store.Activate(b.ctx, current, postgres.ActivateInput{SessionHash: []byte("s4")}); err != nil {
		t.Fatalf("activation for the current address: %v", err)
	}
}

func TestConcurrentTransfers(t *testing.T) {
	t.Parallel()
	b := setup(t)
	owner := b.activeUser(t, "o@example.com")
	x := b.activeUser(t, "x@example.com")
	y := b.activeUser(t, "y@example.com")
	a := domain.Actor{UserID: owner.ID}
	org, err := b.store.CreateOrganization(b.ctx, a, postgres.CreateOrganizationInput{Name: "race"})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []domain.User{x, y} {
		if _, err := b.store.AddMember(b.ctx, a, org.ID, postgres.AddMemberInput{Email: u.Email}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, 3)
	wg.Add(3)
	go func() { defer wg.Done(); _, errs[0] = b.store.TransferOwnership(b.ctx, a, org.ID, x.ID) }()
	go func() { defer wg.Done(); _, errs[1] = b.store.TransferOwnership(b.ctx, a, org.ID, y.ID) }()
	go func() { defer wg.Done(); errs[2] = b.store.RemoveMember(b.ctx, a, org.ID, x.ID) }()
	wg.Wait()
	got, err := b.store.FindOrganization(b.ctx, domain.Actor{Service: "t"}, org.ID)
	if err != nil {
		t.Fatal(err)
	}
	var owners int
	if err := b.store.Pool().QueryRow(b.ctx, `SELECT count(*) FROM memberships m JOIN organizations o ON o.id = m.organization_id AND o.owner_id = m.user_id WHERE o.id = $1`, org.ID).Scan(&owners); err != nil || owners != 1 {
		t.Fatalf("owner memberships: got %d (%v), want 1 (errors %v)", owners, err, errs)
	}
	if got.OwnerID == owner.ID && errs[0] == nil && errs[1] == nil {
		t.Fatalf("both transfers succeeded but owner unchanged")
	}
}

func TestRemindInvitation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	owner := b.activeUser(t, "o@example.com")
	org, err := b.store.CreateOrganization(b.ctx, domain.Actor{UserID: owner.ID}, postgres.CreateOrganizationInput{Name: "r"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := b.store.AddMember(b.ctx, domain.Actor{UserID: owner.ID}, org.ID, postgres.AddMemberInput{Email: "i@example.com", SendEmail: true})
	if err != nil {
		t.Fatal(err)
	}
	id := res.Invitation.ID
	// Reminder 1 whose successor is already due is skipped for it.
	if sent, err := b.store.RemindInvitation(b.ctx, id, 1, time.Nanosecond); err != nil || sent {
		t.Fatalf("superseded reminder: sent %v (%v), want skipped", sent, err)
	}
	if sent, err := b.store.RemindInvitation(b.ctx, id, 1, time.Hour); err != nil || !sent {
		t.Fatalf("reminder 1: sent %v (%v), want sent", sent, err)
	}
	if sent, err := b.store.RemindInvitation(b.ctx, id, 1, time.Hour); err != nil || sent {
		t.Fatalf("reminder 1 again: sent %v (%v), want skipped", sent, err)
	}
	if sent, err := b.store.RemindInvitation(b.ctx, id, 2, 0); err != nil || !sent {
		t.Fatalf("reminder 2: sent %v (%v), want sent", sent, err)
	}
	var n int
	_ = b.store.Pool().QueryRow(b.ctx, `SELECT reminders_sent FROM invitations WHERE id = $1`, id).Scan(&n)
	if n != 2 {
		t.Fatalf("reminders_sent: got %d, want 2", n)
	}
}

func TestAcceptKeepsTheMembershipsAdminFlag(t *testing.T) {
	t.Parallel()
	b := setup(t)
	owner := b.activeUser(t, "o@example.com")
	bob := b.activeUser(t, "bob@example.com")
	a := domain.Actor{UserID: owner.ID}
	org, _ := b.store.CreateOrganization(b.ctx, a, postgres.CreateOrganizationInput{Name: "x"})
	res, err := b.store.AddMember(b.ctx, a, org.ID, postgres.AddMemberInput{Email: bob.Email, IsAdmin: true, RequireAcceptance: true})
	if err != nil {
		t.Fatal(err)
	}
	no := false
	if _, err := b.store.UpdateMember(b.ctx, a, org.ID, bob.ID, postgres.UpdateMemberInput{IsAdmin: &no}); err != nil {
		t.Fatal(err)
	}
	inv, err := b.store.RespondToInvitation(b.ctx, domain.Actor{UserID: bob.ID}, res.Invitation.ID, true)
	if err != nil || inv.IsAdmin {
		t.Fatalf("accept: got %+v, %v; want an accepted invitation with is_admin false", inv, err)
	}
	m, err := b.store.FindMember(b.ctx, a, org.ID, bob.ID)
	if err != nil || m.IsAdmin || m.Status != domain.MemberActive {
		t.Fatalf("after accept: got %+v, %v; want an active plain member", m, err)
	}
}

func TestOnlyTheInvitedUserResponds(t *testing.T) {
	t.Parallel()
	b := setup(t)
	owner := b.activeUser(t, "o@example.com")
	a := domain.Actor{UserID: owner.ID}
	ext := "ext-x"
	active := true
	x, _, err := b.store.UpsertUser(b.ctx, domain.Actor{Service: "t"}, postgres.UpsertUserInput{Email: "x@example.com", ExternalID: &ext, IsActive: &active})
	if err != nil {
		t.Fatal(err)
	}
	org, _ := b.store.CreateOrganization(b.ctx, a, postgres.CreateOrganizationInput{Name: "x"})
	res, err := b.store.AddMember(b.ctx, a, org.ID, postgres.AddMemberInput{Email: x.Email, RequireAcceptance: true})
	if err != nil {
		t.Fatal(err)
	}
	// X changes address; Y takes X's old one.
	if _, _, err := b.store.UpsertUser(b.ctx, domain.Actor{Service: "t"}, postgres.UpsertUserInput{Email: "x2@example.com", ExternalID: &ext}); err != nil {
		t.Fatal(err)
	}
	y := b.activeUser(t, "x@example.com")
	if _, err := b.store.RespondToInvitation(b.ctx, domain.Actor{UserID: y.ID}, res.Invitation.ID, true); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("another user accepting: got %v, want ErrNotFound", err)
	}
	m, _ := b.store.FindMember(b.ctx, a, org.ID, x.ID)
	if m.Status != domain.MemberPending {
		t.Fatalf("X's membership: got %q, want pending", m.Status)
	}
}

func TestConcurrentBulkAddsDoNotDeadlock(t *testing.T) {
	t.Parallel()
	b := setup(t)
	owner := b.activeUser(t, "o@example.com")
	a := domain.Actor{UserID: owner.ID}
	orgA, _ := b.store.CreateOrganization(b.ctx, a, postgres.CreateOrganizationInput{Name: "a"})
	orgB, _ := b.store.CreateOrganization(b.ctx, a, postgres.CreateOrganizationInput{Name: "b"})
	for round := 0; round < 10; round++ {
		e1, e2 := fmt.Sprintf("one%d@example.com", round), fmt.Sprintf("two%d@example.com", round)
		var wg sync.WaitGroup
		var ra, rb []postgres.BulkResult
		var errA, errB error
		wg.Add(2)
		go func() {
			defer wg.Done()
			ra, errA = b.store.AddMembers(b.ctx, a, orgA.ID, []postgres.AddMemberInput{{Email: e1}, {Email: e2}})
		}()
		go func() {
			defer wg.Done()
			rb, errB = b.store.AddMembers(b.ctx, a, orgB.ID, []postgres.AddMemberInput{{Email: e2}, {Email: e1}})
		}()
		wg.Wait()
		if errA != nil || errB != nil {
			t.Fatalf("round %d: %v, %v", round, errA, errB)
		}
		for _, r := range append(ra, rb...) {
			if r.Err != nil {
				t.Fatalf("round %d: %s failed: %v", round, r.Email, r.Err)
			}
		}
	}
}

// An invitation that sends its email is created with its scheduled reminders, in the same
// transaction; one the customer sends itself (send_email: false) with none.
func TestInvitationIsCreatedWithItsScheduledReminders(t *testing.T) {
	t.Parallel()
	pool := postgrestest.New(t)
	schedule := []time.Duration{time.Hour, 3 * time.Hour, 200 * time.Hour} // the last is after the expiry
	store := postgres.NewStore(pool, postgres.StoreConfig{ReminderSchedule: schedule})
	b := &testBundle{store: store, ctx: context.Background()}
	owner := b.activeUser(t, "owner@example.com")
	actor := domain.Actor{UserID: owner.ID}
	org, err := store.CreateOrganization(b.ctx, actor, postgres.CreateOrganizationInput{Name: "Reminded"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := store.AddMember(b.ctx, actor, org.ID, postgres.AddMemberInput{Email: "new@example.com", SendEmail: true})
	if err != nil || res.Invitation == nil {
		t.Fatalf("invite: %+v %v", res, err)
	}
	inv := res.Invitation
	rows, err := pool.Query(b.ctx, `SELECT (args->>'reminder')::int, scheduled_at, xmin::text FROM river_job
		WHERE kind = 'scheduled_reminder' AND args->>'invitation_id' = $1 ORDER BY 1`, inv.ID)
	if err != nil {
		t.Fatal(err)
	}
	type job struct {
		n    int
		at   time.Time
		xmin string
	}
	var got []job
	for rows.Next() {
		var j job
		if err := rows.Scan(&j.n, &j.at, &j.xmin); err != nil {
			t.Fatal(err)
		}
		got = append(got, j)
	}
	if len(got) != 2 {
		t.Fatalf("scheduled reminders: got %+v, want 2 (the third falls after the expiry)", got)
	}
	for i, j := range got {
		if want := inv.CreatedAt.Add(schedule[i]); j.n != i+1 || !j.at.Equal(want) {
			t.Errorf("reminder %d: got number %d at %s, want at %s", i+1, j.n, j.at, want)
		}
	}
	var invXmin string
	if err := pool.QueryRow(b.ctx, `SELECT xmin::text FROM invitations WHERE id = $1`, inv.ID).Scan(&invXmin); err != nil {
		t.Fatal(err)
	}
	if got[0].xmin != invXmin || got[1].xmin != invXmin {
		t.Errorf("reminders written by transactions %s and %s, the invitation by %s: want the same", got[0].xmin, got[1].xmin, invXmin)
	}

	res, err = store.AddMember(b.ctx, domain.Actor{Service: "test"}, org.ID, postgres.AddMemberInput{Email: "quiet@example.com", SendEmail: false})
	if err != nil || res.Invitation == nil {
		t.Fatalf("invite without email: %+v %v", res, err)
	}
	var n int
	if err := pool.QueryRow(b.ctx, `SELECT count(*) FROM river_job WHERE kind = 'scheduled_reminder' AND args->>'invitation_id' = $1`, res.Invitation.ID).Scan(&n); err != nil || n != 0 {
		t.Errorf("send_email false: %d scheduled reminders (%v), want 0", n, err)
	}
}

// The organizations a user joins on activation are found through indexes: the mailer
// reads them for every activation email, so a scan of every organization would make each
// sign-up's email slower as the organizations grow.
func TestJoinableOrganizationsAreFoundByIndex(t *testing.T) {
	t.Parallel()
	pool := postgrestest.New(t)
	ctx := context.Background()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SET enable_seqscan = off`); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(ctx, `RESET enable_seqscan`) //nolint:errcheck
	rows, err := conn.Query(ctx, `EXPLAIN `+postgres.JoinableOrgsSQL, "0191c3a0-0000-7000-8000-000000000001", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var plan []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, line)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for _, line := range plan {
		if strings.Contains(line, "Seq Scan on organizations") {
			t.Fatalf("the query scans every organization:\n%s", strings.Join(plan, "\n"))
		}
	}
}

// The invitation's row goes to Postgres with the outbox rows, after the member's: a
// conflict there still answers already_member and leaves nothing behind.
func TestDeferredInvitationConflictLeavesNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	owner := b.activeUser(t, "owner@example.com")
	actor := domain.Actor{UserID: owner.ID}
	org, err := b.store.CreateOrganization(b.ctx, actor, postgres.CreateOrganizationInput{Name: "Conflicted"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := b.store.AddMember(b.ctx, actor, org.ID, postgres.AddMemberInput{Email: "twice@example.com", SendEmail: true})
	if err != nil || res.Invitation == nil {
		t.Fatalf("invite: %+v %v", res, err)
	}
	// A pending invitation without its membership: the next invitation's membership
	// goes in, and its invitation conflicts.
	if _, err := b.store.Pool().Exec(b.ctx, `DELETE FROM memberships WHERE organization_id = $1 AND user_id = $2`, org.ID, res.Member.User.ID); err != nil {
		t.Fatal(err)
	}
	before := len(b.outboxTypes(t, org.ID))
	_, err = b.store.AddMember(b.ctx, actor, org.ID, postgres.AddMemberInput{Email: "twice@example.com", SendEmail: true})
	if !errors.Is(err, domain.ErrAlreadyMember) {
		t.Fatalf("second invitation: got %v, want ErrAlreadyMember", err)
	}
	var members, invitations int
	if err := b.store.Pool().QueryRow(b.ctx, `SELECT (SELECT count(*) FROM memberships WHERE organization_id = $1 AND user_id = $2),
		(SELECT count(*) FROM invitations WHERE organization_id = $1)`, org.ID, res.Member.User.ID).Scan(&members, &invitations); err != nil {
		t.Fatal(err)
	}
	if members != 0 || invitations != 1 {
		t.Errorf("after the conflict: %d memberships, %d invitations; want 0 and 1 (nothing of the second)", members, invitations)
	}
	if after := len(b.outboxTypes(t, org.ID)); after != before {
		t.Errorf("outbox: %d events after the conflict, %d before", after, before)
	}
}

// River's scheduler finds the due jobs by index among many scheduled ones (the reminders
// of every invitation), instead of reading every job every few seconds.
func TestDueJobsAreFoundByIndex(t *testing.T) {
	t.Parallel()
	pool := postgrestest.New(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `INSERT INTO river_job (kind, args, max_attempts, queue, state, scheduled_at)
		SELECT 'scheduled_reminder', '{}', 10, 'reminder', 'scheduled', now() + n * interval '1 minute'
		FROM generate_series(1, 20000) n`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `ANALYZE river_job`); err != nil {
		t.Fatal(err)
	}
	// The shape of River's JobSchedule query (riverpgxv5's river_job.sql).
	rows, err := pool.Query(ctx, `EXPLAIN SELECT id FROM river_job
		WHERE state IN ('retryable', 'scheduled') AND priority >= 0 AND queue IS NOT NULL AND scheduled_at <= now()
		ORDER BY priority, scheduled_at, id LIMIT 10000 FOR UPDATE`)
	if err != nil {
		t.Fatal(err)
	}
	var plan []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, line)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if p := strings.Join(plan, "\n"); !strings.Contains(p, "river_job_due_idx") {
		t.Fatalf("the scheduler's query does not use river_job_due_idx:\n%s", p)
	}
}
