package jobs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/rs/zerolog"

	"github.com/orgs-dev/orgs/internal/domain"
	"github.com/orgs-dev/orgs/internal/mail"
	"github.com/orgs-dev/orgs/internal/token"
)

// mailStore is what the mail workers read.
type mailStore interface {
	FindInvitationEmail(ctx context.Context, id string) (domain.InvitationEmail, error)
	FindActivationEmail(ctx context.Context, userID string) (domain.ActivationEmail, error)
	FindNotificationEmail(ctx context.Context, orgID, userID, actorID string) (domain.NotificationEmail, error)
	FindActivationRecipient(ctx context.Context, userID string) (token.Recipient, error)
}

// tokenSigner mints activation tokens when an email is built; tokens are never stored.
type tokenSigner interface {
	Activation(r token.Recipient, expires time.Time) string
}

// MailConfig holds what the emails show.
type MailConfig struct {
	SiteName      string
	ActivationURL string // template with {user_id} and {token}
	AcceptURL     string // template with {invitation_id}
	PublicURL     string
}

// MailMetrics are the mailer's metrics.
type MailMetrics struct {
	Sent     *prometheus.CounterVec   // orgs_mail_sent_total{template,result}
	Duration *prometheus.HistogramVec // orgs_mail_send_duration_seconds{template}
}

// NewMailMetrics registers the mailer's metrics on reg.
func NewMailMetrics(reg prometheus.Registerer) *MailMetrics {
	m := &MailMetrics{
		Sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "orgs", Subsystem: "mail", Name: "sent_total",
			Help: "Emails by template and result: sent, skipped (nothing to send any more), duplicate (already accepted before a retry), temporary_error (retried), rejected (permanent, job cancelled).",
		}, []string{"template", "result"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "orgs", Subsystem: "mail", Name: "send_duration_seconds",
			Help:    "Time to hand one email to the mail transport.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}, []string{"template"}),
	}
	// Every template and result has a series from the start, for alerts on rates.
	for _, tmpl := range mail.Templates {
		for _, result := range []string{"sent", "skipped", "duplicate", "temporary_error", "rejected"} {
			m.Sent.WithLabelValues(tmpl, result)
		}
	}
	reg.MustRegister(m.Sent, m.Duration)
	return m
}

// Mailer renders and sends the email jobs. A job whose email the SMTP server accepted is
// recorded in mail_deliveries (many workers' deliveries in one statement) before the
// worker returns and River's completer completes the job (in batches too), so a retry of
// it (after a crash before the completion) never sends again; the one window for a
// duplicate is a crash between the server's acceptance and the record's commit. A first
// attempt has no record to look for: only a retry reads mail_deliveries.
type Mailer struct {
	pool       *pgxpool.Pool
	deliveries *deliveries
	store      mailStore
	renderer   *mail.Renderer
	sender     *mail.Sender
	signer     tokenSigner
	cfg        MailConfig
	metrics    *MailMetrics
	now        func() time.Time
}

// NewMailer returns a Mailer.
func NewMailer(pool *pgxpool.Pool, store mailStore, renderer *mail.Renderer, sender *mail.Sender, signer tokenSigner, cfg MailConfig, metrics *MailMetrics) *Mailer {
	return &Mailer{pool: pool, deliveries: newDeliveries(pool), store: store, renderer: renderer, sender: sender, signer: signer, cfg: cfg, metrics: metrics, now: time.Now}
}

// AddWorkers registers the four email workers.
func (m *Mailer) AddWorkers(w *river.Workers) {
	river.AddWorker(w, &invitationWorker{m: m})
	river.AddWorker(w, &activationWorker{m: m})
	river.AddWorker(w, &reminderWorker{m: m})
	river.AddWorker(w, &notificationWorker{m: m})
}

// ActivationLink fills the activation URL template.
func ActivationLink(tmpl, userID, token string) string {
	return strings.NewReplacer("{user_id}", userID, "{token}", token).Replace(tmpl)
}

