package jobs_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/orgs-dev/orgs/internal/domain"
	"github.com/orgs-dev/orgs/internal/jobs"
	"github.com/orgs-dev/orgs/internal/mail"
	"github.com/orgs-dev/orgs/internal/mail/mailtest"
	"github.com/orgs-dev/orgs/internal/postgres"
	"github.com/orgs-dev/orgs/internal/postgres/postgrestest"
	"github.com/orgs-dev/orgs/internal/token"
)

type mailBundle struct {
	pool    *pgxpool.Pool
	store   *postgres.Store
	sink    *mailtest.Server
	signer  *token.Signer
	metrics *jobs.MailMetrics
	reg     *prometheus.Registry
	owner   domain.User
	org     domain.Organization
	ctx     context.Context
}

const activationURL = "http://orgs.test/activate/{user_id}/{token}"

// setupMailer starts a mailer (a River client working the mail queue) against a fresh
// schema and a real SMTP sink, and an organization owned by an active user.
func setupMailer(t *testing.T) *mailBundle {
	t.Helper()
	b, start := newMailer(t, 4)
	start()
	return b
}

// newMailer is setupMailer with the mailer not started yet: start starts it (and stops
// it at the test's end), so that a test can prepare jobs first.
func newMailer(tb testing.TB, workers int) (b *mailBundle, start func()) {
	tb.Helper()
	ctx := context.Background()
	pool := postgrestest.New(tb)
	sink := mailtest.NewServer(tb)
	store := postgres.NewStore(pool, postgres.StoreConfig{})
	renderer, err := mail.NewRenderer("")
	if err != nil {
		tb.Fatal(err)
	}
	sender, err := mail.NewSender(sink.URL(), "orgs <no-reply@orgs.test>", nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = sender.Close() })
	signer, err := token.NewSigner([]string{"test-key-0123456789-0123456789-0123"})
	if err != nil {
		tb.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	metrics := jobs.NewMailMetrics(reg)
	reg.MustRegister(jobs.NewDiscardedCollector(pool, zerolog.New(zerolog.NewTestWriter(tb))))
	mailer := jobs.NewMailer(pool, store, renderer, sender, signer, jobs.MailConfig{
		SiteName: "Orgs Test", ActivationURL: activationURL, AcceptURL: "http://orgs.test/invitations/{invitation_id}", PublicURL: "http://orgs.test",
	}, metrics)
	w := river.NewWorkers()
	mailer.AddWorkers(w)
	logger := zerolog.New(zerolog.NewTestWriter(tb)).Level(zerolog.WarnLevel)
	client, err := jobs.NewClient(pool, jobs.ClientConfig{
		Queues:       map[string]river.QueueConfig{jobs.QueueMail: {MaxWorkers: workers}},
		Workers:      w,
		RescueAfter:  10 * time.Second,
		Logger:       slog.New(slog.DiscardHandler),
		ErrorHandler: jobs.NewErrorHandler(logger, reg),
	})
	if err != nil {
		tb.Fatal(err)
	}
	start = func() {
		if err := client.Start(ctx); err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = client.Stop(sctx)
		})
	}
	active := true
	name := "Ada Admin"
	owner, _, err := store.UpsertUser(ctx, domain.Actor{Service: "t"}, postgres.UpsertUserInput{Email: "ada@example.com", Name: &name, IsActive: &active})
	if err != nil {
		tb.Fatal(err)
	}
	org, err := store.CreateOrganization(ctx, domain.Actor{UserID: owner.ID}, postgres.CreateOrganizationInput{Name: "Vizsla Club"})
	if err != nil {
		tb.Fatal(err)
	}
	return &mailBundle{pool: pool, store: store, sink: sink, signer: signer, metrics: metrics, reg: reg, owner: owner, org: org, ctx: ctx}, start
}

func (b *mailBundle) invite(t *testing.T, email, message string) postgres.AddMemberResult {
	t.Helper()
	res, err := b.store.AddMember(b.ctx, domain.Actor{UserID: b.owner.ID}, b.org.ID, postgres.AddMemberInput{Email: email, Message: message, SendEmail: true})
	if err != nil {
		t.Fatalf("invite %s: %v", email, err)
	}
	return res
}

func TestInvitationEmail(t *testing.T) {
	t.Parallel()
	b := setupMailer(t)
	res := b.invite(t, "new.person@example.com", "Welcome <b>aboard</b>")
	msgs := b.sink.WaitFor(t, 1, 10*time.Second)
	m := msgs[0]
	if len(m.To) != 1 || m.To[0] != "new.person@example.com" {
		t.Fatalf("to: got %v", m.To)
	}
	if from := m.Header.Get("From"); !strings.Contains(from, "Ada Admin") || !strings.Contains(from, "no-reply@orgs.test") {
		t.Errorf("From: got %q, want the inviter's name with our address", from)
	}
	if rt := m.Header.Get("Reply-To"); !strings.Contains(rt, "ada@example.com") {
		t.Errorf("Reply-To: got %q, want the inviter", rt)
	}
	for _, want := range []string{"Vizsla Club", "Ada Admin", "Welcome <b>aboard</b>"} {
		if !strings.Contains(m.Text, want) {
			t.Errorf("text lacks %q:\n%s", want, m.Text)
		}
	}
	if strings.Contains(m.HTML, "<b>aboard</b>") || !strings.Contains(m.HTML, "&lt;b&gt;aboard") {
		t.Errorf("HTML does not escape the message")
	}
	link := mailtest.FindLink(m.Text, "http://orgs.test/activate/")
	if link == "" {
		t.Fatalf("no activation link in:\n%s", m.Text)
	}
	parts := strings.Split(strings.TrimPrefix(link, "http://orgs.test/activate/"), "/")
	if len(parts) != 2 || parts[0] != res.Member.User.ID {
		t.Fatalf("link %q is not for user %s", link, res.Member.User.ID)
	}
	if _, err := b.signer.VerifyActivation(token.Recipient{UserID: parts[0], Email: "new.person@example.com"}, parts[1], time.Now()); err != nil {
		t.Fatalf("the link's token does not verify: %v", err)
	}
	// The counter moves just after the server's acceptance.
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if testutil.ToFloat64(b.metrics.Sent.WithLabelValues("invitation", "sent")) == 1 {
			break
		}
	}
	if got := testutil.ToFloat64(b.metrics.Sent.WithLabelValues("invitation", "sent")); got != 1 {
		t.Errorf("orgs_mail_sent_total{invitation,sent} = %v, want 1", got)
	}
}

