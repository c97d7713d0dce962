package jobs_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/rs/zerolog"

	"github.com/orgs-dev/orgs/internal/jobs"
	"github.com/orgs-dev/orgs/internal/postgres"
)

// startReminderClient starts a River client wired as cmd/reminder's (the reminder queue,
// jobs.NewClient) on pool, without the event consumer, and stops it at the test's end.
func startReminderClient(t *testing.T, pool *pgxpool.Pool, store *postgres.Store, schedule []time.Duration) *river.Client[pgx.Tx] {
	t.Helper()
	logger := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	reg := prometheus.NewRegistry()
	rem := jobs.NewReminders(store, schedule, jobs.NewReminderMetrics(reg), logger)
	w := river.NewWorkers()
	rem.AddWorkers(w)
	client, err := jobs.NewClient(pool, jobs.ClientConfig{
		Queues:       map[string]river.QueueConfig{jobs.QueueReminder: {MaxWorkers: 2}},
		Workers:      w,
		RescueAfter:  10 * time.Second,
		Logger:       slog.New(slog.DiscardHandler),
		ErrorHandler: jobs.NewErrorHandler(logger, reg),
	})
	if err != nil {
		t.Fatal(err)
	}
	rem.SetClient(client)
	if err := client.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = client.Stop(ctx)
	})
	return client
}

// crash leaves the jobs of kind as a worker killed in the middle of its first attempt
// leaves them: running, attempted an hour ago by a client that is gone.
func crash(t *testing.T, pool *pgxpool.Pool, kind string) {
	t.Helper()
	tag, err := pool.Exec(context.Background(), `
		UPDATE river_job SET state = 'running', attempt = 1, attempted_at = now() - interval '1 hour',
			attempted_by = ARRAY['crashed-client']
		WHERE kind = $1`, kind)
	if err != nil {
		t.Fatal(err)
	}
	if tag.RowsAffected() == 0 {
		t.Fatalf("no %s job to crash", kind)
	}
}

// waitRescued waits until the leader's rescuer has dealt with the stuck job of kind and
// requires that it was given another attempt, not discarded.
func waitRescued(t *testing.T, pool *pgxpool.Pool, kind string) {
	t.Helper()
	var state string
	waitFor(t, 15*time.Second, func() bool {
		if err := pool.QueryRow(context.Background(), `SELECT state FROM river_job WHERE kind = $1`, kind).Scan(&state); err != nil {
			t.Fatal(err)
		}
		return state != "running"
	})
	if state != "retryable" && state != "available" {
		t.Fatalf("stuck %s job rescued as %q, want retryable or available", kind, state)
	}
}

// requireLeader waits until a client leads River (the only one running must).
func requireLeader(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	waitFor(t, 10*time.Second, func() bool {
		var n int
		if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM river_leader WHERE expires_at > now()`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	})
}

// A mail job left running by a killed mailer is rescued by the reminder service when the
// reminder leads River, and then sent by the mailer: the invitation email is not lost.
func TestReminderLeaderRescuesMailJob(t *testing.T) {
	t.Parallel()
	b, startMailer := newMailer(t, 2)
	res := b.invite(t, "stuck@example.com", "")
	crash(t, b.pool, jobs.SendInvitationArgs{}.Kind())

	startReminderClient(t, b.pool, b.store, []time.Duration{time.Hour})
	requireLeader(t, b.pool) // the reminder client, the only one running
	waitRescued(t, b.pool, jobs.SendInvitationArgs{}.Kind())

	startMailer()
	msgs := b.sink.WaitFor(t, 1, 20*time.Second)
	if got := msgs[0].To; len(got) != 1 || got[0] != res.Invitation.Email {
		t.Fatalf("to: got %v, want %s", got, res.Invitation.Email)
	}
	waitFor(t, 5*time.Second, func() bool { return countJobs(t, b.pool, jobs.SendInvitationArgs{}.Kind(), "completed") == 1 })
}

// A scheduled reminder job left running by a killed reminder service is rescued by the
// mailer when the mailer leads River, and then worked by the reminder service: the
// reminder email goes out.
func TestMailerLeaderRescuesReminderJob(t *testing.T) {
	t.Parallel()
	b, startMailer := newMailer(t, 2)
	res := b.invite(t, "forgetful@example.com", "")
	inserter, err := river.NewClient(riverpgxv5.New(b.pool), &river.Config{})
	if err != nil {
		t.Fatal(err)
	}
	inv := res.Invitation
	if _, err := inserter.Insert(b.ctx, jobs.ScheduledReminderArgs{
		InvitationID: inv.ID, OrganizationID: inv.OrganizationID, UserID: inv.UserID, Reminder: 1,
	}, nil); err != nil {
		t.Fatal(err)
	}
	crash(t, b.pool, jobs.ScheduledReminderArgs{}.Kind())

	startMailer()
	requireLeader(t, b.pool) // the mailer, the only one running
	b.sink.WaitFor(t, 1, 10*time.Second)
	waitRescued(t, b.pool, jobs.ScheduledReminderArgs{}.Kind())

	startReminderClient(t, b.pool, b.store, []time.Duration{time.Hour})
	msgs := b.sink.WaitFor(t, 2, 20*time.Second)
	if got := msgs[1].Subject; !strings.Contains(got, "Reminder") {
		t.Errorf("second email's subject: got %q, want the reminder's", got)
	}
	waitFor(t, 5*time.Second, func() bool { return countJobs(t, b.pool, jobs.ScheduledReminderArgs{}.Kind(), "completed") == 1 })
}

// A job on a queue whose process does not work its kind (the reminder queue is given a
// mail job) never runs there and is never discarded: the stand-in snoozes it.
func TestStandInSnoozesAJobOfAnotherProcess(t *testing.T) {
	t.Parallel()
	b, _ := newMailer(t, 1)
	res := b.invite(t, "misrouted@example.com", "")
	if _, err := b.pool.Exec(b.ctx, `DELETE FROM river_job`); err != nil {
		t.Fatal(err)
	}
	inserter, err := river.NewClient(riverpgxv5.New(b.pool), &river.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := inserter.Insert(b.ctx, jobs.SendInvitationArgs{InvitationID: res.Invitation.ID}, &river.InsertOpts{Queue: jobs.QueueReminder}); err != nil {
		t.Fatal(err)
	}
	startReminderClient(t, b.pool, b.store, []time.Duration{time.Hour})
	var (
		state   string
		attempt int
		snoozes int
	)
	waitFor(t, 10*time.Second, func() bool {
		if err := b.pool.QueryRow(b.ctx, `SELECT state, attempt, coalesce((metadata->>'snoozes')::int, 0) FROM river_job`).Scan(&state, &attempt, &snoozes); err != nil {
			t.Fatal(err)
		}
		return snoozes > 0
	})
	if state != "scheduled" || attempt != 0 {
		t.Fatalf("misrouted job: state %s, attempt %d; want scheduled with no attempt used", state, attempt)
	}
	if n := b.sink.Count(); n != 0 {
		t.Fatalf("the reminder client sent %d emails, want 0", n)
	}
}
