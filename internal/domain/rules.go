package domain

import (
	_ "embed" // the common passwords
	"net/mail"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Limits of the contract.
const (
	MaxEmailLength     = 254
	MaxEmailLocalPart  = 64
	MaxNameLength      = 200
	MaxSlugLength      = 100
	MaxMetadataBytes   = 16 << 10
	MaxMessageLength   = 1000
	MaxExternalIDChars = 255
	MaxBulkMembers     = 100
	MinPasswordLength  = 8
	MaxPasswordLength  = 256
)

//go:embed common_passwords.txt
var commonPasswordList string

// commonPasswords is the set of commonPasswordList.
var commonPasswords = func() map[string]bool {
	set := map[string]bool{}
	for _, line := range strings.Split(commonPasswordList, "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			set[line] = true
		}
	}
	return set
}()

// ValidPassword reports why a new password is unacceptable (shorter than 8 or longer
// than 256 characters, or one of the most common passwords), or "" when it is fine.
func ValidPassword(pw string) string {
	n := utf8.RuneCountInString(pw)
	switch {
	case n < MinPasswordLength:
		return "must be at least 8 characters"
	case n > MaxPasswordLength:
		return "must be at most 256 characters"
	case commonPasswords[strings.ToLower(pw)]:
		return "is one of the most common passwords: choose another"
	}
	return ""
}

// ValidEmail reports why email is not a bare local@domain address of at most 254
// characters with a local part of at most 64, or "" when it is.
func ValidEmail(email string) string {
	if email == "" {
		return "is required"
	}
	if len(email) > MaxEmailLength {
		return "must be at most 254 characters"
	}
	for _, r := range email {
		if r <= ' ' || r == 0x7f || r == '<' || r == '>' || r == '"' || r == ',' || r == '(' || r == ')' {
			return "must be a bare address like name@example.com, without spaces or a display name"
		}
	}
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email || addr.Name != "" {
		return "must be a bare address like name@example.com"
	}
	at := strings.LastIndexByte(email, '@')
	if at > MaxEmailLocalPart {
		return "local part must be at most 64 characters"
	}
	domain := email[at+1:]
	if !strings.Contains(domain, ".") && domain != "localhost" {
		return "domain must contain a dot"
	}
	return ""
}

// ValidName reports why a person's or organization's name is unacceptable, or "".
func ValidName(name string, required bool) string {
	if strings.TrimSpace(name) == "" {
		if required {
			return "is required"
		}
		if name != "" {
			return "must not be blank"
		}
		return ""
	}
	if !utf8.ValidString(name) {
		return "must be valid UTF-8"
	}
	if utf8.RuneCountInString(name) > MaxNameLength {
		return "must be at most 200 characters"
	}
	for _, r := range name {
		if r < ' ' || r == 0x7f {
			return "must not contain control characters"
		}
	}
	return ""
}

// ValidText reports why free text (an external id, a message, a query value) cannot be
// stored, or "": it must be valid UTF-8 without NUL characters.
func ValidText(s string) string {
	if !utf8.ValidString(s) {
		return "must be valid UTF-8"
	}
	if strings.IndexByte(s, 0) >= 0 {
		return "must not contain NUL characters"
	}
	return ""
}

// ValidSlug reports why slug is not lowercase ASCII letters, digits and single hyphens
// (at most 100 characters), or "".
func ValidSlug(slug string) string {
	if slug == "" {
		return "is required"
	}
	if len(slug) > MaxSlugLength {
		return "must be at most 100 characters"
	}
	prevHyphen := true
	for i := 0; i < len(slug); i++ {
		c := slug[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			prevHyphen = false
		case c == '-' && !prevHyphen:
			prevHyphen = true
		default:
			return "must be lowercase letters, digits and single hyphens, starting and ending with a letter or digit"
		}
	}
	if prevHyphen {
		return "must not end with a hyphen"
	}
	return ""
}

// Slugify makes a slug from a name: ASCII-folded ("Ærøskøbing Café" → "aeroskobing-cafe"),
// lowercase, runs of other characters turned into one hyphen, at most 100 characters. A
// name with nothing to keep gives "org".
func Slugify(name string) string {
	var b strings.Builder
	hyphen := false
	for _, r := range name {
		folded := foldRune(r)
		for i := 0; i < len(folded); i++ {
			c := folded[i]
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			if (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') {
				if hyphen && b.Len() > 0 {
					b.WriteByte('-')
				}
				hyphen = false
				b.WriteByte(c)
			} else {
				hyphen = true
			}
		}
		if b.Len() >= MaxSlugLength {
			break
		}
	}
	s := b.String()
	if len(s) > MaxSlugLength-10 { // room for a "-NNN" suffix
		s = strings.TrimRight(s[:MaxSlugLength-10], "-")
	}
	if s == "" {
		return "org"
	}
	return s
}

