package token_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/orgs-dev/orgs/internal/domain"
	"github.com/orgs-dev/orgs/internal/token"
)

const userID = "0190b7a4-8f7e-7c4e-9d7e-3f1d2c3b4a59"

// rcpt is a user who was never activated; the link went to their address.
var rcpt = token.Recipient{UserID: userID, Email: "Ada.Lovelace@Example.com"}

var now = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func newSigner(t testing.TB, keys ...string) *token.Signer {
	t.Helper()
	s, err := token.NewSigner(keys)
	if err != nil {
		t.Fatalf("NewSigner: %v", err)
	}
	return s
}

func TestNewSigner(t *testing.T) {
	t.Parallel()
	for _, keys := range [][]string{nil, {}, {""}, {"a", ""}} {
		if _, err := token.NewSigner(keys); err == nil {
			t.Errorf("NewSigner(%q): got nil error, want an error", keys)
		}
	}
}

func TestActivationRoundTrip(t *testing.T) {
	t.Parallel()
	s := newSigner(t, "key-one")
	expires := now.Add(168 * time.Hour)
	tok := s.Activation(rcpt, expires)
	if strings.ContainsAny(tok, "/?#%+= ") || len(tok) > 64 {
		t.Errorf("token %q is not a short URL path segment", tok)
	}
	got, err := s.VerifyActivation(rcpt, tok, now)
	if err != nil {
		t.Fatalf("VerifyActivation: %v", err)
	}
	if !got.Equal(expires) {
		t.Errorf("expires: got %v, want %v", got, expires)
	}
	// A second before the expiry it still works.
	if _, err := s.VerifyActivation(rcpt, tok, expires.Add(-time.Second)); err != nil {
		t.Errorf("VerifyActivation just before expiry: %v", err)
	}
	// Expiry is kept to the second.
	tok = s.Activation(rcpt, expires.Add(500*time.Millisecond))
	if got, _ := s.VerifyActivation(rcpt, tok, now); !got.Equal(expires) {
		t.Errorf("expires: got %v, want %v", got, expires)
	}
}

func TestActivationRotation(t *testing.T) {
	t.Parallel()
	expires := now.Add(time.Hour)
	oldTok := newSigner(t, "old-key").Activation(rcpt, expires)

	rotated := newSigner(t, "new-key", "old-key")
	if _, err := rotated.VerifyActivation(rcpt, oldTok, now); err != nil {
		t.Errorf("token signed with the old key, old key still listed: %v", err)
	}
	newTok := rotated.Activation(rcpt, expires)
	if newTok == oldTok {
		t.Errorf("the rotated signer still signs with the old key")
	}
	if _, err := newSigner(t, "new-key").VerifyActivation(rcpt, newTok, now); err != nil {
		t.Errorf("token signed with the new key: %v", err)
	}

	retired := newSigner(t, "new-key")
	if _, err := retired.VerifyActivation(rcpt, oldTok, now); !errors.Is(err, domain.ErrTokenInvalid) {
		t.Errorf("token signed with a retired key: got %v, want domain.ErrTokenInvalid", err)
	}
}

// TestActivationBinding checks that a link is bound to the address it was sent to and to
// the user's activation: a used link does not come back when the user is deactivated and
// given something to join, and a link to a former address does not work.
func TestActivationBinding(t *testing.T) {
	t.Parallel()
	s := newSigner(t, "key-one")
	expires := now.Add(time.Hour)
	tok := s.Activation(rcpt, expires)

	sameAddress := rcpt
	sameAddress.Email = "ada.lovelace@EXAMPLE.COM"
	if _, err := s.VerifyActivation(sameAddress, tok, now); err != nil {
		t.Errorf("the address in other case: %v, want it verified (addresses compare case-insensitively)", err)
	}

	moved := rcpt
	moved.Email = "ada@new.example.com"
	if _, err := s.VerifyActivation(moved, tok, now); !errors.Is(err, domain.ErrTokenInvalid) {
		t.Errorf("after the address changed: got %v, want domain.ErrTokenInvalid", err)
	}
	// The new address gets links of its own.
	if _, err := s.VerifyActivation(moved, s.Activation(moved, expires), now); err != nil {
		t.Errorf("a link to the new address: %v", err)
	}

	activated := rcpt
	activated.LinksResetAt = time.Date(2025, 3, 1, 11, 0, 0, 123456000, time.UTC)
	if _, err := s.VerifyActivation(activated, tok, now); !errors.Is(err, domain.ErrTokenInvalid) {
		t.Errorf("after the user was activated: got %v, want domain.ErrTokenInvalid", err)
	}
	// A link sent after that activation (the user was deactivated and invited again)
	// works until the next activation, to the microsecond.
	again := s.Activation(activated, expires)
	if _, err := s.VerifyActivation(activated, again, now); err != nil {
		t.Errorf("a link made after the activation: %v", err)
	}
	for _, at := range []time.Time{{}, activated.LinksResetAt.Add(time.Microsecond), activated.LinksResetAt.Add(time.Hour)} {
		r := activated
		r.LinksResetAt = at
		if _, err := s.VerifyActivation(r, again, now); !errors.Is(err, domain.ErrTokenInvalid) {
			t.Errorf("activated at %v, link made for %v: got %v, want domain.ErrTokenInvalid", at, activated.LinksResetAt, err)
		}
	}
	// The time zone of the activation time does not matter.
	inParis := activated
	inParis.LinksResetAt = activated.LinksResetAt.In(time.FixedZone("CET", 3600))
	if _, err := s.VerifyActivation(inParis, again, now); err != nil {
		t.Errorf("the same activation time in another zone: %v", err)
	}
}

