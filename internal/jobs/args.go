package jobs

import (
	"time"

	"github.com/riverqueue/river"
)

// QueueMail is the queue of the email jobs, worked by cmd/mailer.
const QueueMail = "mail"

// QueueReminder is the queue of the reminder service's jobs, worked by cmd/reminder.
const QueueReminder = "reminder"

// mailUnique makes an email job unique by its arguments among jobs not yet finished and
// those completed recently, so that a retried API call or two schedulers racing do not
// enqueue the same email twice.
func mailUnique() river.UniqueOpts {
	return river.UniqueOpts{ByArgs: true}
}

// SendInvitationArgs sends the invitation email of a new invitation: with an activation
// link to an inactive user, or with the accept link to an active user invited with
// require_acceptance.
type SendInvitationArgs struct {
	InvitationID string `json:"invitation_id"`
}

// Kind is permanent.
func (SendInvitationArgs) Kind() string { return "send_invitation" }

// InsertOpts puts the job on the mail queue, unique by invitation.
func (SendInvitationArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMail, MaxAttempts: 12, UniqueOpts: mailUnique()}
}

// SendActivationArgs sends the activation email of a sign-up (or a re-sent activation
// link). ExpiresAt is the link's expiry, fixed when the job is inserted.
type SendActivationArgs struct {
	UserID    string    `json:"user_id" river:"unique"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Kind is permanent.
func (SendActivationArgs) Kind() string { return "send_activation" }

// InsertOpts puts the job on the mail queue, at most one per user and minute: repeated
// re-send requests (anyone may make them, for any address) cannot flood a mailbox.
func (SendActivationArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMail, MaxAttempts: 12, UniqueOpts: river.UniqueOpts{ByArgs: true, ByPeriod: time.Minute}}
}

// SendReminderArgs sends reminder number Reminder (1, 2, ...) of an invitation, manual or
// scheduled, with a fresh link.
type SendReminderArgs struct {
	InvitationID string `json:"invitation_id"`
	Reminder     int    `json:"reminder"`
}

// Kind is permanent.
func (SendReminderArgs) Kind() string { return "send_reminder" }

// InsertOpts puts the job on the mail queue, unique by invitation and reminder number.
func (SendReminderArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMail, MaxAttempts: 12, UniqueOpts: mailUnique()}
}

// SendNotificationArgs tells an existing active user that they were added to an
// organization. AddedAt (the membership's creation time) makes a re-added member's
// notification a new job.
type SendNotificationArgs struct {
	OrganizationID string    `json:"organization_id"`
	UserID         string    `json:"user_id"`
	ActorID        string    `json:"actor_id,omitempty"`
	AddedAt        time.Time `json:"added_at"`
	// Message is the adder's optional note (at most 1000 characters): unlike an
	// invitation's, it is stored nowhere else.
	Message string `json:"message,omitempty"`
}

// Kind is permanent.
func (SendNotificationArgs) Kind() string { return "send_notification" }

// InsertOpts puts the job on the mail queue, unique per membership.
func (SendNotificationArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMail, MaxAttempts: 12, UniqueOpts: mailUnique()}
}
