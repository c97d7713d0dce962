package domain_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/orgs-dev/orgs/internal/domain"
)

func TestSlugify(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, want string }{
		{"Vizsla Club", "vizsla-club"},
		{"  Vizsla   Club!! ", "vizsla-club"},
		{"Ærøskøbing Café", "aeroskobing-cafe"},
		{"Straße 42", "strasse-42"},
		{"Łódź", "lodz"},
		{"日本", "org"},
		{"", "org"},
		{"'; DROP TABLE organizations; --", "drop-table-organizations"},
		{strings.Repeat("a", 500), strings.Repeat("a", domain.MaxSlugLength-10)},
	}
	for _, tt := range tests {
		if got := domain.Slugify(tt.name); got != tt.want {
			t.Errorf("Slugify(%q) = %q, want %q", tt.name, got, tt.want)
		}
		if msg := domain.ValidSlug(domain.Slugify(tt.name)); msg != "" {
			t.Errorf("Slugify(%q) is not a valid slug: %s", tt.name, msg)
		}
	}
	if got := domain.SlugCandidate("club", 3); got != "club-3" {
		t.Errorf("SlugCandidate = %q, want club-3", got)
	}
}

func TestValidEmail(t *testing.T) {
	t.Parallel()
	valid := []string{"a@example.com", "Alice.Smith+tag@Example.CO.uk", strings.Repeat("a", 64) + "@example.com", "root@localhost"}
	invalid := []string{"", "no-at", "Alice <a@example.com>", "a @example.com", "a@example.com ", "a\n@example.com",
		strings.Repeat("a", 65) + "@example.com", "a@" + strings.Repeat("b", 250) + ".com", "a@nodot", "@example.com", "a@"}
	for _, e := range valid {
		if msg := domain.ValidEmail(e); msg != "" {
			t.Errorf("ValidEmail(%q) = %q, want valid", e, msg)
		}
	}
	for _, e := range invalid {
		if domain.ValidEmail(e) == "" {
			t.Errorf("ValidEmail(%q) accepted, want a problem", e)
		}
	}
}

func TestValidSlug(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"a", "club-2", "x1"} {
		if msg := domain.ValidSlug(s); msg != "" {
			t.Errorf("ValidSlug(%q) = %q", s, msg)
		}
	}
	for _, s := range []string{"", "-a", "a-", "a--b", "A", "a_b", "é", strings.Repeat("a", 101)} {
		if domain.ValidSlug(s) == "" {
			t.Errorf("ValidSlug(%q) accepted", s)
		}
	}
}

func TestPermissions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		superuser  bool
		have, want domain.Role
		err        error
	}{
		{false, "", domain.RoleMember, domain.ErrNotFound},
		{true, "", domain.RoleOwner, nil},
		{false, domain.RoleMember, domain.RoleMember, nil},
		{false, domain.RoleMember, domain.RoleAdmin, domain.ErrForbidden},
		{false, domain.RoleAdmin, domain.RoleAdmin, nil},
		{false, domain.RoleAdmin, domain.RoleOwner, domain.ErrForbidden},
		{false, domain.RoleOwner, domain.RoleOwner, nil},
	}
	for _, tt := range tests {
		if err := domain.CheckRole(tt.superuser, tt.have, tt.want); !errors.Is(err, tt.err) {
			t.Errorf("CheckRole(%v, %q, %q) = %v, want %v", tt.superuser, tt.have, tt.want, err, tt.err)
		}
	}
	if err := domain.CanRemoveMember(false, "u", domain.RoleMember, "u", false); err != nil {
		t.Errorf("a member leaving: got %v, want nil", err)
	}
	if err := domain.CanRemoveMember(false, "u", domain.RoleMember, "v", false); !errors.Is(err, domain.ErrForbidden) {
		t.Errorf("a member removing another: got %v, want ErrForbidden", err)
	}
	if err := domain.CanRemoveMember(true, "", "", "v", true); !errors.Is(err, domain.ErrOwnerCannotBeRemoved) {
		t.Errorf("removing the owner: got %v, want ErrOwnerCannotBeRemoved", err)
	}
	no := false
	if err := domain.CheckDemotion(true, &no); !errors.Is(err, domain.ErrOwnerMustBeAdmin) {
		t.Errorf("demoting the owner: got %v", err)
	}
	if err := domain.CheckNewOwner(false, false, true); !errors.Is(err, domain.ErrNotAMember) {
		t.Errorf("non-member owner: got %v", err)
	}
	if err := domain.CheckNewOwner(true, true, true); !errors.Is(err, domain.ErrMemberNotActive) {
		t.Errorf("pending owner: got %v", err)
	}
}

func TestValidPassword(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		pw, want string
	}{
		{"", "must be at least 8 characters"},
		{"short1!", "must be at least 8 characters"},
		{"ééééééé", "must be at least 8 characters"}, // 7 characters, 14 bytes
		{"password", "is one of the most common passwords: choose another"},
		{"Password1", "is one of the most common passwords: choose another"},
		{"QWERTYUIOP", "is one of the most common passwords: choose another"},
		{strings.Repeat("x", 257), "must be at most 256 characters"},
		{strings.Repeat("é", 256), ""},
		{"correct horse battery", ""},
		{"vizsla-club-2026", ""},
	} {
		if got := domain.ValidPassword(tc.pw); got != tc.want {
			t.Errorf("ValidPassword(%.20q): got %q, want %q", tc.pw, got, tc.want)
		}
	}
}
