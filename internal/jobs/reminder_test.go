package jobs_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/orgs-dev/orgs/internal/domain"
	"github.com/orgs-dev/orgs/internal/events"
	"github.com/orgs-dev/orgs/internal/events/eventstest"
	"github.com/orgs-dev/orgs/internal/jobs"
	"github.com/orgs-dev/orgs/internal/mail"
	"github.com/orgs-dev/orgs/internal/mail/mailtest"
	"github.com/orgs-dev/orgs/internal/postgres"
	"github.com/orgs-dev/orgs/internal/postgres/postgrestest"
	"github.com/orgs-dev/orgs/internal/token"
	"github.com/orgs-dev/orgs/orgsevents"
)

// reminderSystem is the whole reminder path on real components: the store, the outbox
// relay to an embedded JetStream, a mailer to an SMTP sink, and reminder services.
type reminderSystem struct {
	t       *testing.T
	ctx     context.Context
	pool    *pgxpool.Pool
	store   *postgres.Store
	sink    *mailtest.Server
	signer  *token.Signer
	natsURL string
	owner   domain.User
	org     domain.Organization
	// schedule is ORGS_REMINDER_SCHEDULE: of the api's store and of every reminder service.
	schedule []time.Duration
}

func setupReminders(t *testing.T, ttl time.Duration, schedule []time.Duration) *reminderSystem {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	pool := postgrestest.New(t)
	srv := eventstest.RunServer(t)
	_, js := eventstest.Connect(t, srv.ClientURL())
	logger := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	relay := events.NewRelay(pool, js, logger, nil, events.RelayConfig{PollInterval: 5 * time.Millisecond})
	relayDone := make(chan struct{})
	go func() { defer close(relayDone); _ = relay.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-relayDone })

	store := postgres.NewStore(pool, postgres.StoreConfig{InvitationTTL: ttl, AfterCommit: relay.Notify, ReminderSchedule: schedule})
	sink := mailtest.NewServer(t)
	signer, _ := token.NewSigner([]string{"reminder-test-key"})
	renderer, _ := mail.NewRenderer("")
	sender, err := mail.NewSender(sink.URL(), "orgs <no-reply@orgs.test>", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sender.Close() })
	mailer := jobs.NewMailer(pool, store, renderer, sender, signer, jobs.MailConfig{ActivationURL: activationURL}, jobs.NewMailMetrics(prometheus.NewRegistry()))
	workers := river.NewWorkers()
	mailer.AddWorkers(workers)
	mc, err := jobs.NewClient(pool, jobs.ClientConfig{
		Queues: map[string]river.QueueConfig{jobs.QueueMail: {MaxWorkers: 4}}, Workers: workers,
		RescueAfter: 10 * time.Second, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := mc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mc.Stop(context.Background()) })

	active := true
	owner, _, _ := store.UpsertUser(ctx, domain.Actor{Service: "t"}, postgres.UpsertUserInput{Email: "owner@example.com", IsActive: &active})
	org, err := store.CreateOrganization(ctx, domain.Actor{UserID: owner.ID}, postgres.CreateOrganizationInput{Name: "Reminded"})
	if err != nil {
		t.Fatal(err)
	}
	return &reminderSystem{t: t, ctx: ctx, pool: pool, store: store, sink: sink, signer: signer, natsURL: srv.ClientURL(), owner: owner, org: org, schedule: schedule}
}

// startReminderService starts one reminder service (River client on the reminder queue
// with the sweep, plus its durable event consumer) and returns its stop function.
func (s *reminderSystem) startReminderService() (stop func()) {
	t := s.t
	ctx, cancel := context.WithCancel(s.ctx)
	_, js := eventstest.Connect(t, s.natsURL)
	logger := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	rem := jobs.NewReminders(s.store, s.schedule, jobs.NewReminderMetrics(prometheus.NewRegistry()), logger)
	workers := river.NewWorkers()
	rem.AddWorkers(workers)
	client, err := jobs.NewClient(s.pool, jobs.ClientConfig{
		Queues: map[string]river.QueueConfig{jobs.QueueReminder: {MaxWorkers: 4}}, Workers: workers,
		RescueAfter: 10 * time.Second,
		Logger:      slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	rem.SetClient(client)
	if err := client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = rem.RunSweeper(ctx, time.Second) }()
	go func() {
		defer wg.Done()
		if _, err := events.EnsureStream(ctx, js, events.StreamConfig{}); err != nil {
			t.Errorf("ensure stream: %v", err)
			return
		}
		_ = orgsevents.Subscribe(ctx, js, orgsevents.Config{Durable: "orgs-reminder", Types: jobs.EventTypes, Logger: logger}, rem.HandleEvent)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			sctx, c2 := context.WithTimeout(context.Background(), 5*time.Second)
			defer c2()
			_ = client.Stop(sctx)
			wg.Wait()
		})
	}
	t.Cleanup(stop)
	return stop
}