func TestActivationRejects(t *testing.T) {
	t.Parallel()
	s := newSigner(t, "key-one")
	expires := now.Add(time.Hour)
	tok := s.Activation(rcpt, expires)
	exp, mac, _ := strings.Cut(tok, ".")

	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	later := s.Activation(rcpt, expires.Add(time.Hour))
	laterExp, _, _ := strings.Cut(later, ".")

	other := func(f func(r *token.Recipient)) token.Recipient {
		r := rcpt
		f(&r)
		return r
	}
	tests := []struct {
		name  string
		user  token.Recipient
		token string
		now   time.Time
	}{
		{"forged user id", other(func(r *token.Recipient) { r.UserID = "0190b7a4-8f7e-7c4e-9d7e-3f1d2c3b4a5a" }), tok, now},
		{"empty user id", other(func(r *token.Recipient) { r.UserID = "" }), tok, now},
		{"another address", other(func(r *token.Recipient) { r.Email = "ada@example.net" }), tok, now},
		{"empty address", other(func(r *token.Recipient) { r.Email = "" }), tok, now},
		{"activated since", other(func(r *token.Recipient) { r.LinksResetAt = now }), tok, now},
		{"user id and address run together", token.Recipient{UserID: userID + "ada.lovelace@", Email: "example.com"}, tok, now},
		{"tampered mac first", rcpt, exp + "." + flip(mac, 0), now},
		{"tampered mac last", rcpt, exp + "." + flip(mac, len(mac)-2), now},
		{"truncated mac", rcpt, exp + "." + mac[:len(mac)-1], now},
		{"extended expiry", rcpt, laterExp + "." + mac, now},
		{"expired", rcpt, tok, expires},
		{"long expired", rcpt, tok, expires.Add(24 * time.Hour)},
		{"other key", rcpt, newSigner(t, "key-two").Activation(rcpt, expires), now},
		{"empty", rcpt, "", now},
		{"no dot", rcpt, exp + mac, now},
		{"only dot", rcpt, ".", now},
		{"no expiry", rcpt, "." + mac, now},
		{"no mac", rcpt, exp + ".", now},
		{"two dots", rcpt, exp + "." + mac + ".x", now},
		{"non base36", rcpt, "zz!z." + mac, now},
		{"upper case expiry", rcpt, strings.ToUpper(exp) + "." + mac, now},
		{"leading zero", rcpt, "0" + exp + "." + mac, now},
		{"signed expiry", rcpt, "+" + exp + "." + mac, now},
		{"negative expiry", rcpt, "-" + exp + "." + mac, now},
		{"padded mac", rcpt, tok + "=", now},
		{"std base64", rcpt, exp + "." + strings.NewReplacer("-", "+", "_", "/").Replace(mac) + "+/", now},
		{"huge", rcpt, strings.Repeat("a", 1<<20) + "." + mac, now},
		{"huge expiry number", rcpt, strings.Repeat("z", 20) + "." + mac, now},
		{"whitespace", rcpt, " " + tok, now},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := s.VerifyActivation(tt.user, tt.token, tt.now)
			if !errors.Is(err, domain.ErrTokenInvalid) {
				t.Errorf("got %v, want domain.ErrTokenInvalid", err)
			}
			if !got.IsZero() {
				t.Errorf("expires: got %v, want the zero time", got)
			}
		})
	}
}

func FuzzVerifyActivation(f *testing.F) {
	s := newSigner(f, "key-one", "key-two")
	f.Add(userID, s.Activation(rcpt, now.Add(time.Hour)))
	f.Add(userID, "")
	f.Add(userID, ".")
	f.Add("", "1.AAAA")
	f.Add(userID, "zzzzzzzzzzzzz.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, user, tok string) {
		r := token.Recipient{UserID: user, Email: rcpt.Email}
		expires, err := s.VerifyActivation(r, tok, now)
		if err != nil {
			if !errors.Is(err, domain.ErrTokenInvalid) {
				t.Fatalf("got %v, want domain.ErrTokenInvalid", err)
			}
			return
		}
		// Only a token the signer itself made for this user verifies.
		if want := s.Activation(r, expires); want != tok {
			t.Fatalf("verified %q for %q, but the signer makes %q", tok, user, want)
		}
		if !expires.After(now) {
			t.Fatalf("verified a token that expired at %v", expires)
		}
	})
}

func TestSession(t *testing.T) {
	t.Parallel()
	tok, hash := token.NewSession()
	if len(tok) != 43 {
		t.Errorf("len(token): got %d, want 43 (256 bits in base64url)", len(tok))
	}
	if strings.ContainsAny(tok, "+/=") {
		t.Errorf("token %q is not base64url without padding", tok)
	}
	if !bytes.Equal(hash, token.HashSession(tok)) {
		t.Errorf("NewSession hash differs from HashSession(token)")
	}
	if len(hash) != 32 {
		t.Errorf("len(hash): got %d, want 32", len(hash))
	}
	tok2, hash2 := token.NewSession()
	if tok == tok2 || bytes.Equal(hash, hash2) {
		t.Errorf("two sessions got the same token")
	}
	if bytes.Equal(token.HashSession(tok), token.HashSession(tok+"x")) {
		t.Errorf("different tokens hash the same")
	}
}

func TestEqualConstantTime(t *testing.T) {
	t.Parallel()
	tests := []struct {
		a, b string
		want bool
	}{
		{"dev-secret-key", "dev-secret-key", true},
		{"", "", true},
		{"dev-secret-key", "dev-secret-kez", false},
		{"dev-secret-key", "dev-secret-key ", false},
		{"", "x", false},
	}
	for _, tt := range tests {
		if got := token.EqualConstantTime(tt.a, tt.b); got != tt.want {
			t.Errorf("EqualConstantTime(%q, %q): got %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}
