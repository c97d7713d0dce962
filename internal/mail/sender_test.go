package mail_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	netmail "net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orgs-dev/orgs/internal/mail"
	"github.com/orgs-dev/orgs/internal/mail/mailtest"
)

const testFrom = "orgs <no-reply@orgs.example.com>"

// testEmail renders a real invitation, so these tests also cover the path from
// templates to the wire.
func testEmail(t *testing.T) mail.Email {
	t.Helper()
	r, err := mail.NewRenderer("")
	if err != nil {
		t.Fatal(err)
	}
	c, err := r.Render(mail.TemplateInvitation, mail.Data{
		SiteName:         "orgs",
		RecipientEmail:   "ada@example.com",
		OrganizationName: "Analytical Engines",
		InviterName:      "Charles Babbage",
		InviterEmail:     "charles@example.com",
		Link:             "https://orgs.example.com/activate/7f9c/tok3n",
		ExpiresAt:        time.Now().Add(168 * time.Hour),
		Message:          "Ünïcode and a long line " + strings.Repeat("word ", 40),
	})
	if err != nil {
		t.Fatal(err)
	}
	return mail.Email{
		To:        "ada@example.com",
		ToName:    "Ada Lovelace",
		FromName:  "Charles Babbage",
		ReplyTo:   "charles@example.com",
		Template:  mail.TemplateInvitation,
		Subject:   c.Subject,
		Text:      c.Text,
		HTML:      c.HTML,
		MessageID: "<job-123@orgs>",
	}
}

func newSender(t *testing.T, url string) *mail.Sender {
	t.Helper()
	s, err := mail.NewSender(url, testFrom, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestSenderSMTP(t *testing.T) {
	t.Parallel()
	srv := mailtest.NewServer(t)
	srv.RequireAuth("user", "p@ss word")
	// PLAIN over a plaintext connection is allowed only to localhost; the default
	// auto-discovery refuses it outright.
	s := newSender(t, "smtp://user:p%40ss%20word@"+srv.Addr()+"?auth=plain&timeout=5s")
	e := testEmail(t)

	if err := s.Send(context.Background(), e); err != nil {
		t.Fatalf("Send: %v", err)
	}
	m := srv.WaitFor(t, 1, 5*time.Second)[0]
	if m.ParseError != nil {
		t.Fatalf("parse: %v", m.ParseError)
	}

	checks := []struct{ what, got, want string }{
		{"envelope from", m.From, "no-reply@orgs.example.com"},
		{"envelope to", strings.Join(m.To, ","), "ada@example.com"},
		{"auth user", m.AuthUser, "user"},
		{"content type", m.ContentType, "multipart/alternative"},
		{"subject", m.Subject, e.Subject},
		{"message id", m.Header.Get("Message-Id"), "<job-123@orgs>"},
		{"auto-submitted", m.Header.Get("Auto-Submitted"), "auto-generated"},
		{"text", normalize(m.Text), normalize(e.Text)},
		{"html", normalize(m.HTML), normalize(e.HTML)},
		{"link", mailtest.FindLink(m.Text, "https://orgs.example.com/activate/"), "https://orgs.example.com/activate/7f9c/tok3n"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q", c.what, c.got, c.want)
		}
	}
	for header, want := range map[string]netmail.Address{
		"From":     {Name: "Charles Babbage", Address: "no-reply@orgs.example.com"},
		"To":       {Name: "Ada Lovelace", Address: "ada@example.com"},
		"Reply-To": {Address: "charles@example.com"},
	} {
		got, err := m.Header.AddressList(header)
		if err != nil || len(got) != 1 || *got[0] != want {
			t.Errorf("%s: got %v (%v), want %v", header, got, err, want)
		}
	}
}

// normalize undoes the CRLF line endings of the wire format.
func normalize(s string) string {
	return strings.TrimRight(strings.ReplaceAll(s, "\r\n", "\n"), "\n")
}

func TestSenderFromWithoutFromName(t *testing.T) {
	t.Parallel()
	srv := mailtest.NewServer(t)
	s := newSender(t, srv.URL())
	e := testEmail(t)
	e.FromName, e.ReplyTo, e.ToName = "", "", ""
	if err := s.Send(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	m := srv.WaitFor(t, 1, 5*time.Second)[0]
	from, err := m.Header.AddressList("From")
	if err != nil || len(from) != 1 || *from[0] != (netmail.Address{Name: "orgs", Address: "no-reply@orgs.example.com"}) {
		t.Errorf("From: got %v (%v), want %s", from, err, testFrom)
	}
	if got := m.Header.Get("Reply-To"); got != "" {
		t.Errorf("Reply-To: got %q, want none", got)
	}
}

func TestSenderReusesConnections(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		query string
		max   int
	}{{"", 4}, {"?pool=1", 1}, {"?pool=2", 2}} {
		srv := mailtest.NewServer(t)
		s := newSender(t, srv.URL()+tt.query)
		e := testEmail(t)

		const n = 12
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for range n {
			wg.Go(func() { errs <- s.Send(context.Background(), e) })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
		}
		srv.WaitFor(t, n, 5*time.Second)
		opened := srv.Connections()
		if opened < 1 || opened > tt.max {
			t.Errorf("%q: %d concurrent sends opened %d connections, want 1 to %d", tt.query, n, opened, tt.max)
		}
		// Sequential sends reuse the open connections.
		for range 5 {
			if err := s.Send(context.Background(), e); err != nil {
				t.Fatal(err)
			}
		}
		if got := srv.Connections(); got != opened {
			t.Errorf("%q: sequential sends opened %d more connections, want 0", tt.query, got-opened)
		}
	}
}

func TestSenderFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code      int
		permanent bool
	}{
		{451, false},
		{421, false},
		{550, true},
		{554, true},
	}
	for _, tt := range tests {
		t.Run(string(rune('0'+tt.code/100))+"xx", func(t *testing.T) {
			t.Parallel()
			srv := mailtest.NewServer(t)
			s := newSender(t, srv.URL())
			e := testEmail(t)

			srv.FailNext(1, tt.code)
			err := s.Send(context.Background(), e)
			if err == nil {
				t.Fatalf("Send: got nil error, want a %d failure", tt.code)
			}
			if got := mail.IsPermanent(err); got != tt.permanent {
				t.Errorf("IsPermanent(%v): got %t, want %t", err, got, tt.permanent)
			}
			// The failure must not poison the sender: the next send goes through.
			if err := s.Send(context.Background(), e); err != nil {
				t.Fatalf("Send after failure: %v", err)
			}
			if got := srv.Count(); got != 1 {
				t.Errorf("accepted: got %d, want 1", got)
			}
		})
	}
}

