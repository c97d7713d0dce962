package mail

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"math"
	"os"
	"strings"
	texttemplate "text/template"
	"time"
)

// Template names. They are permanent: they name the files in templates/ and in
// ORGS_TEMPLATES_DIR, and jobs store them.
const (
	// TemplateInvitation invites a new user; the link activates their account.
	TemplateInvitation = "invitation"
	// TemplateInvitationAccept invites an existing active user who must accept
	// (require_acceptance); the link leads to the invitation.
	TemplateInvitationAccept = "invitation_accept"
	// TemplateActivation asks a user who signed up to activate their account.
	TemplateActivation = "activation"
	// TemplateReminder repeats an invitation or activation with a fresh link.
	TemplateReminder = "reminder"
	// TemplateNotification tells an existing active user they were added to an
	// organization.
	TemplateNotification = "notification"
)

// Templates lists every template name, in a stable order.
var Templates = []string{
	TemplateInvitation,
	TemplateInvitationAccept,
	TemplateActivation,
	TemplateReminder,
	TemplateNotification,
}

// ErrUnknownTemplate is returned by [Renderer.Render] for a name not in [Templates].
// [IsPermanent] reports true for it: retrying cannot help.
var ErrUnknownTemplate = errors.New("unknown email template")

//go:embed templates/*
var embedded embed.FS

// Each template is three files; the suffixes are part of the override contract.
const (
	subjectSuffix = ".subject.txt"
	textSuffix    = ".txt"
	htmlSuffix    = ".html"
)

// Data is what the templates see. Templates may use every field and method; fields that
// do not apply to an email are empty (a reminder for a sign-up has no organization).
type Data struct {
	// SiteName is the product name (ORGS_SITE_NAME).
	SiteName string
	// RecipientEmail is the address the email goes to.
	RecipientEmail string
	// RecipientName is the recipient's display name, if known.
	RecipientName string
	// OrganizationName is the organization the email is about, if any.
	OrganizationName string
	// InviterName is the display name of the person who invited or added the
	// recipient. Templates should use [Data.Inviter], which falls back to the email.
	InviterName string
	// InviterEmail is the inviter's address.
	InviterEmail string
	// Link is the activation link (invitation, activation, reminder), the link to
	// the invitation (invitation_accept) or an optional link to the site
	// (notification).
	Link string
	// ExpiresAt is when Link stops working; zero if it does not expire.
	ExpiresAt time.Time
	// Message is the inviter's optional plain-text note (at most 1000 characters,
	// enforced by the API). The HTML templates escape it like any other field.
	Message string
	// Now is the time the email is rendered, against which [Data.ExpiresIn] is
	// computed. [Renderer.Render] uses the current time when it is zero; tests set
	// it so that output is deterministic.
	Now time.Time
}

// Inviter returns the name to show for the inviter: InviterName, else InviterEmail,
// else "Someone".
func (d Data) Inviter() string {
	switch {
	case strings.TrimSpace(d.InviterName) != "":
		return strings.TrimSpace(d.InviterName)
	case d.InviterEmail != "":
		return d.InviterEmail
	default:
		return "Someone"
	}
}

// ExpiresIn returns how long until ExpiresAt, relative to Now, in words: "in 7 days",
// "in 2 hours", "in 45 minutes", "in less than a minute". It rounds to the nearest
// unit, so a 168h invitation rendered a few seconds after it was created still says
// "in 7 days". It returns "" when ExpiresAt is zero and "now" when it has passed.
func (d Data) ExpiresIn() string {
	if d.ExpiresAt.IsZero() {
		return ""
	}
	left := d.ExpiresAt.Sub(d.Now)
	if left <= 0 {
		return "now"
	}
	// Round at each unit before choosing it, so 59m40s reads "in 1 hour", not
	// "in 60 minutes".
	if m := roundTo(left, time.Minute); m < 60 {
		if m == 0 {
			return "in less than a minute"
		}
		return "in " + plural(m, "minute")
	}
	if h := roundTo(left, time.Hour); h < 24 {
		return "in " + plural(h, "hour")
	}
	return "in " + plural(roundTo(left, 24*time.Hour), "day")
}

// ExpiresOn returns ExpiresAt as an absolute UTC date, such as
// "Sunday, 29 November 2026 21:30 UTC", or "" when ExpiresAt is zero.
func (d Data) ExpiresOn() string {
	if d.ExpiresAt.IsZero() {
		return ""
	}
	return d.ExpiresAt.UTC().Format("Monday, 2 January 2006 15:04 UTC")
}

