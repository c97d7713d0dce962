package mailtest_test

import (
	"strings"
	"testing"

	"github.com/orgs-dev/orgs/internal/mail/mailtest"
)

func TestFindLink(t *testing.T) {
	t.Parallel()
	tests := []struct{ body, prefix, want string }{
		{"Go to https://x.test/a/b?c=d.\nThanks", "https://x.test/", "https://x.test/a/b?c=d"},
		{`<a href="https://x.test/a">`, "https://x.test/", "https://x.test/a"},
		{"(see https://x.test/a)", "https://x.test/", "https://x.test/a"},
		{"no link here", "https://x.test/", ""},
	}
	for _, tt := range tests {
		if got := mailtest.FindLink(tt.body, tt.prefix); got != tt.want {
			t.Errorf("FindLink(%q, %q): got %q, want %q", tt.body, tt.prefix, got, tt.want)
		}
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	raw := strings.ReplaceAll(`Subject: =?UTF-8?q?Caf=C3=A9?=
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary=b1

--b1
Content-Type: text/plain; charset=UTF-8
Content-Transfer-Encoding: quoted-printable

Caf=C3=A9 and a soft=
 break
--b1
Content-Type: text/html; charset=UTF-8
Content-Transfer-Encoding: base64

PHA+Q2Fmw6k8L3A+
--b1--
`, "\n", "\r\n")
	m := mailtest.Parse([]byte(raw))
	if m.ParseError != nil {
		t.Fatal(m.ParseError)
	}
	checks := []struct{ what, got, want string }{
		{"subject", m.Subject, "Café"},
		{"content type", m.ContentType, "multipart/alternative"},
		{"text", m.Text, "Café and a soft break"},
		{"html", m.HTML, "<p>Café</p>"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q", c.what, c.got, c.want)
		}
	}
}