func (s *reminderSystem) invite(email string) domain.Invitation {
	s.t.Helper()
	res, err := s.store.AddMember(s.ctx, domain.Actor{UserID: s.owner.ID}, s.org.ID, postgres.AddMemberInput{Email: email, SendEmail: true})
	if err != nil || res.Invitation == nil {
		s.t.Fatalf("invite %s: %+v %v", email, res, err)
	}
	return *res.Invitation
}

// messagesTo returns the emails the sink accepted for to, by subject prefix.
func (s *reminderSystem) messagesTo(to string) []mailtest.Message {
	var out []mailtest.Message
	for _, m := range s.sink.Messages() {
		if len(m.To) == 1 && m.To[0] == to {
			out = append(out, m)
		}
	}
	return out
}

func (s *reminderSystem) waitMessagesTo(to string, n int, timeout time.Duration) []mailtest.Message {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if m := s.messagesTo(to); len(m) >= n {
			return m
		}
		time.Sleep(20 * time.Millisecond)
	}
	rows, _ := s.pool.Query(s.ctx, `SELECT kind, state, args::text, created_at, scheduled_at, coalesce(finalized_at, now()) FROM river_job ORDER BY id`)
	for rows.Next() {
		var kind, state, args string
		var created, scheduled, fin time.Time
		_ = rows.Scan(&kind, &state, &args, &created, &scheduled, &fin)
		s.t.Logf("job %s %s %s created %s scheduled %s finalized %s", kind, state, args, created.Format("15:04:05.000"), scheduled.Format("15:04:05.000"), fin.Format("15:04:05.000"))
	}
	rows.Close()
	s.t.Fatalf("got %d emails to %s, want %d", len(s.messagesTo(to)), to, n)
	return nil
}

func (s *reminderSystem) remindersSent(invID string) int {
	var n int
	if err := s.pool.QueryRow(s.ctx, `SELECT reminders_sent FROM invitations WHERE id = $1`, invID).Scan(&n); err != nil {
		s.t.Fatal(err)
	}
	return n
}

func TestScheduledRemindersArriveWithWorkingLinks(t *testing.T) {
	t.Parallel()
	s := setupReminders(t, time.Minute, []time.Duration{time.Second, 7 * time.Second})
	// River moves scheduled jobs to available every 5 s, so reminder 1 may leave up to
	// 5 s late; reminder 2 comes 6 s after it, so that both are sent (a reminder that
	// falls due together with the next one is skipped for it).
	s.startReminderService()
	inv := s.invite("late.riser@example.com")
	msgs := s.waitMessagesTo("late.riser@example.com", 3, 25*time.Second)
	for i, m := range msgs[1:] {
		link := mailtest.FindLink(m.Text, "http://orgs.test/activate/")
		parts := strings.Split(strings.TrimPrefix(link, "http://orgs.test/activate/"), "/")
		if len(parts) != 2 || parts[0] != inv.UserID {
			t.Fatalf("reminder %d: link %q", i+1, link)
		}
		if _, err := s.signer.VerifyActivation(token.Recipient{UserID: parts[0], Email: "late.riser@example.com"}, parts[1], time.Now()); err != nil {
			t.Fatalf("reminder %d: link does not verify: %v", i+1, err)
		}
	}
	time.Sleep(500 * time.Millisecond)
	if got := len(s.messagesTo("late.riser@example.com")); got != 3 {
		t.Fatalf("emails: got %d, want 3 (invitation + 2 reminders)", got)
	}
	if got := s.remindersSent(inv.ID); got != 2 {
		t.Fatalf("reminders_sent: got %d, want 2", got)
	}
	var reminded int
	_ = s.pool.QueryRow(s.ctx, `SELECT count(*) FROM outbox WHERE type = 'invitation_reminded'`).Scan(&reminded)
	if reminded != 2 {
		t.Fatalf("invitation_reminded events: got %d, want 2", reminded)
	}
}

