package jobs_test

import (
	"strings"
	"testing"
	"time"

	"github.com/orgs-dev/orgs/internal/domain"
	"github.com/orgs-dev/orgs/internal/postgres"
)

// The notification to an existing user who is added carries the adder's message, as the
// invitation does: verbatim in the text, escaped in the HTML.
func TestNotificationEmailHasTheMessage(t *testing.T) {
	t.Parallel()
	b := setupMailer(t)
	active, name := true, "Grace"
	if _, _, err := b.store.UpsertUser(b.ctx, domain.Actor{Service: "t"}, postgres.UpsertUserInput{Email: "grace@example.com", Name: &name, IsActive: &active}); err != nil {
		t.Fatal(err)
	}
	const msg = "Welcome <b>aboard</b> & see you Monday"
	if res := b.invite(t, "grace@example.com", msg); res.Status != "added" {
		t.Fatalf("got %q, want added (a notification)", res.Status)
	}
	m := b.sink.WaitFor(t, 1, 10*time.Second)[0]
	if !strings.Contains(m.Subject, "added you to Vizsla Club") {
		t.Fatalf("subject %q: want the notification", m.Subject)
	}
	if text := strings.ReplaceAll(m.Text, "\r\n", "\n"); !strings.Contains(text, "Ada Admin wrote:\n\n"+msg+"\n") {
		t.Errorf("text lacks the message:\n%s", m.Text)
	}
	if strings.Contains(m.HTML, "<b>aboard</b>") || !strings.Contains(m.HTML, "Welcome &lt;b&gt;aboard&lt;/b&gt; &amp; see you Monday") {
		t.Errorf("HTML lacks the escaped message:\n%s", m.HTML)
	}
}