// AcceptLink fills the accept URL template.
func AcceptLink(tmpl, invitationID string) string {
	return strings.ReplaceAll(tmpl, "{invitation_id}", invitationID)
}

type invitationWorker struct {
	river.WorkerDefaults[SendInvitationArgs]
	m *Mailer
}

func (w *invitationWorker) Work(ctx context.Context, job *river.Job[SendInvitationArgs]) error {
	return w.m.invitation(ctx, job.JobRow, job.Args.InvitationID, false)
}

type reminderWorker struct {
	river.WorkerDefaults[SendReminderArgs]
	m *Mailer
}

func (w *reminderWorker) Work(ctx context.Context, job *river.Job[SendReminderArgs]) error {
	return w.m.invitation(ctx, job.JobRow, job.Args.InvitationID, true)
}

// invitation sends an invitation (or reminder) email if the invitation is still pending.
func (m *Mailer) invitation(ctx context.Context, job *rivertype.JobRow, invitationID string, reminder bool) error {
	e, err := m.store.FindInvitationEmail(ctx, invitationID)
	tmpl := mail.TemplateInvitation
	if reminder {
		tmpl = mail.TemplateReminder
	}
	if errors.Is(err, domain.ErrNotFound) {
		return m.skip(ctx, job, tmpl)
	}
	if err != nil {
		return err
	}
	if e.Invitation.Status != domain.StatusPending || (e.User.IsActive && !e.Invitation.RequireAcceptance) {
		return m.skip(ctx, job, tmpl)
	}
	data := mail.Data{
		SiteName: m.cfg.SiteName, RecipientEmail: e.User.Email, RecipientName: e.User.Name,
		OrganizationName: e.Organization.Name, ExpiresAt: e.Invitation.ExpiresAt, Message: e.Message, Now: m.now(),
	}
	if e.Inviter != nil {
		data.InviterName, data.InviterEmail = e.Inviter.Name, e.Inviter.Email
	}
	if e.Invitation.RequireAcceptance {
		if !reminder {
			tmpl = mail.TemplateInvitationAccept
		}
		data.Link = AcceptLink(m.cfg.AcceptURL, e.Invitation.ID)
	} else {
		// The link goes to, and works only from, the user's current address.
		r, err := m.store.FindActivationRecipient(ctx, e.User.ID)
		if errors.Is(err, domain.ErrTokenInvalid) {
			return m.skip(ctx, job, tmpl)
		}
		if err != nil {
			return err
		}
		data.RecipientEmail = r.Email
		data.Link = ActivationLink(m.cfg.ActivationURL, e.User.ID, m.signer.Activation(r, e.Invitation.ExpiresAt))
	}
	return m.send(ctx, job, tmpl, e.User.ID, data)
}

type activationWorker struct {
	river.WorkerDefaults[SendActivationArgs]
	m *Mailer
}

func (w *activationWorker) Work(ctx context.Context, job *river.Job[SendActivationArgs]) error {
	m := w.m
	e, err := m.store.FindActivationEmail(ctx, job.Args.UserID)
	if errors.Is(err, domain.ErrTokenInvalid) || errors.Is(err, domain.ErrNotFound) {
		return m.skip(ctx, job, mail.TemplateActivation)
	}
	if err != nil {
		return err
	}
	r, err := m.store.FindActivationRecipient(ctx, e.User.ID)
	if errors.Is(err, domain.ErrTokenInvalid) {
		return m.skip(ctx, job, mail.TemplateActivation)
	}
	if err != nil {
		return err
	}
	data := mail.Data{
		SiteName: m.cfg.SiteName, RecipientEmail: r.Email, RecipientName: e.User.Name,
		ExpiresAt: job.Args.ExpiresAt, Now: m.now(),
		Link: ActivationLink(m.cfg.ActivationURL, e.User.ID, m.signer.Activation(r, job.Args.ExpiresAt)),
	}
	if len(e.Organizations) > 0 {
		data.OrganizationName = e.Organizations[0].Name
	}
	return m.send(ctx, job.JobRow, mail.TemplateActivation, e.User.ID, data)
}