func roundTo(d, unit time.Duration) int {
	return int(math.Round(float64(d) / float64(unit)))
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

// Content is a rendered email.
type Content struct {
	// Subject is a single line.
	Subject string
	Text    string
	HTML    string
}

// Renderer renders the email templates. It is safe for concurrent use.
type Renderer struct {
	emails    map[string]emailTemplates
	overrides []string
}

type emailTemplates struct {
	subject *texttemplate.Template
	text    *texttemplate.Template
	html    *htmltemplate.Template
}

// NewRenderer parses the embedded templates and, when overrideDir is not empty, replaces
// each file that exists in overrideDir (for example "invitation.html") with that file.
// Files in overrideDir that are not template files are ignored, since the directory may
// be shared with other templates. It returns an error if overrideDir is not a directory
// or if any template fails to parse or to render sample data, so mistakes surface at
// startup.
func NewRenderer(overrideDir string) (*Renderer, error) {
	var override fs.FS
	if overrideDir != "" {
		info, err := os.Stat(overrideDir)
		if err != nil {
			return nil, fmt.Errorf("mail templates directory: %w", err)
		}
		if !info.IsDir() {
			return nil, fmt.Errorf("mail templates directory %s: not a directory", overrideDir)
		}
		override = os.DirFS(overrideDir)
	}

	r := &Renderer{emails: make(map[string]emailTemplates, len(Templates))}
	for _, name := range Templates {
		var (
			t   emailTemplates
			err error
		)
		if t.subject, err = parseText(r, override, name+subjectSuffix); err != nil {
			return nil, err
		}
		if t.text, err = parseText(r, override, name+textSuffix); err != nil {
			return nil, err
		}
		if t.html, err = parseHTML(r, override, name+htmlSuffix); err != nil {
			return nil, err
		}
		r.emails[name] = t
		// A template that parses can still fail at execution (a misspelt field is
		// only caught then), so render sample data once.
		if _, err := r.Render(name, sampleData); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Overrides returns the names of the files taken from the override directory, for the
// caller to log at startup.
func (r *Renderer) Overrides() []string {
	return append([]string(nil), r.overrides...)
}

// readTemplate returns the override of file when there is one, else the embedded file.
func (r *Renderer) readTemplate(override fs.FS, file string) ([]byte, string, error) {
	if override != nil {
		b, err := fs.ReadFile(override, file)
		switch {
		case err == nil:
			r.overrides = append(r.overrides, file)
			return b, "override " + file, nil
		case !errors.Is(err, fs.ErrNotExist):
			return nil, "", fmt.Errorf("read mail template override %s: %w", file, err)
		}
	}
	b, err := embedded.ReadFile("templates/" + file)
	if err != nil {
		return nil, "", fmt.Errorf("read embedded mail template %s: %w", file, err)
	}
	return b, file, nil
}

func parseText(r *Renderer, override fs.FS, file string) (*texttemplate.Template, error) {
	b, label, err := r.readTemplate(override, file)
	if err != nil {
		return nil, err
	}
	t, err := texttemplate.New(label).Option("missingkey=error").Parse(string(b))
	if err != nil {
		return nil, fmt.Errorf("parse mail template %s: %w", label, err)
	}
	return t, nil
}

func parseHTML(r *Renderer, override fs.FS, file string) (*htmltemplate.Template, error) {
	b, label, err := r.readTemplate(override, file)
	if err != nil {
		return nil, err
	}
	t, err := htmltemplate.New(label).Option("missingkey=error").Parse(string(b))
	if err != nil {
		return nil, fmt.Errorf("parse mail template %s: %w", label, err)
	}
	return t, nil
}

// Render renders the email called name (one of [Templates]) with data. The subject is
// trimmed and folded to one line, since a header cannot hold a newline. Returns
// [ErrUnknownTemplate] if name is not a template.
func (r *Renderer) Render(name string, data Data) (Content, error) {
	t, ok := r.emails[name]
	if !ok {
		return Content{}, fmt.Errorf("%w %q", ErrUnknownTemplate, name)
	}
	if data.Now.IsZero() {
		data.Now = time.Now()
	}

	var c Content
	var buf bytes.Buffer
	if err := t.subject.Execute(&buf, data); err != nil {
		return Content{}, fmt.Errorf("render %s subject: %w", name, err)
	}
	c.Subject = strings.Join(strings.Fields(buf.String()), " ")

	buf.Reset()
	if err := t.text.Execute(&buf, data); err != nil {
		return Content{}, fmt.Errorf("render %s text: %w", name, err)
	}
	c.Text = buf.String()

	buf.Reset()
	if err := t.html.Execute(&buf, data); err != nil {
		return Content{}, fmt.Errorf("render %s html: %w", name, err)
	}
	c.HTML = buf.String()
	return c, nil
}

// sampleData exercises every field, so that validation at startup reaches every branch a
// template is likely to have.
var sampleData = Data{
	SiteName:         "orgs",
	RecipientEmail:   "recipient@example.com",
	RecipientName:    "Recipient",
	OrganizationName: "Example",
	InviterName:      "Inviter",
	InviterEmail:     "inviter@example.com",
	Link:             "https://example.com/activate/1/token",
	ExpiresAt:        time.Date(2026, 11, 29, 21, 30, 0, 0, time.UTC),
	Message:          "Welcome!",
	Now:              time.Date(2026, 11, 22, 21, 30, 0, 0, time.UTC),
}