// SlugCandidate returns the n-th slug to try for base: base itself, then base-2, base-3...
func SlugCandidate(base string, n int) string {
	if n <= 1 {
		return base
	}
	return base + "-" + strconv.Itoa(n)
}

// foldRune returns the ASCII spelling of r: itself for ASCII, a transliteration for the
// Latin letters with diacritics, and a space (a word break) for anything else.
func foldRune(r rune) string {
	if r < utf8.RuneSelf {
		return string(r)
	}
	if s, ok := latinFold[r]; ok {
		return s
	}
	return " "
}

var latinFold = func() map[rune]string {
	m := map[rune]string{
		'ß': "ss", 'Æ': "AE", 'æ': "ae", 'Ø': "O", 'ø': "o", 'Œ': "OE", 'œ': "oe",
		'Þ': "TH", 'þ': "th", 'Ð': "D", 'ð': "d", 'Đ': "D", 'đ': "d", 'Ł': "L", 'ł': "l",
		'Ħ': "H", 'ħ': "h", 'ı': "i", 'Ŋ': "N", 'ŋ': "n", 'ſ': "s", 'Ŧ': "T", 'ŧ': "t",
	}
	groups := map[string]string{
		"A": "ÀÁÂÃÄÅĀĂĄǍ", "a": "àáâãäåāăąǎ", "C": "ÇĆĈĊČ", "c": "çćĉċč",
		"D": "Ď", "d": "ď", "E": "ÈÉÊËĒĔĖĘĚ", "e": "èéêëēĕėęě", "G": "ĜĞĠĢ", "g": "ĝğġģ",
		"H": "Ĥ", "h": "ĥ", "I": "ÌÍÎÏĨĪĬĮİǏ", "i": "ìíîïĩīĭįǐ", "J": "Ĵ", "j": "ĵ",
		"K": "Ķ", "k": "ķ", "L": "ĹĻĽĿ", "l": "ĺļľŀ", "N": "ÑŃŅŇ", "n": "ñńņňŉ",
		"O": "ÒÓÔÕÖŌŎŐǑ", "o": "òóôõöōŏőǒ", "R": "ŔŖŘ", "r": "ŕŗř", "S": "ŚŜŞŠȘ", "s": "śŝşšș",
		"T": "ŢŤȚ", "t": "ţťț", "U": "ÙÚÛÜŨŪŬŮŰŲǓ", "u": "ùúûüũūŭůűųǔ", "W": "Ŵ", "w": "ŵ",
		"Y": "ÝŶŸ", "y": "ýÿŷ", "Z": "ŹŻŽ", "z": "źżž",
	}
	for ascii, letters := range groups {
		for _, r := range letters {
			m[r] = ascii
		}
	}
	return m
}()

// CanRemoveMember decides whether actor (with role actorRole in the organization, "" for
// none) may remove the member target. Members may leave; admins may remove anyone but the
// owner. Returns ErrOwnerCannotBeRemoved or ErrForbidden.
func CanRemoveMember(superuser bool, actorID string, actorRole Role, targetID string, targetIsOwner bool) error {
	if targetIsOwner {
		return ErrOwnerCannotBeRemoved
	}
	if superuser || actorID == targetID || actorRole.AtLeast(RoleAdmin) {
		return nil
	}
	return ErrForbidden
}

// CheckRole returns nil when a superuser or a member with at least role want acts, else
// ErrNotFound for a non-member (an organization's existence is not revealed to outsiders)
// and ErrForbidden for a member without the right. have is "" for a non-member.
func CheckRole(superuser bool, have, want Role) error {
	switch {
	case superuser:
		return nil
	case have == "":
		return ErrNotFound
	case have.AtLeast(want):
		return nil
	}
	return ErrForbidden
}

// CheckDemotion returns ErrOwnerMustBeAdmin when an update would take the owner's admin
// flag away.
func CheckDemotion(targetIsOwner bool, newIsAdmin *bool) error {
	if targetIsOwner && newIsAdmin != nil && !*newIsAdmin {
		return ErrOwnerMustBeAdmin
	}
	return nil
}

// CheckNewOwner decides whether a member may become the owner: it must be a member of the
// same organization (ErrNotAMember) and active, neither pending nor an inactive user
// (ErrMemberNotActive).
func CheckNewOwner(isMember, pending, userActive bool) error {
	if !isMember {
		return ErrNotAMember
	}
	if pending || !userActive {
		return ErrMemberNotActive
	}
	return nil
}
