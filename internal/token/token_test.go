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
	tok := s.Activation(userID, expires)
	if strings.ContainsAny(tok, "/?#%+= ") || len(tok) > 64 {
		t.Errorf("token %q is not a short URL path segment", tok)
	}
	got, err := s.VerifyActivation(userID, tok, now)
	if err != nil {
		t.Fatalf("VerifyActivation: %v", err)
	}
	if !got.Equal(expires) {
		t.Errorf("expires: got %v, want %v", got, expires)
	}
	// A second before the expiry it still works.
	if _, err := s.VerifyActivation(userID, tok, expires.Add(-time.Second)); err != nil {
		t.Errorf("VerifyActivation just before expiry: %v", err)
	}
	// Expiry is kept to the second.
	tok = s.Activation(userID, expires.Add(500*time.Millisecond))
	if got, _ := s.VerifyActivation(userID, tok, now); !got.Equal(expires) {
		t.Errorf("expires: got %v, want %v", got, expires)
	}
}

func TestActivationRotation(t *testing.T) {
	t.Parallel()
	expires := now.Add(time.Hour)
	oldTok := newSigner(t, "old-key").Activation(userID, expires)

	rotated := newSigner(t, "new-key", "old-key")
	if _, err := rotated.VerifyActivation(userID, oldTok, now); err != nil {
		t.Errorf("token signed with the old key, old key still listed: %v", err)
	}
	newTok := rotated.Activation(userID, expires)
	if newTok == oldTok {
		t.Errorf("the rotated signer still signs with the old key")
	}
	if _, err := newSigner(t, "new-key").VerifyActivation(userID, newTok, now); err != nil {
		t.Errorf("token signed with the new key: %v", err)
	}

	retired := newSigner(t, "new-key")
	if _, err := retired.VerifyActivation(userID, oldTok, now); !errors.Is(err, domain.ErrTokenInvalid) {
		t.Errorf("token signed with a retired key: got %v, want domain.ErrTokenInvalid", err)
	}
}

func TestActivationRejects(t *testing.T) {
	t.Parallel()
	s := newSigner(t, "key-one")
	expires := now.Add(time.Hour)
	tok := s.Activation(userID, expires)
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
	later := s.Activation(userID, expires.Add(time.Hour))
	laterExp, _, _ := strings.Cut(later, ".")

	tests := []struct {
		name, user, token string
		now               time.Time
	}{
		{"forged user id", "0190b7a4-8f7e-7c4e-9d7e-3f1d2c3b4a5a", tok, now},
		{"empty user id", "", tok, now},
		{"tampered mac first", userID, exp + "." + flip(mac, 0), now},
		{"tampered mac last", userID, exp + "." + flip(mac, len(mac)-2), now},
		{"truncated mac", userID, exp + "." + mac[:len(mac)-1], now},
		{"extended expiry", userID, laterExp + "." + mac, now},
		{"expired", userID, tok, expires},
		{"long expired", userID, tok, expires.Add(24 * time.Hour)},
		{"other key", userID, newSigner(t, "key-two").Activation(userID, expires), now},
		{"empty", userID, "", now},
		{"no dot", userID, exp + mac, now},
		{"only dot", userID, ".", now},
		{"no expiry", userID, "." + mac, now},
		{"no mac", userID, exp + ".", now},
		{"two dots", userID, exp + "." + mac + ".x", now},
		{"non base36", userID, "zz!z." + mac, now},
		{"upper case expiry", userID, strings.ToUpper(exp) + "." + mac, now},
		{"leading zero", userID, "0" + exp + "." + mac, now},
		{"signed expiry", userID, "+" + exp + "." + mac, now},
		{"negative expiry", userID, "-" + exp + "." + mac, now},
		{"padded mac", userID, tok + "=", now},
		{"std base64", userID, exp + "." + strings.NewReplacer("-", "+", "_", "/").Replace(mac) + "+/", now},
		{"huge", userID, strings.Repeat("a", 1<<20) + "." + mac, now},
		{"huge expiry number", userID, strings.Repeat("z", 20) + "." + mac, now},
		{"whitespace", userID, " " + tok, now},
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
	f.Add(userID, s.Activation(userID, now.Add(time.Hour)))
	f.Add(userID, "")
	f.Add(userID, ".")
	f.Add("", "1.AAAA")
	f.Add(userID, "zzzzzzzzzzzzz.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, user, tok string) {
		expires, err := s.VerifyActivation(user, tok, now)
		if err != nil {
			if !errors.Is(err, domain.ErrTokenInvalid) {
				t.Fatalf("got %v, want domain.ErrTokenInvalid", err)
			}
			return
		}
		// Only a token the signer itself made for this user verifies.
		if want := s.Activation(user, expires); want != tok {
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
