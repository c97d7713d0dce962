package mail

import (
	"context"
	"errors"
	"fmt"
	netmail "net/mail"
	"net/url"
	"strings"

	gomail "github.com/wneessen/go-mail"
)

// ErrInvalidEmail is returned by [Sender.Send] for an [Email] that no retry can send: a
// recipient that is not a bare address, a malformed Reply-To or Message-ID, or a missing
// subject or body. [IsPermanent] reports true for it.
var ErrInvalidEmail = errors.New("invalid email")

// Email is one message to one recipient, as the mailer worker hands it to [Sender.Send].
type Email struct {
	// To is the recipient's bare address ("ada@example.com", no display name).
	To string
	// ToName is the recipient's display name, if known.
	ToName string
	// FromName is the display name, [Data.FromName] for an email a person caused
	// ("Ada via orgs"). When set, the From header is
	// "FromName <address of ORGS_MAIL_FROM>", so the recipient sees who invited them
	// while the message still comes from our domain (and passes SPF/DMARC).
	FromName string
	// ReplyTo is the inviter's address, so that replies reach a person. Optional.
	ReplyTo string
	// Template is the template the content came from; transports that show the
	// message (log:) include it.
	Template string
	// Subject, Text and HTML are the rendered [Content]. Subject and Text are
	// required; without HTML the message is plain text only.
	Subject, Text, HTML string
	// MessageID is an optional stable Message-ID such as "<job-123@orgs>" (the angle
	// brackets are optional). Derive it from the job so that a retried send carries
	// the same ID and receiving servers and clients can de-duplicate it.
	MessageID string
}

// Sender sends [Email] through the transport chosen by the mail URL. It is safe for
// concurrent use; SMTP sends are serialized over one connection.
type Sender struct {
	from      *netmail.Address
	transport transport
}

// transport delivers a built message. The Email is passed along for transports that
// show rather than send it.
type transport interface {
	send(ctx context.Context, msg *gomail.Msg, e Email) error
	close() error
}

// NewSender returns a Sender for mailURL (ORGS_MAIL_URL) that sends from from
// (ORGS_MAIL_FROM, such as "orgs <no-reply@localhost>"). mailURL is one of:
//
//	smtp://user:pass@host:port   SMTP, STARTTLS when offered (default port 25)
//	smtps://user:pass@host:port  SMTP over implicit TLS (default port 465)
//	file:///dir                  one .eml file per message in dir (created if missing)
//	log:                         each message is passed to logf
//
// SMTP URLs take optional query parameters: starttls=true requires STARTTLS and
// starttls=false disables it; insecure_skip_verify=true accepts any certificate (for
// development only); timeout=10s bounds dialing and each SMTP exchange (default 15s);
// auth=plain (or login, cram-md5, scram-sha-256, ...) picks the SASL mechanism, which by
// default is the strongest the server offers that is safe on the connection (PLAIN and
// LOGIN only over TLS). Credentials with reserved characters must be percent-encoded.
//
// logf is only used by log: and is required for it; it should print at least the text
// body, so that a developer can follow the activation link.
func NewSender(mailURL, from string, logf func(Email)) (*Sender, error) {
	addr, err := netmail.ParseAddress(from)
	if err != nil {
		return nil, fmt.Errorf("parse mail from %q: %w", from, err)
	}

	u, err := url.Parse(mailURL)
	if err != nil {
		// url.Error repeats the URL, which may hold a password.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, fmt.Errorf("parse mail URL: %w", err)
	}

	var t transport
	switch u.Scheme {
	case "smtp", "smtps":
		t, err = newSMTPTransport(u)
	case "file":
		t, err = newFileTransport(u)
	case "log":
		if logf == nil {
			return nil, errors.New("mail URL log: needs a log function")
		}
		t = logTransport{logf: logf}
	case "":
		return nil, errors.New("parse mail URL: missing scheme (smtp, smtps, file or log)")
	default:
		return nil, fmt.Errorf("parse mail URL: unsupported scheme %q (want smtp, smtps, file or log)", u.Scheme)
	}
	if err != nil {
		return nil, err
	}
	return &Sender{from: addr, transport: t}, nil
}