func TestNoRemindersAfterTheInvitationEnds(t *testing.T) {
	t.Parallel()
	s := setupReminders(t, time.Minute, []time.Duration{4 * time.Second})
	// 4 s leaves time to end the invitations before the reminders fall due, also on a
	// slow machine or under the race detector.
	s.startReminderService()
	activated := s.invite("activated@example.com")
	revoked := s.invite("revoked@example.com")
	declined := s.invite("declined@example.com")
	removed := s.invite("removed@example.com")
	control := s.invite("control@example.com")
	owner := domain.Actor{UserID: s.owner.ID}
	for _, inv := range []domain.Invitation{activated, revoked, declined, removed, control} {
		s.waitMessagesTo(inv.Email, 1, 10*time.Second)
	}
	// Let the user_invited events schedule the reminders first.
	waitFor(t, 10*time.Second, func() bool { return countJobs(t, s.pool, "scheduled_reminder", "scheduled") == 5 })
	link := func(userID string) token.Recipient {
		r, err := s.store.FindActivationRecipient(s.ctx, userID)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if _, _, err := s.store.Activate(s.ctx, link(activated.UserID), postgres.ActivateInput{SessionHash: []byte("s1")}); err != nil {
		t.Fatal(err)
	}
	if err := s.store.RevokeInvitation(s.ctx, owner, s.org.ID, revoked.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.store.DeclineActivation(s.ctx, link(declined.UserID)); err != nil {
		t.Fatal(err)
	}
	if err := s.store.RemoveMember(s.ctx, owner, s.org.ID, removed.UserID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() bool { return countJobs(t, s.pool, "scheduled_reminder", "cancelled") == 4 })
	s.waitMessagesTo("control@example.com", 2, 20*time.Second)
	time.Sleep(500 * time.Millisecond)
	for _, inv := range []domain.Invitation{activated, revoked, declined, removed} {
		if got := len(s.messagesTo(inv.Email)); got != 1 {
			t.Errorf("%s: got %d emails, want only the invitation", inv.Email, got)
		}
	}
	if got := s.remindersSent(control.ID); got != 1 {
		t.Errorf("control reminders_sent: got %d, want 1", got)
	}
}

func TestExpiry(t *testing.T) {
	t.Parallel()
	s := setupReminders(t, 800*time.Millisecond, []time.Duration{time.Hour})
	s.startReminderService()
	inv := s.invite("slow@example.com")
	waitFor(t, 5*time.Second, func() bool {
		var status string
		_ = s.pool.QueryRow(s.ctx, `SELECT status FROM invitations WHERE id = $1`, inv.ID).Scan(&status)
		return status == "expired"
	})
	var n int
	_ = s.pool.QueryRow(s.ctx, `SELECT count(*) FROM outbox WHERE type = 'invitation_expired' AND data->>'invitation_id' = $1`, inv.ID).Scan(&n)
	if n != 1 {
		t.Fatalf("invitation_expired events: got %d, want 1", n)
	}
	if _, _, err := s.store.FindActivation(s.ctx, inv.UserID); err == nil {
		t.Fatalf("an expired invitation's link still works")
	}
	// A manual reminder renews it.
	if _, err := s.store.RemindMember(s.ctx, domain.Actor{UserID: s.owner.ID}, s.org.ID, inv.UserID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.store.FindActivation(s.ctx, inv.UserID); err != nil {
		t.Fatalf("a renewed invitation's link: %v", err)
	}
}

func TestTwoReminderServicesSendEachReminderOnce(t *testing.T) {
	t.Parallel()
	s := setupReminders(t, time.Minute, []time.Duration{time.Second})
	s.startReminderService()
	s.startReminderService()
	var invs []domain.Invitation
	for _, e := range []string{"a@example.com", "b@example.com", "c@example.com"} {
		invs = append(invs, s.invite(e))
	}
	for _, inv := range invs {
		s.waitMessagesTo(inv.Email, 2, 10*time.Second)
	}
	time.Sleep(time.Second)
	for _, inv := range invs {
		if got := len(s.messagesTo(inv.Email)); got != 2 {
			t.Errorf("%s: got %d emails, want 2", inv.Email, got)
		}
		if got := s.remindersSent(inv.ID); got != 1 {
			t.Errorf("%s: reminders_sent %d, want 1", inv.Email, got)
		}
	}
}

func TestReminderServiceRestartSendsWhatWasDueOnce(t *testing.T) {
	t.Parallel()
	s := setupReminders(t, time.Minute, []time.Duration{3 * time.Second})
	stop := s.startReminderService()
	inv := s.invite("restart@example.com")
	waitFor(t, 5*time.Second, func() bool { return countJobs(t, s.pool, "scheduled_reminder", "scheduled") == 1 })
	stop() // down while the reminder falls due
	time.Sleep(3500 * time.Millisecond)
	if got := len(s.messagesTo(inv.Email)); got != 1 {
		t.Fatalf("while down: got %d emails, want 1", got)
	}
	s.startReminderService()
	s.waitMessagesTo(inv.Email, 2, 20*time.Second)
	time.Sleep(500 * time.Millisecond)
	if got := len(s.messagesTo(inv.Email)); got != 2 {
		t.Fatalf("after restart: got %d emails, want 2", got)
	}
}

func countJobs(t *testing.T, pool *pgxpool.Pool, kind, state string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM river_job WHERE kind = $1 AND state = $2`, kind, state).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func waitFor(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
