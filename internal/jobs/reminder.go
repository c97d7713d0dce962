package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/rs/zerolog"

	"github.com/orgs-dev/orgs/internal/domain"
	"github.com/orgs-dev/orgs/orgsevents"
)

// ScheduledReminderArgs sends scheduled reminder number Reminder (1-based, the position in
// ORGS_REMINDER_SCHEDULE) of an invitation, at its ScheduledAt. UserID and
// OrganizationID let the reminder service cancel it when the user activates or leaves.
type ScheduledReminderArgs struct {
	InvitationID   string `json:"invitation_id"`
	OrganizationID string `json:"organization_id"`
	UserID         string `json:"user_id"`
	Reminder       int    `json:"reminder"`
}

// Kind is permanent.
func (ScheduledReminderArgs) Kind() string { return "scheduled_reminder" }

// InsertOpts puts the job on the reminder queue, unique by its arguments so that a
// redelivered user_invited event or two reminder replicas schedule it once.
func (ScheduledReminderArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueReminder, MaxAttempts: 10, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// ExpireInvitationsArgs is the sweep that expires invitations past their expiry.
type ExpireInvitationsArgs struct{}

// Kind is permanent.
func (ExpireInvitationsArgs) Kind() string { return "expire_invitations" }

// InsertOpts puts the sweep on the reminder queue.
func (ExpireInvitationsArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueReminder, MaxAttempts: 3}
}

// reminderStore is what the reminder service changes.
type reminderStore interface {
	RemindInvitation(ctx context.Context, id string, n int, next time.Duration) (bool, error)
	ExpireInvitations(ctx context.Context, limit int) (int, error)
	CountPendingInvitations(ctx context.Context) (int64, error)
}

// ReminderMetrics are the reminder service's metrics.
type ReminderMetrics struct {
	Sent      prometheus.Counter // orgs_reminders_sent_total
	Expired   prometheus.Counter // orgs_invitations_expired_total
	Pending   prometheus.Gauge   // orgs_invitations_pending
	Cancelled prometheus.Counter // orgs_reminders_cancelled_total
	Deferred  prometheus.Counter // orgs_reminders_deferred_total
}

// NewReminderMetrics registers the reminder service's metrics on reg.
func NewReminderMetrics(reg prometheus.Registerer) *ReminderMetrics {
	m := &ReminderMetrics{
		Sent:      prometheus.NewCounter(prometheus.CounterOpts{Namespace: "orgs", Name: "reminders_sent_total", Help: "Scheduled reminders sent."}),
		Expired:   prometheus.NewCounter(prometheus.CounterOpts{Namespace: "orgs", Name: "invitations_expired_total", Help: "Invitations expired by the sweep."}),
		Pending:   prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "orgs", Name: "invitations_pending", Help: "Pending invitations, as of the last sweep."}),
		Cancelled: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "orgs", Name: "reminders_cancelled_total", Help: "Scheduled reminder jobs cancelled by events."}),
		Deferred:  prometheus.NewCounter(prometheus.CounterOpts{Namespace: "orgs", Name: "reminders_deferred_total", Help: "Scheduled reminders put off because the invitee's address had its limit of emails (ORGS_MAIL_LIMIT_RECIPIENT) this hour."}),
	}
	reg.MustRegister(m.Sent, m.Expired, m.Pending, m.Cancelled, m.Deferred)
	return m
}

// Reminders is the reminder service: it schedules a reminder job at each delay of the
// schedule when an invitation is created (from the user_invited event), cancels them when
// the invitation ends (accepted, declined, revoked, expired, member removed, organization
// deleted, user activated), sends them when due, and sweeps expired invitations.
//
// Every reminder job re-checks the invitation under its organization's lock before
// sending (RemindInvitation), so a cancellation that comes late never lets a wrong
// reminder out, and two replicas never send one twice.
type Reminders struct {
	store    reminderStore
	client   *river.Client[pgx.Tx] // set by SetClient once the client exists
	schedule []time.Duration
	metrics  *ReminderMetrics
	logger   zerolog.Logger
}

// NewReminders returns the reminder service for schedule (delays after the invitation).
func NewReminders(store reminderStore, schedule []time.Duration, metrics *ReminderMetrics, logger zerolog.Logger) *Reminders {
	return &Reminders{store: store, schedule: schedule, metrics: metrics, logger: logger}
}

// SetClient gives the service the River client it schedules and cancels jobs with.
func (r *Reminders) SetClient(c *river.Client[pgx.Tx]) { r.client = c }

// AddWorkers registers the reminder and sweep workers.
func (r *Reminders) AddWorkers(w *river.Workers) {
	river.AddWorker(w, &scheduledReminderWorker{r: r})
	river.AddWorker(w, &expireWorker{r: r})
}