// Send sends e. It returns an error wrapping [ErrInvalidEmail] when e is malformed;
// other errors come from the transport, and [IsPermanent] tells whether retrying can
// help. Over SMTP, a nil error means the server accepted the message.
func (s *Sender) Send(ctx context.Context, e Email) error {
	msg, err := s.build(e)
	if err != nil {
		return err
	}
	if err := s.transport.send(ctx, msg, e); err != nil {
		if e.Template == "" {
			return fmt.Errorf("send email: %w", err)
		}
		return fmt.Errorf("send %s email: %w", e.Template, err)
	}
	return nil
}

// Close closes the SMTP connection, if any. The Sender must not be used afterwards.
func (s *Sender) Close() error {
	return s.transport.close()
}

// build turns e into a multipart/alternative message.
func (s *Sender) build(e Email) (*gomail.Msg, error) {
	// A display name or a second address in To would be sent as typed and could
	// redirect the message; the caller passes the stored address, which is bare.
	to, err := netmail.ParseAddress(e.To)
	if err != nil || to.Name != "" || to.Address != e.To {
		return nil, fmt.Errorf("%w: recipient is not a bare address", ErrInvalidEmail)
	}
	if strings.TrimSpace(e.Subject) == "" || e.Text == "" {
		return nil, fmt.Errorf("%w: subject and text are required", ErrInvalidEmail)
	}
	if strings.ContainsAny(e.Subject, "\r\n") {
		return nil, fmt.Errorf("%w: subject spans several lines", ErrInvalidEmail)
	}

	// go-mail adds a User-Agent naming itself by default; the recipient has no use
	// for it.
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	from := *s.from
	if e.FromName != "" {
		from.Name = e.FromName
	}
	msg.FromMailAddress(&from)
	msg.SetAddrHeaderFromMailAddress(gomail.HeaderTo, &netmail.Address{Name: e.ToName, Address: to.Address})
	if e.ReplyTo != "" {
		replyTo, err := netmail.ParseAddress(e.ReplyTo)
		if err != nil {
			return nil, fmt.Errorf("%w: reply-to: %v", ErrInvalidEmail, err)
		}
		msg.ReplyToMailAddress(replyTo)
	}
	if e.MessageID != "" {
		id := strings.TrimSuffix(strings.TrimPrefix(e.MessageID, "<"), ">")
		if id == "" || !strings.Contains(id, "@") || strings.ContainsAny(id, "<> \t\r\n") {
			return nil, fmt.Errorf("%w: message ID %q is not id@domain", ErrInvalidEmail, e.MessageID)
		}
		msg.SetMessageIDWithValue(id)
	}
	msg.Subject(e.Subject)
	// RFC 3834: tells out-of-office responders not to answer a machine.
	msg.SetGenHeader(gomail.Header("Auto-Submitted"), "auto-generated")
	msg.SetDate()
	msg.SetBodyString(gomail.TypeTextPlain, e.Text)
	if e.HTML != "" {
		msg.AddAlternativeString(gomail.TypeTextHTML, e.HTML)
	}
	return msg, nil
}

// IsPermanent reports whether err is a failure that retrying cannot fix: an invalid
// email or unknown template, or an SMTP server's permanent (5xx) rejection of the
// message at MAIL FROM, RCPT TO or DATA. Everything else is temporary: 4xx replies,
// network errors and timeouts, and failures while connecting or authenticating, which
// affect every message alike and are fixed by the operator, after which the retried
// jobs go through.
func IsPermanent(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrInvalidEmail) || errors.Is(err, ErrUnknownTemplate) {
		return true
	}
	var se *gomail.SendError
	if errors.As(err, &se) {
		if code := se.ErrorCode(); code >= 500 && code <= 599 {
			return true
		}
		switch se.Reason {
		case gomail.ErrGetSender, gomail.ErrGetRcpts, gomail.ErrNoUnencoded:
			// The message itself is unsendable; go-mail found out before asking
			// the server.
			return true
		}
	}
	return false
}
