package mail

import "testing"

func TestFromName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		inviter, site, want string
	}{
		{"Ada Lovelace", "orgs", "Ada Lovelace via orgs"},
		{"  Ada \t\n Lovelace ", "orgs", "Ada Lovelace via orgs"},
		{"O'Brien", "orgs", "O'Brien via orgs"},
		{"Zoë Ðorđević", "Acme", "Zoë Ðorđević via Acme"},
		// Free text that would read as an address, a second mailbox or a quoted name.
		{"security@bank.com", "orgs", "securitybank.com via orgs"},
		{`"security@bank.com" <security@bank.com>`, "orgs", "securitybank.com securitybank.com via orgs"},
		{"Bank <no-reply@bank.com>, x@y.z", "orgs", "Bank no-replybank.com xy.z via orgs"},
		{"security＠bank.com", "orgs", "securitybank.com via orgs"},
		{"Eve\u202emoc.knab@ytiruces", "orgs", "Evemoc.knabytiruces via orgs"},
		{"Eve\r\nBcc: x@y.z", "orgs", "Eve Bcc xy.z via orgs"},
		{"Zero\u200bWidth", "orgs", "ZeroWidth via orgs"},
		// Nothing worth showing: the site alone.
		{"", "orgs", "orgs"},
		{"   ", "orgs", "orgs"},
		{"@<>", "orgs", "orgs"},
		{"...", "orgs", "orgs"},
		// Long names are cut.
		{"Abcdefghij Abcdefghij Abcdefghij Abcdefghij Abcdefghij Abcdefghij Abcdefghij", "orgs", "Abcdefghij Abcdefghij Abcdefghij Abcdefghij Abcdefghij Abcdefghi via orgs"},
		// No site name: the cleaned name alone.
		{"Ada", "", "Ada"},
	} {
		got := Data{InviterName: tc.inviter, InviterEmail: "inviter@example.com", SiteName: tc.site}.FromName()
		if got != tc.want {
			t.Errorf("FromName(%q, %q): got %q, want %q", tc.inviter, tc.site, got, tc.want)
		}
	}
}