// RunSweeper enqueues the expiry sweep every interval until ctx is done. Every reminder
// replica runs it; the job is unique per interval, so the sweep runs once per interval
// whatever the number of replicas. (River's periodic jobs run only on the River leader,
// which may well be a mailer process sharing the database.)
func (r *Reminders) RunSweeper(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		_, err := r.client.Insert(ctx, ExpireInvitationsArgs{}, &river.InsertOpts{
			UniqueOpts: river.UniqueOpts{ByPeriod: max(interval, time.Second)}, // River's minimum
		})
		if err != nil && ctx.Err() == nil {
			r.logger.Warn().Err(err).Msg("enqueue expiry sweep")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// EventTypes are the events HandleEvent reacts to.
var EventTypes = []string{
	orgsevents.TypeUserActivated, orgsevents.TypeInvitationAccepted,
	orgsevents.TypeInvitationDeclined, orgsevents.TypeInvitationRevoked, orgsevents.TypeInvitationExpired,
	orgsevents.TypeMemberRemoved, orgsevents.TypeOrgDeleted,
}

// ScheduledReminders are the reminder jobs of invitation inv on schedule (the delays after
// its creation; those from its expiry on are left out). The api inserts them in the
// transaction that creates the invitation, with its email job.
func ScheduledReminders(inv domain.Invitation, schedule []time.Duration) []river.InsertManyParams {
	var params []river.InsertManyParams
	for i, delay := range schedule {
		at := inv.CreatedAt.Add(delay)
		if !at.Before(inv.ExpiresAt) {
			break
		}
		params = append(params, river.InsertManyParams{
			Args:       ScheduledReminderArgs{InvitationID: inv.ID, OrganizationID: inv.OrganizationID, UserID: inv.UserID, Reminder: i + 1},
			InsertOpts: &river.InsertOpts{ScheduledAt: at},
		})
	}
	return params
}

// HandleEvent reacts to one domain event: it cancels the scheduled reminders of an
// invitation that ended, of a user who activated or left, of a deleted organization. It is
// idempotent: cancelling what is already cancelled does nothing.
func (r *Reminders) HandleEvent(ctx context.Context, ev orgsevents.Event) error {
	var d struct {
		InvitationID   string `json:"invitation_id"`
		OrganizationID string `json:"organization_id"`
		UserID         string `json:"user_id"`
		User           *struct {
			ID string `json:"id"`
		} `json:"user"`
	}
	if err := ev.Decode(&d); err != nil {
		return fmt.Errorf("%w: %v", orgsevents.ErrPoison, err)
	}
	switch ev.Type {
	case orgsevents.TypeInvitationAccepted, orgsevents.TypeInvitationDeclined, orgsevents.TypeInvitationRevoked, orgsevents.TypeInvitationExpired:
		return r.cancel(ctx, map[string]string{"invitation_id": d.InvitationID})
	case orgsevents.TypeUserActivated:
		if d.User == nil {
			return fmt.Errorf("%w: user_activated without user", orgsevents.ErrPoison)
		}
		return r.cancel(ctx, map[string]string{"user_id": d.User.ID})
	case orgsevents.TypeMemberRemoved:
		return r.cancel(ctx, map[string]string{"organization_id": d.OrganizationID, "user_id": d.UserID})
	case orgsevents.TypeOrgDeleted:
		return r.cancel(ctx, map[string]string{"organization_id": d.OrganizationID})
	}
	return nil
}

// cancel cancels the scheduled reminder jobs whose arguments contain match.
func (r *Reminders) cancel(ctx context.Context, match map[string]string) error {
	filter, err := json.Marshal(match)
	if err != nil {
		return err
	}
	params := river.NewJobListParams().
		Kinds(ScheduledReminderArgs{}.Kind()).
		States(rivertype.JobStateScheduled, rivertype.JobStateAvailable, rivertype.JobStateRetryable).
		Where("args @> @filter::jsonb", river.NamedArgs{"filter": string(filter)}).
		First(1000)
	res, err := r.client.JobList(ctx, params)
	if err != nil {
		return fmt.Errorf("find reminders to cancel: %w", err)
	}
	for _, job := range res.Jobs {
		if _, err := r.client.JobCancel(ctx, job.ID); err != nil {
			return fmt.Errorf("cancel reminder job %d: %w", job.ID, err)
		}
		r.metrics.Cancelled.Inc()
	}
	return nil
}

type scheduledReminderWorker struct {
	river.WorkerDefaults[ScheduledReminderArgs]
	r *Reminders
}

func (w *scheduledReminderWorker) Work(ctx context.Context, job *river.Job[ScheduledReminderArgs]) error {
	var next time.Duration
	if n := job.Args.Reminder; n >= 1 && n < len(w.r.schedule) {
		next = w.r.schedule[n] // the delay of reminder n+1
	}
	sent, err := w.r.store.RemindInvitation(ctx, job.Args.InvitationID, job.Args.Reminder, next)
	if errors.Is(err, domain.ErrNotFound) {
		return nil // the invitation went with its organization: nothing to remind
	}
	var limited *domain.RateLimitError
	if errors.As(err, &limited) {
		// The invitee's address had its emails this hour: the reminder waits for the
		// next window (a snooze is no failed attempt), when it is checked again.
		w.r.metrics.Deferred.Inc()
		w.r.logger.Info().Str("invitation_id", job.Args.InvitationID).Dur("retry_after", limited.RetryAfter).Msg("reminder deferred by the mail limit")
		return river.JobSnooze(limited.RetryAfter)
	}
	if err != nil {
		return fmt.Errorf("remind invitation %s: %w", job.Args.InvitationID, err)
	}
	if sent {
		w.r.metrics.Sent.Inc()
	}
	return nil
}

type expireWorker struct {
	river.WorkerDefaults[ExpireInvitationsArgs]
	r *Reminders
}

func (w *expireWorker) Work(ctx context.Context, job *river.Job[ExpireInvitationsArgs]) error {
	const batch = 500
	for {
		n, err := w.r.store.ExpireInvitations(ctx, batch)
		w.r.metrics.Expired.Add(float64(n))
		if err != nil {
			return fmt.Errorf("expire invitations: %w", err)
		}
		if n < batch {
			break
		}
	}
	pending, err := w.r.store.CountPendingInvitations(ctx)
	if err != nil {
		return err
	}
	w.r.metrics.Pending.Set(float64(pending))
	return nil
}