func TestNotificationAndAcceptEmails(t *testing.T) {
	t.Parallel()
	b := setupMailer(t)
	active := true
	for _, e := range []string{"bob@example.com", "carol@example.com"} {
		if _, _, err := b.store.UpsertUser(b.ctx, domain.Actor{Service: "t"}, postgres.UpsertUserInput{Email: e, IsActive: &active}); err != nil {
			t.Fatal(err)
		}
	}
	b.invite(t, "bob@example.com", "")
	if _, err := b.store.AddMember(b.ctx, domain.Actor{UserID: b.owner.ID}, b.org.ID, postgres.AddMemberInput{Email: "carol@example.com", RequireAcceptance: true, SendEmail: true}); err != nil {
		t.Fatal(err)
	}
	msgs := b.sink.WaitFor(t, 2, 10*time.Second)
	byTo := map[string]mailtest.Message{}
	for _, m := range msgs {
		byTo[m.To[0]] = m
	}
	if m := byTo["bob@example.com"]; !strings.Contains(m.Text, "Vizsla Club") || strings.Contains(m.Text, "/activate/") {
		t.Errorf("notification: got %q", m.Text)
	}
	if m := byTo["carol@example.com"]; !strings.Contains(m.Text, "http://orgs.test/invitations/") {
		t.Errorf("invitation to accept lacks the accept link: %q", m.Text)
	}
}

func TestTemporaryFailureIsRetriedAndDeliveredOnce(t *testing.T) {
	t.Parallel()
	b := setupMailer(t)
	b.sink.FailNext(1, 451)
	b.invite(t, "retry@example.com", "")
	b.sink.WaitFor(t, 1, 20*time.Second)
	time.Sleep(300 * time.Millisecond) // a second delivery would show up by now
	if n := b.sink.Count(); n != 1 {
		t.Fatalf("delivered %d times, want 1", n)
	}
	if got := testutil.ToFloat64(b.metrics.Sent.WithLabelValues("invitation", "temporary_error")); got != 1 {
		t.Errorf("temporary errors: got %v, want 1", got)
	}
}

func TestPermanentFailureCancelsTheJob(t *testing.T) {
	t.Parallel()
	b := setupMailer(t)
	b.sink.FailNext(1, 550)
	b.invite(t, "nobody@example.com", "")
	deadline := time.Now().Add(10 * time.Second)
	var state string
	for time.Now().Before(deadline) {
		_ = b.store.Pool().QueryRow(b.ctx, `SELECT state FROM river_job WHERE kind = 'send_invitation'`).Scan(&state)
		if state == "cancelled" {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if state != "cancelled" {
		t.Fatalf("job state: got %q, want cancelled", state)
	}
	if n := b.sink.Count(); n != 0 {
		t.Fatalf("delivered %d, want 0", n)
	}
	if got := testutil.ToFloat64(b.metrics.Sent.WithLabelValues("invitation", "rejected")); got != 1 {
		t.Errorf("rejected: got %v, want 1", got)
	}
}

func TestRecordedDeliveryIsNotSentAgain(t *testing.T) {
	t.Parallel()
	b, start := newMailer(t, 1)
	// An invitation whose job is recorded as delivered, as if a previous attempt had been
	// accepted by the server and then failed to complete the job (so this is the job's
	// second attempt: only a retry can find a record).
	b.invite(t, "n@example.com", "")
	if _, err := b.pool.Exec(b.ctx, `INSERT INTO mail_deliveries (job_id, kind) SELECT id, 'invitation' FROM river_job WHERE kind = 'send_invitation'`); err != nil {
		t.Fatal(err)
	}
	if _, err := b.pool.Exec(b.ctx, `UPDATE river_job SET attempt = 1, attempted_at = now() WHERE kind = 'send_invitation'`); err != nil {
		t.Fatal(err)
	}
	start()
	duplicates := b.metrics.Sent.WithLabelValues("invitation", "duplicate")
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && testutil.ToFloat64(duplicates) == 0 {
		time.Sleep(20 * time.Millisecond)
	}
	if got := testutil.ToFloat64(duplicates); got != 1 {
		t.Fatalf("duplicates skipped: got %v, want 1", got)
	}
	if n := b.sink.Count(); n != 0 {
		t.Fatalf("sent %d emails for an already delivered job, want 0", n)
	}
}
