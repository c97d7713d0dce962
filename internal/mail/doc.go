// Package mail renders and sends the emails orgs sends: invitations, invitations to
// accept, activations (sign-up), reminders and notifications.
//
// A [Renderer] turns a template name and [Data] into a [Content] (subject, plain text and
// HTML). The templates are embedded; any single file can be replaced by a file of the same
// name in ORGS_TEMPLATES_DIR, and a broken replacement fails [NewRenderer], so a bad
// deployment fails at startup rather than on the first email.
//
// A [Sender] delivers an [Email] through the transport named by ORGS_MAIL_URL: SMTP
// (smtp://, smtps://) over one reused connection, a directory of .eml files (file://), or
// a caller-supplied function (log:) so that a developer sees the links without a mail
// server. [IsPermanent] tells a worker whether retrying a failed send can help.
//
// The package records no metrics and writes no logs: callers know the job, the template
// and the outcome, and record them where they handle the error.
package mail
