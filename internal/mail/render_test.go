package mail

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// testNow and testData make the rendered output deterministic.
var testNow = time.Date(2026, 11, 22, 21, 30, 0, 0, time.UTC)

func testData() Data {
	return Data{
		SiteName:         "orgs",
		RecipientEmail:   "ada@example.com",
		RecipientName:    "Ada",
		OrganizationName: "Analytical Engines",
		InviterName:      "Charles Babbage",
		InviterEmail:     "charles@example.com",
		Link:             "https://orgs.example.com/activate/7f9c/tok3n?x=1&y=2",
		ExpiresAt:        testNow.Add(168 * time.Hour),
		Message:          "Looking forward to working with you.\nBring <notes> & ideas!",
		Now:              testNow,
	}
}

func TestRenderGolden(t *testing.T) {
	t.Parallel()
	r, err := NewRenderer("")
	if err != nil {
		t.Fatal(err)
	}

	type testCase struct {
		golden   string
		template string
		data     Data
	}
	var cases []testCase
	for _, name := range Templates {
		cases = append(cases, testCase{golden: name, template: name, data: testData()})
	}
	// The optional parts left out: no names, no message, no organization.
	minimal := testData()
	minimal.RecipientName, minimal.InviterName, minimal.Message = "", "", ""
	cases = append(cases, testCase{golden: "invitation_minimal", template: TemplateInvitation, data: minimal})
	signup := minimal
	signup.OrganizationName, signup.InviterEmail = "", ""
	signup.ExpiresAt = testNow.Add(90 * time.Minute)
	cases = append(cases, testCase{golden: "reminder_signup", template: TemplateReminder, data: signup})
	noLink := testData()
	noLink.Link = ""
	cases = append(cases, testCase{golden: "notification_nolink", template: TemplateNotification, data: noLink})

	for _, tc := range cases {
		t.Run(tc.golden, func(t *testing.T) {
			t.Parallel()
			got, err := r.Render(tc.template, tc.data)
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, tc.golden+".subject.golden", got.Subject+"\n")
			checkGolden(t, tc.golden+".txt.golden", got.Text)
			checkGolden(t, tc.golden+".html.golden", got.HTML)
		})
	}
}

func checkGolden(t *testing.T, file, got string) {
	t.Helper()
	path := filepath.Join("testdata", file)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/mail -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (go test ./internal/mail -update rewrites it)\ngot:\n%s\nwant:\n%s", file, got, want)
	}
}

// TestRenderContract checks what the contract says each email must contain, so that a
// careless -update cannot drop it.
func TestRenderContract(t *testing.T) {
	t.Parallel()
	r, err := NewRenderer("")
	if err != nil {
		t.Fatal(err)
	}
	d := testData()
	org, inviter, link, expiry := d.OrganizationName, d.InviterName, d.Link, "in 7 days"
	tests := map[string][]string{
		TemplateInvitation:       {org, inviter, link, expiry},
		TemplateInvitationAccept: {org, inviter, link, expiry},
		TemplateActivation:       {link, expiry},
		TemplateReminder:         {link, expiry, org, inviter},
		TemplateNotification:     {org, inviter},
	}
	for name, wants := range tests {
		c, err := r.Render(name, d)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range wants {
			if !strings.Contains(c.Text, want) {
				t.Errorf("%s text: missing %q", name, want)
			}
			// The link's "&" is escaped in HTML, as it must be.
			if !strings.Contains(c.HTML, strings.ReplaceAll(want, "&", "&amp;")) {
				t.Errorf("%s html: missing %q", name, want)
			}
		}
		if strings.Contains(c.Subject, "\n") || c.Subject == "" {
			t.Errorf("%s subject: got %q, want one non-empty line", name, c.Subject)
		}
	}
}

func TestRenderEscapesMessageInHTML(t *testing.T) {
	t.Parallel()
	r, err := NewRenderer("")
	if err != nil {
		t.Fatal(err)
	}
	d := testData()
	d.Message = `<script>alert("hi")</script>`
	d.OrganizationName = "<b>Acme</b>"
	d.Link = "javascript:alert(1)"
	c, err := r.Render(TemplateInvitation, d)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"&lt;script&gt;", "&lt;b&gt;Acme&lt;/b&gt;", `href="#ZgotmplZ"`} {
		if !strings.Contains(c.HTML, want) {
			t.Errorf("html: missing %q", want)
		}
	}
	for _, bad := range []string{"<script>", "<b>Acme", `href="javascript:`} {
		if strings.Contains(c.HTML, bad) {
			t.Errorf("html: contains unescaped %q", bad)
		}
	}
	if !strings.Contains(c.Text, d.Message) {
		t.Errorf("text: got %q, want the message %q verbatim", c.Text, d.Message)
	}
}

func TestRenderSubjectIsOneLine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, dir, "activation.subject.txt", "\n  Welcome to\n{{.SiteName}}\r\n  \n")
	r, err := NewRenderer(dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := r.Render(TemplateActivation, testData())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Subject, "Welcome to orgs"; got != want {
		t.Errorf("subject: got %q, want %q", got, want)
	}
}

func TestRenderOverrideReplacesOnlyThatFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, dir, "invitation.html", "<p>Custom {{.OrganizationName}}: {{.Link}}</p>")
	writeFile(t, dir, "unrelated.txt", "{{ this is not a template we own")

	defaults, err := NewRenderer("")
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRenderer(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(r.Overrides(), ","), "invitation.html"; got != want {
		t.Errorf("Overrides: got %q, want %q", got, want)
	}

	d := testData()
	got, err := r.Render(TemplateInvitation, d)
	if err != nil {
		t.Fatal(err)
	}
	want, err := defaults.Render(TemplateInvitation, d)
	if err != nil {
		t.Fatal(err)
	}
	if wantHTML := "<p>Custom Analytical Engines: https://orgs.example.com/activate/7f9c/tok3n?x=1&amp;y=2</p>"; got.HTML != wantHTML {
		t.Errorf("html: got %q, want %q", got.HTML, wantHTML)
	}
	if got.Subject != want.Subject || got.Text != want.Text {
		t.Errorf("subject and text: got %q and %q, want the defaults %q and %q", got.Subject, got.Text, want.Subject, want.Text)
	}
	other, err := r.Render(TemplateActivation, d)
	if err != nil {
		t.Fatal(err)
	}
	wantOther, err := defaults.Render(TemplateActivation, d)
	if err != nil {
		t.Fatal(err)
	}
	if other != wantOther {
		t.Errorf("activation: got %+v, want the default %+v", other, wantOther)
	}
}

func TestNewRendererRejectsBrokenOverride(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"reminder.txt":           "Hello {{.Name",                // does not parse
		"notification.html":      "<p>{{.OrganisationName}}</p>", // parses, fails to execute
		"invitation.subject.txt": "{{template \"nope\"}}",
	}
	for file, body := range tests {
		t.Run(file, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			writeFile(t, dir, file, body)
			if _, err := NewRenderer(dir); err == nil || !strings.Contains(err.Error(), file) {
				t.Errorf("NewRenderer: got error %v, want one naming %s", err, file)
			}
		})
	}
	t.Run("missing dir", func(t *testing.T) {
		t.Parallel()
		if _, err := NewRenderer(filepath.Join(t.TempDir(), "nope")); err == nil {
			t.Error("NewRenderer: got nil error, want one for a missing directory")
		}
	})
}

func TestRenderUnknownTemplate(t *testing.T) {
	t.Parallel()
	r, err := NewRenderer("")
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Render("welcome", testData())
	if !errors.Is(err, ErrUnknownTemplate) || !IsPermanent(err) {
		t.Errorf("Render: got %v, want ErrUnknownTemplate, permanent", err)
	}
}

func TestDataExpiry(t *testing.T) {
	t.Parallel()
	tests := []struct {
		left time.Duration
		want string
	}{
		{168 * time.Hour, "in 7 days"},
		{168*time.Hour - 3*time.Second, "in 7 days"},
		{36 * time.Hour, "in 2 days"},
		{25 * time.Hour, "in 1 day"},
		{23*time.Hour + 40*time.Minute, "in 1 day"},
		{2 * time.Hour, "in 2 hours"},
		{61 * time.Minute, "in 1 hour"},
		{59*time.Minute + 40*time.Second, "in 1 hour"},
		{45 * time.Minute, "in 45 minutes"},
		{time.Minute, "in 1 minute"},
		{20 * time.Second, "in less than a minute"},
		{0, "now"},
		{-time.Hour, "now"},
	}
	for _, tt := range tests {
		d := Data{Now: testNow, ExpiresAt: testNow.Add(tt.left)}
		if got := d.ExpiresIn(); got != tt.want {
			t.Errorf("ExpiresIn with %v left: got %q, want %q", tt.left, got, tt.want)
		}
	}
	d := Data{Now: testNow, ExpiresAt: time.Date(2026, 11, 29, 22, 30, 0, 0, time.FixedZone("CET", 3600))}
	if got, want := d.ExpiresOn(), "Sunday, 29 November 2026 21:30 UTC"; got != want {
		t.Errorf("ExpiresOn: got %q, want %q", got, want)
	}
	if got := (Data{Now: testNow}).ExpiresIn(); got != "" {
		t.Errorf("ExpiresIn without ExpiresAt: got %q, want empty", got)
	}
}

func TestDataInviter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, email, want string
	}{
		{"Charles", "charles@example.com", "Charles"},
		{"  ", "charles@example.com", "charles@example.com"},
		{"", "", "Someone"},
	}
	for _, tt := range tests {
		if got := (Data{InviterName: tt.name, InviterEmail: tt.email}).Inviter(); got != tt.want {
			t.Errorf("Inviter(%q, %q): got %q, want %q", tt.name, tt.email, got, tt.want)
		}
	}
}

func writeFile(t *testing.T, dir, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}
