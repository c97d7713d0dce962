package jobs_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/orgs-dev/orgs/internal/domain"
	"github.com/orgs-dev/orgs/internal/mail/mailtest"
	"github.com/orgs-dev/orgs/internal/postgres"
	"github.com/orgs-dev/orgs/internal/token"
)

// TestReminderGoesToCurrentAddress is the review's finding: after the customer changed a
// user's address by external_id, reminders (with a fresh link) still went to, and worked
// from, the former address.
func TestReminderGoesToCurrentAddress(t *testing.T) {
	t.Parallel()
	b := setupMailer(t)
	service := domain.Actor{Service: "crm"}
	ext := "crm-7"
	former, current := "former@example.com", "current@example.com"
	if _, _, err := b.store.UpsertUser(b.ctx, service, postgres.UpsertUserInput{Email: former, ExternalID: &ext}); err != nil {
		t.Fatal(err)
	}
	res := b.invite(t, former, "")
	if got := b.sink.WaitFor(t, 1, 10*time.Second)[0].To; len(got) != 1 || got[0] != former {
		t.Fatalf("invitation to: got %v, want %s", got, former)
	}
	if _, _, err := b.store.UpsertUser(b.ctx, service, postgres.UpsertUserInput{Email: current, ExternalID: &ext}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.store.RemindMember(b.ctx, domain.Actor{UserID: b.owner.ID}, b.org.ID, res.Member.User.ID); err != nil {
		t.Fatal(err)
	}
	m := b.sink.WaitFor(t, 2, 10*time.Second)[1]
	if len(m.To) != 1 || m.To[0] != current {
		t.Fatalf("reminder to: got %v, want the current address %s", m.To, current)
	}
	link := mailtest.FindLink(m.Text, "http://orgs.test/activate/")
	parts := strings.Split(strings.TrimPrefix(link, "http://orgs.test/activate/"), "/")
	if len(parts) != 2 || parts[0] != res.Member.User.ID {
		t.Fatalf("reminder link %q is not for user %s", link, res.Member.User.ID)
	}
	if _, err := b.signer.VerifyActivation(token.Recipient{UserID: parts[0], Email: current}, parts[1], time.Now()); err != nil {
		t.Errorf("the reminder's link for the current address: %v", err)
	}
	if _, err := b.signer.VerifyActivation(token.Recipient{UserID: parts[0], Email: former}, parts[1], time.Now()); !errors.Is(err, domain.ErrTokenInvalid) {
		t.Errorf("the reminder's link for the former address: got %v, want domain.ErrTokenInvalid", err)
	}
}
