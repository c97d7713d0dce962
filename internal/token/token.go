// Package token makes and checks the secrets that orgs hands out: signed activation links
// and random session tokens.
//
// An activation token is stateless: it carries its own expiry and an HMAC-SHA256 over its
// Recipient (the user id, the address the link was sent to and the user's last
// activation) and that expiry, so it cannot be guessed, moved to another user or
// address, extended, or used again once its user was activated: the activation moves the
// user's activation time, and a link made before it no longer verifies, even after the
// user is deactivated. Whether its user still has something to join is for the store to
// decide (a link also dies when the user has declined, or when nothing is left pending
// for them).
//
// A session token is 256 random bits; only its SHA-256 hash is stored, so a leaked
// database does not leak working sessions.
package token

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/orgs-dev/orgs/internal/domain"
)

// activationDomain separates activation MACs from any other use of the same keys. v1
// signed only the user id and the expiry; its tokens no longer verify.
const activationDomain = "orgs/activation/v2\x00"

// maxActivationLen bounds what VerifyActivation looks at: 13 base36 digits (any int64), a
// dot and 43 base64url characters fit with room to spare.
const maxActivationLen = 64

// b64 is strict so that each MAC has exactly one spelling (no stray trailing bits).
var b64 = base64.RawURLEncoding.Strict()

// Signer signs activation tokens with its first key and verifies them with any of its
// keys, so a key can be rotated: put the new key first and keep the old one after it until
// the links it signed have expired.
type Signer struct {
	keys [][]byte
}

// NewSigner returns a Signer over keys, the first of which signs. It returns an error if
// keys is empty or any key is empty.
func NewSigner(keys []string) (*Signer, error) {
	if len(keys) == 0 {
		return nil, errors.New("token: at least one key is required")
	}
	s := &Signer{keys: make([][]byte, len(keys))}
	for i, k := range keys {
		if k == "" {
			return nil, errors.New("token: empty key")
		}
		s.keys[i] = []byte(k)
	}
	return s, nil
}

// Recipient is what an activation link is bound to: its user, the address it was sent to
// (compared case-insensitively) and when the user's links were last reset (on every
// activation and on a decline by link; the zero time until then). A token made for one
// Recipient verifies for no other, so a link dies when its user's address changes, its
// user is activated, or it was used to decline.
type Recipient struct {
	UserID       string
	Email        string
	LinksResetAt time.Time // to the microsecond, as Postgres keeps it
}

// Activation returns an activation token for r that is valid until expires (to the
// second): "<expiry unix seconds in base36>.<base64url HMAC-SHA256>". It is URL-safe and
// fits in one path segment; it does not contain the address.
func (s *Signer) Activation(r Recipient, expires time.Time) string {
	exp := strconv.FormatInt(expires.Unix(), 36)
	return exp + "." + b64.EncodeToString(activationMAC(s.keys[0], r, exp))
}

// VerifyActivation checks that token was made by Activation for r with one of the
// Signer's keys and has not expired at now, and returns its expiry. It returns
// domain.ErrTokenInvalid if the token is malformed, forged (another user, address or
// activation time, an unknown key, a tampered expiry or MAC) or expired. Whether the
// user still has something to join is for the caller (the store) to check.
func (s *Signer) VerifyActivation(r Recipient, token string, now time.Time) (time.Time, error) {
	if len(token) > maxActivationLen {
		return time.Time{}, domain.ErrTokenInvalid
	}
	exp, sig, ok := strings.Cut(token, ".")
	if !ok || exp == "" || len(exp) > 13 {
		return time.Time{}, domain.ErrTokenInvalid
	}
	unix, err := strconv.ParseInt(exp, 36, 64)
	// Only the canonical spelling is accepted: no sign, no leading zeros, no capitals.
	if err != nil || unix <= 0 || strconv.FormatInt(unix, 36) != exp {
		return time.Time{}, domain.ErrTokenInvalid
	}
	// The exact length also rules out the CR and LF that base64 decoders skip.
	if len(sig) != b64.EncodedLen(sha256.Size) {
		return time.Time{}, domain.ErrTokenInvalid
	}
	mac, err := b64.DecodeString(sig)
	if err != nil || len(mac) != sha256.Size {
		return time.Time{}, domain.ErrTokenInvalid
	}
	// Check every key, without stopping early, so that the time taken does not tell which
	// key matched.
	valid := 0
	for _, k := range s.keys {
		if hmac.Equal(mac, activationMAC(k, r, exp)) {
			valid = 1
		}
	}
	if valid == 0 {
		return time.Time{}, domain.ErrTokenInvalid
	}
	expires := time.Unix(unix, 0).UTC()
	if !now.Before(expires) {
		return time.Time{}, domain.ErrTokenInvalid
	}
	return expires, nil
}

// activationMAC is the HMAC of r and exp under key. Each field is length-prefixed, so no
// two different inputs share a MAC input.
func activationMAC(key []byte, r Recipient, exp string) []byte {
	reset := ""
	if !r.LinksResetAt.IsZero() {
		reset = strconv.FormatInt(r.LinksResetAt.UnixMicro(), 36)
	}
	h := hmac.New(sha256.New, key)
	h.Write([]byte(activationDomain))
	for _, f := range []string{r.UserID, strings.ToLower(r.Email), reset, exp} {
		h.Write(binary.AppendUvarint(nil, uint64(len(f))))
		h.Write([]byte(f))
	}
	return h.Sum(nil)
}

// NewSession returns a new session token (256 random bits, base64url without padding) and
// the hash to store for it, HashSession(token).
func NewSession() (token string, hash []byte) {
	var b [32]byte
	rand.Read(b[:]) // never returns an error; it crashes the program if the system has no randomness
	token = b64.EncodeToString(b[:])
	return token, HashSession(token)
}

// HashSession returns the SHA-256 of a session token, the form in which it is stored and
// looked up. Hashing any string is safe: an unknown token simply finds no session.
func HashSession(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// EqualConstantTime reports whether a and b are equal, in time that depends on neither
// their contents nor their lengths (both are hashed first). Use it to compare a presented
// secret, such as a service API key, with a known one.
func EqualConstantTime(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}