func TestSenderReconnects(t *testing.T) {
	t.Parallel()
	srv := mailtest.NewServer(t)
	s := newSender(t, srv.URL())
	e := testEmail(t)

	if err := s.Send(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	srv.DropConnections()
	// The dead connection is found before MAIL FROM, so this one send redials and
	// succeeds rather than failing a job.
	if err := s.Send(context.Background(), e); err != nil {
		t.Fatalf("Send after the connection dropped: %v", err)
	}
	srv.WaitFor(t, 2, 5*time.Second)
	if got := srv.Connections(); got != 2 {
		t.Errorf("connections: got %d, want 2", got)
	}
	if got := srv.Count(); got != 2 {
		t.Errorf("accepted: got %d, want 2 (no duplicate)", got)
	}
}

func TestSenderServerDown(t *testing.T) {
	t.Parallel()
	// A port nobody listens on: take one and give it back.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	s := newSender(t, "smtp://"+addr+"?timeout=2s")
	err = s.Send(context.Background(), testEmail(t))
	if err == nil || mail.IsPermanent(err) {
		t.Errorf("Send to a closed port: got %v, want a temporary error", err)
	}
}

func TestSenderTLS(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		opt     mailtest.Option
		query   string
		auth    bool
		wantErr bool
	}{
		{"smtps", mailtest.WithImplicitTLS(), "?insecure_skip_verify=true", false, false},
		{"smtps verifies the certificate", mailtest.WithImplicitTLS(), "", false, true},
		{"starttls required", mailtest.WithSTARTTLS(), "?starttls=true&insecure_skip_verify=true", false, false},
		{"starttls opportunistic", mailtest.WithSTARTTLS(), "?insecure_skip_verify=true", false, false},
		{"starttls opportunistic verifies", mailtest.WithSTARTTLS(), "", false, true},
		// PLAIN auth is refused over plaintext (but for localhost) and chosen by
		// auto-discovery once the connection is encrypted.
		{"auth over starttls", mailtest.WithSTARTTLS(), "?insecure_skip_verify=true", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := mailtest.NewServer(t, tt.opt)
			url := srv.URL()
			if tt.auth {
				srv.RequireAuth("user", "pass")
				url = strings.Replace(url, "://", "://user:pass@", 1)
			}
			s := newSender(t, url+tt.query)
			err := s.Send(context.Background(), testEmail(t))
			if tt.wantErr {
				if err == nil || mail.IsPermanent(err) {
					t.Errorf("Send: got %v, want a temporary error", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			srv.WaitFor(t, 1, 5*time.Second)
		})
	}

	// Required STARTTLS against a server without it must not fall back to plaintext.
	srv := mailtest.NewServer(t)
	s := newSender(t, srv.URL()+"?starttls=true")
	if err := s.Send(context.Background(), testEmail(t)); err == nil {
		t.Error("Send with starttls=true to a plaintext server: got nil error, want one")
	}
}

func TestSenderInvalidEmail(t *testing.T) {
	t.Parallel()
	srv := mailtest.NewServer(t)
	s := newSender(t, srv.URL())
	tests := map[string]func(*mail.Email){
		"display name in To": func(e *mail.Email) { e.To = "Ada <ada@example.com>" },
		"two recipients":     func(e *mail.Email) { e.To = "ada@example.com, bob@example.com" },
		"header injection":   func(e *mail.Email) { e.To = "ada@example.com\r\nBcc: x@example.com" },
		"empty To":           func(e *mail.Email) { e.To = "" },
		"bad Reply-To":       func(e *mail.Email) { e.ReplyTo = "not an address" },
		"bad Message-ID":     func(e *mail.Email) { e.MessageID = "<no at sign>" },
		"no subject":         func(e *mail.Email) { e.Subject = " " },
		"no text":            func(e *mail.Email) { e.Text = "" },
	}
	for name, mutate := range tests {
		e := testEmail(t)
		mutate(&e)
		err := s.Send(context.Background(), e)
		if !errors.Is(err, mail.ErrInvalidEmail) || !mail.IsPermanent(err) {
			t.Errorf("%s: got %v, want ErrInvalidEmail, permanent", name, err)
		}
	}
	if got := srv.Count(); got != 0 {
		t.Errorf("accepted: got %d, want 0", got)
	}
}

func TestSenderFile(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "outbox")
	s := newSender(t, "file://"+dir)
	e := testEmail(t)
	for range 2 {
		if err := s.Send(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}

	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Fatalf("files: got %d, want 2", len(entries))
	}
	for _, entry := range entries {
		if !strings.HasSuffix(entry.Name(), ".eml") {
			t.Errorf("file name: got %q, want *.eml (no leftover temporary files)", entry.Name())
		}
		raw, err := os.ReadFile(filepath.Join(dir, entry.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m := mailtest.Parse(raw)
		if m.ParseError != nil {
			t.Fatalf("parse %s: %v", entry.Name(), m.ParseError)
		}
		if m.Subject != e.Subject || m.ContentType != "multipart/alternative" {
			t.Errorf("%s: got subject %q, type %s; want %q, multipart/alternative", entry.Name(), m.Subject, m.ContentType, e.Subject)
		}
		if got := mailtest.FindLink(m.Text, "https://orgs.example.com/"); got != "https://orgs.example.com/activate/7f9c/tok3n" {
			t.Errorf("%s: link: got %q", entry.Name(), got)
		}
	}
}

func TestSenderLog(t *testing.T) {
	t.Parallel()
	var got []mail.Email
	s, err := mail.NewSender("log:", testFrom, func(e mail.Email) { got = append(got, e) })
	if err != nil {
		t.Fatal(err)
	}
	e := testEmail(t)
	if err := s.Send(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("log calls: got %d, want 1", len(got))
	}
	if link := mailtest.FindLink(got[0].Text, "https://orgs.example.com/activate/"); link != "https://orgs.example.com/activate/7f9c/tok3n" {
		t.Errorf("logged text link: got %q, want the activation link", link)
	}
	if err := s.Send(context.Background(), mail.Email{To: "Ada <ada@example.com>", Subject: "x", Text: "y"}); !errors.Is(err, mail.ErrInvalidEmail) {
		t.Errorf("log: invalid email: got %v, want ErrInvalidEmail", err)
	}
}

func TestNewSenderRejectsBadConfig(t *testing.T) {
	t.Parallel()
	tests := []struct{ url, from string }{
		{"ftp://x", testFrom},
		{"smtp://", testFrom},
		{"smtp://:25", testFrom},
		{"smtps:///", testFrom},
		{"smtp://host:99999", testFrom},
		{"smtp://host?startls=true", testFrom},
		{"smtp://host?starttls=maybe", testFrom},
		{"smtp://host?timeout=soon", testFrom},
		{"smtp://host?timeout=-1s", testFrom},
		{"smtp://host?auth=carrier-pigeon", testFrom},
		{"smtp://host/path", testFrom},
		{"file://", testFrom},
		{"file://remote/dir", testFrom},
		{"log:", testFrom}, // no log function
		{"no-reply@localhost", testFrom},
		{"smtp://host", "not an address"},
		{"smtp://host", ""},
		{"smtp://user:secret@host:25%", testFrom},
	}
	for _, tt := range tests {
		_, err := mail.NewSender(tt.url, tt.from, nil)
		if err == nil {
			t.Errorf("NewSender(%q, %q): got nil error, want one", tt.url, tt.from)
			continue
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("NewSender(%q): error %q leaks the password", tt.url, err)
		}
	}
	for _, ok := range []string{"smtp://host", "smtps://u:p@host:465?insecure_skip_verify=true", "smtp://host:587?starttls=true&timeout=10s"} {
		s, err := mail.NewSender(ok, testFrom, nil)
		if err != nil {
			t.Errorf("NewSender(%q): %v", ok, err)
			continue
		}
		s.Close()
	}
}

func TestIsPermanent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("boom"), false},
		{context.DeadlineExceeded, false},
		{fmt.Errorf("send: %w", mail.ErrInvalidEmail), true},
		{fmt.Errorf("render: %w", mail.ErrUnknownTemplate), true},
	}
	for _, tt := range tests {
		if got := mail.IsPermanent(tt.err); got != tt.want {
			t.Errorf("IsPermanent(%v): got %t, want %t", tt.err, got, tt.want)
		}
	}
}
