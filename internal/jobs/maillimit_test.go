package jobs_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/orgs-dev/orgs/internal/domain"
	"github.com/orgs-dev/orgs/internal/jobs"
	"github.com/orgs-dev/orgs/internal/postgres"
	"github.com/orgs-dev/orgs/internal/postgres/postgrestest"
)

// A scheduled reminder to an address that had its emails this hour does not fail: its
// job waits (snoozed, no attempt used) and the deferral is counted.
func TestScheduledReminderWaitsForTheMailLimit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := postgrestest.New(t)
	store := postgres.NewStore(pool, postgres.StoreConfig{MailLimitRecipient: 1})
	active := true
	owner, _, err := store.UpsertUser(ctx, domain.Actor{Service: "t"}, postgres.UpsertUserInput{Email: "owner@example.com", IsActive: &active})
	if err != nil {
		t.Fatal(err)
	}
	org, err := store.CreateOrganization(ctx, domain.Actor{UserID: owner.ID}, postgres.CreateOrganizationInput{Name: "Limited"})
	if err != nil {
		t.Fatal(err)
	}
	// The invitation is the address's one email this hour.
	res, err := store.AddMember(ctx, domain.Actor{UserID: owner.ID}, org.ID, postgres.AddMemberInput{Email: "i@example.com", SendEmail: true})
	if err != nil {
		t.Fatal(err)
	}

	metrics := jobs.NewReminderMetrics(prometheus.NewRegistry())
	rem := jobs.NewReminders(store, []time.Duration{time.Hour}, metrics, zerolog.New(zerolog.NewTestWriter(t)))
	workers := river.NewWorkers()
	rem.AddWorkers(workers)
	client, err := jobs.NewClient(pool, jobs.ClientConfig{
		Queues: map[string]river.QueueConfig{jobs.QueueReminder: {MaxWorkers: 1}}, Workers: workers,
		RescueAfter: 10 * time.Second, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	rem.SetClient(client)
	if _, err := client.Insert(ctx, jobs.ScheduledReminderArgs{
		InvitationID: res.Invitation.ID, OrganizationID: org.ID, UserID: res.Invitation.UserID, Reminder: 1,
	}, nil); err != nil {
		t.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Stop(context.Background()) })

	waitFor(t, 10*time.Second, func() bool { return countJobs(t, pool, "scheduled_reminder", "scheduled") == 1 })
	var attempt, maxAttempts int
	var scheduledAt time.Time
	if err := pool.QueryRow(ctx, `SELECT attempt, max_attempts, scheduled_at FROM river_job WHERE kind = 'scheduled_reminder'`).Scan(&attempt, &maxAttempts, &scheduledAt); err != nil {
		t.Fatal(err)
	}
	if attempt >= maxAttempts {
		t.Errorf("attempt %d of %d: a snooze must not use an attempt up", attempt, maxAttempts)
	}
	if wait := time.Until(scheduledAt); wait <= 0 || wait > time.Hour {
		t.Errorf("snoozed for %s, want until the window's end", wait)
	}
	if got := testutil.ToFloat64(metrics.Deferred); got != 1 {
		t.Errorf("orgs_reminders_deferred_total: got %v, want 1", got)
	}
	if n := countJobs(t, pool, "send_reminder", "available"); n != 0 {
		t.Errorf("reminder emails: got %d, want none", n)
	}
	var sent int
	if err := pool.QueryRow(ctx, `SELECT reminders_sent FROM invitations WHERE id = $1`, res.Invitation.ID).Scan(&sent); err != nil || sent != 0 {
		t.Errorf("reminders_sent: got %d (%v), want 0", sent, err)
	}
}