type notificationWorker struct {
	river.WorkerDefaults[SendNotificationArgs]
	m *Mailer
}

func (w *notificationWorker) Work(ctx context.Context, job *river.Job[SendNotificationArgs]) error {
	m := w.m
	e, err := m.store.FindNotificationEmail(ctx, job.Args.OrganizationID, job.Args.UserID, job.Args.ActorID)
	if errors.Is(err, domain.ErrNotFound) {
		return m.skip(ctx, job, mail.TemplateNotification)
	}
	if err != nil {
		return err
	}
	data := mail.Data{
		SiteName: m.cfg.SiteName, RecipientEmail: e.User.Email, RecipientName: e.User.Name,
		OrganizationName: e.Organization.Name, Link: m.cfg.PublicURL, Message: job.Args.Message, Now: m.now(),
	}
	if e.Actor != nil {
		data.InviterName, data.InviterEmail = e.Actor.Name, e.Actor.Email
	}
	return m.send(ctx, job.JobRow, mail.TemplateNotification, e.User.ID, data)
}

// skip completes a job whose email has nothing to say any more (the invitation was
// revoked, the user activated, the organization deleted).
func (m *Mailer) skip(ctx context.Context, job any, tmpl string) error {
	zerolog.Ctx(ctx).Debug().Str("template", tmpl).Msg("email no longer needed")
	m.metrics.Sent.WithLabelValues(tmpl, "skipped").Inc()
	return nil
}

// send renders and sends job's email, unless an earlier attempt of the job was already
// accepted by the server, and records the delivery before the job completes.
func (m *Mailer) send(ctx context.Context, job *rivertype.JobRow, tmpl, recipientID string, data mail.Data) error {
	jobID := job.ID
	if job.Attempt > 1 {
		var delivered bool
		if err := m.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM mail_deliveries WHERE job_id = $1)`, jobID).Scan(&delivered); err != nil {
			return fmt.Errorf("check delivery: %w", err)
		}
		if delivered {
			m.metrics.Sent.WithLabelValues(tmpl, "duplicate").Inc()
			return nil
		}
	}
	content, err := m.renderer.Render(tmpl, data)
	if err != nil {
		m.metrics.Sent.WithLabelValues(tmpl, "rejected").Inc()
		return river.JobCancel(fmt.Errorf("render %s: %w", tmpl, err))
	}
	email := mail.Email{
		To: data.RecipientEmail, ToName: data.RecipientName, Template: tmpl,
		Subject: content.Subject, Text: content.Text, HTML: content.HTML,
		MessageID: fmt.Sprintf("<job-%d@orgs>", jobID),
	}
	if data.InviterName != "" || data.InviterEmail != "" {
		email.FromName = data.FromName() // "<inviter> via <site>", never their free text alone
		email.ReplyTo = data.InviterEmail
	}
	start := time.Now()
	err = m.sender.Send(ctx, email)
	m.metrics.Duration.WithLabelValues(tmpl).Observe(time.Since(start).Seconds())
	if err != nil {
		if mail.IsPermanent(err) {
			m.metrics.Sent.WithLabelValues(tmpl, "rejected").Inc()
			return river.JobCancel(fmt.Errorf("send %s: %w", tmpl, err))
		}
		m.metrics.Sent.WithLabelValues(tmpl, "temporary_error").Inc()
		return fmt.Errorf("send %s: %w", tmpl, err)
	}
	m.metrics.Sent.WithLabelValues(tmpl, "sent").Inc()
	// Record the delivery before River completes the job. The context may be cancelled
	// by a shutdown right now: finish anyway, the email is out.
	return m.deliveries.record(context.WithoutCancel(ctx), jobID, tmpl, recipientID)
}
