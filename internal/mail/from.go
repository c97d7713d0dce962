package mail

import (
	"strings"
	"unicode"
)

// maxFromName bounds the inviter's part of a From display name, in characters.
const maxFromName = 64

// FromName returns the From display name of an email a person caused:
// "<InviterName> via <SiteName>", or SiteName alone when the inviter has no name to show
// (the inviter's address is never used: it is in Reply-To). The name is the inviter's
// free text, so it is cleaned first with [cleanDisplayName]: a name such as
// "security@bank.com" becomes "securitybank.com via orgs", which reads as nobody's
// address.
func (d Data) FromName() string {
	name, site := cleanDisplayName(d.InviterName), cleanDisplayName(d.SiteName)
	switch {
	case name == "":
		return site
	case site == "":
		return name
	default:
		return name + " via " + site
	}
}

// cleanDisplayName removes from s what could make a display name read as an address, a
// second mailbox or a quoted string (@, angle brackets, double quotes, commas,
// semicolons, colons, parentheses, brackets, backslashes, and their full-width and small look-alikes),
// control and invisible format characters (bidirectional overrides, zero-width spaces),
// folds runs of white space to one space, and keeps at most maxFromName characters. It
// returns "" when nothing but punctuation is left.
func cleanDisplayName(s string) string {
	var b strings.Builder
	n, space, meaningful := 0, false, false
	for _, r := range s {
		switch {
		case unicode.IsSpace(r):
			space = b.Len() > 0
			continue
		case unicode.IsControl(r), unicode.Is(unicode.Cf, r), strings.ContainsRune(addressRunes, r):
			continue
		}
		if space {
			if n+2 > maxFromName {
				break
			}
			b.WriteByte(' ')
			n++
			space = false
		}
		if n == maxFromName {
			break
		}
		b.WriteRune(r)
		n++
		meaningful = meaningful || unicode.IsLetter(r) || unicode.IsDigit(r)
	}
	if !meaningful {
		return ""
	}
	return b.String()
}

// addressRunes are the characters that structure addresses and address lists in a
// header (RFC 5322 specials), with their look-alikes.
const addressRunes = `@<>",;:()[]\` +
	"＠﹫＜＞﹤﹥‹›«»〈〉⟨⟩《》＂“”„‟，﹐﹑；﹔：﹕（）﹙﹚［］＼﹨"
