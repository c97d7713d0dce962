package jobs_test

import (
	netmail "net/mail"
	"testing"
	"time"

	"github.com/orgs-dev/orgs/internal/domain"
	"github.com/orgs-dev/orgs/internal/postgres"
)

// The From display name is "<inviter's name> via <site>", whatever the inviter typed as
// their name, and Reply-To is the inviter.
func TestFromShowsTheInviterViaTheSite(t *testing.T) {
	t.Parallel()
	b := setupMailer(t)
	for i, tc := range []struct{ name, want string }{
		{`"security@bank.com" <security@bank.com>`, "securitybank.com securitybank.com via Orgs Test"},
		{"", "Orgs Test"},
	} {
		name := tc.name
		if _, _, err := b.store.UpsertUser(b.ctx, domain.Actor{Service: "t"}, postgres.UpsertUserInput{Email: b.owner.Email, Name: &name}); err != nil {
			t.Fatal(err)
		}
		to := []string{"victim1@example.com", "victim2@example.com"}[i]
		b.invite(t, to, "")
		m := b.sink.WaitFor(t, i+1, 10*time.Second)[i]
		from, err := m.Header.AddressList("From")
		if err != nil || len(from) != 1 {
			t.Fatalf("From %q: %v", m.Header.Get("From"), err)
		}
		if got := *from[0]; got != (netmail.Address{Name: tc.want, Address: "no-reply@orgs.test"}) {
			t.Errorf("inviter named %q: From got %q <%s>, want %q <no-reply@orgs.test>", tc.name, got.Name, got.Address, tc.want)
		}
		if rt, err := m.Header.AddressList("Reply-To"); err != nil || len(rt) != 1 || rt[0].Address != b.owner.Email {
			t.Errorf("Reply-To: got %q, want the inviter %s", m.Header.Get("Reply-To"), b.owner.Email)
		}
	}
}
