// Package password hashes and verifies user passwords with Argon2id, stored as PHC
// strings ("$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>"). The parameters travel inside
// each hash, so DefaultParams can be raised later and old hashes keep verifying.
package password

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Params are the Argon2id cost parameters and sizes.
type Params struct {
	Memory      uint32 // KiB
	Iterations  uint32
	Parallelism uint8
	SaltLength  uint32 // bytes
	KeyLength   uint32 // bytes
}

// DefaultParams are OWASP's minimum for Argon2id (19 MiB, 2 iterations, 1 lane) with a
// 16-byte salt and a 32-byte key.
var DefaultParams = Params{Memory: 19 * 1024, Iterations: 2, Parallelism: 1, SaltLength: 16, KeyLength: 32}

// ErrMalformed is returned by Verify for an encoded hash it cannot read.
var ErrMalformed = errors.New("password: malformed hash")

// Limits on what Verify accepts from an encoded hash, so that a corrupted or hostile value
// cannot make it allocate gigabytes or spin for minutes.
const (
	maxMemory      = 1 << 18 // KiB (256 MiB)
	maxIterations  = 64
	minSaltLength  = 8
	maxSaltLength  = 64
	minKeyLength   = 16
	maxKeyLength   = 128
	maxEncodedSize = 512
)

var b64 = base64.RawStdEncoding.Strict()

// Hash returns the PHC encoding of pw hashed with DefaultParams and a fresh random salt.
func Hash(pw string) (string, error) {
	return HashWithParams(pw, DefaultParams)
}

// HashWithParams is Hash with other parameters (cheaper ones in tests, stronger ones after
// an upgrade). It returns an error if p is outside the limits Verify accepts.
func HashWithParams(pw string, p Params) (string, error) {
	if err := p.check(); err != nil {
		return "", err
	}
	salt := make([]byte, p.SaltLength)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password: read salt: %w", err)
	}
	key := argon2.IDKey([]byte(pw), salt, p.Iterations, p.Memory, p.Parallelism, p.KeyLength)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Iterations, p.Parallelism, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// Verify reports whether pw matches encoded, a hash from Hash or HashWithParams, comparing
// in constant time with the parameters read from encoded. It returns ErrMalformed (and
// false) if encoded cannot be read.
func Verify(pw, encoded string) (bool, error) {
	p, salt, key, err := decode(encoded)
	if err != nil {
		return false, err
	}
	got := argon2.IDKey([]byte(pw), salt, p.Iterations, p.Memory, p.Parallelism, p.KeyLength)
	return subtle.ConstantTimeCompare(got, key) == 1, nil
}

// VerifyDummy spends about the time Verify spends on a DefaultParams hash, and always
// fails. Call it when there is no user (or no password) for the given email, so that the
// answer's timing does not tell which accounts exist.
func VerifyDummy(pw string) {
	salt := make([]byte, DefaultParams.SaltLength)
	key := argon2.IDKey([]byte(pw), salt, DefaultParams.Iterations, DefaultParams.Memory, DefaultParams.Parallelism, DefaultParams.KeyLength)
	subtle.ConstantTimeCompare(key, make([]byte, len(key)))
}

// NeedsRehash reports whether encoded was made with parameters other than p (or cannot be
// read), so that the caller can store a fresh Hash after a successful login.
func NeedsRehash(encoded string, p Params) bool {
	got, _, _, err := decode(encoded)
	return err != nil || got != p
}

func (p Params) check() error {
	switch {
	case p.Parallelism < 1:
		return errors.New("password: parallelism must be at least 1")
	case p.Iterations < 1 || p.Iterations > maxIterations:
		return fmt.Errorf("password: iterations must be between 1 and %d", maxIterations)
	case p.Memory < 8*uint32(p.Parallelism) || p.Memory > maxMemory:
		return fmt.Errorf("password: memory must be between 8 KiB per lane and %d KiB", maxMemory)
	case p.SaltLength < minSaltLength || p.SaltLength > maxSaltLength:
		return fmt.Errorf("password: salt length must be between %d and %d bytes", minSaltLength, maxSaltLength)
	case p.KeyLength < minKeyLength || p.KeyLength > maxKeyLength:
		return fmt.Errorf("password: key length must be between %d and %d bytes", minKeyLength, maxKeyLength)
	}
	return nil
}

// decode parses "$argon2id$v=19$m=..,t=..,p=..$salt$key".
func decode(encoded string) (Params, []byte, []byte, error) {
	var p Params
	if len(encoded) > maxEncodedSize {
		return p, nil, nil, ErrMalformed
	}
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return p, nil, nil, ErrMalformed
	}
	fields := strings.Split(parts[3], ",")
	if len(fields) != 3 {
		return p, nil, nil, ErrMalformed
	}
	var vals [3]uint64
	for i, name := range []string{"m=", "t=", "p="} {
		v, ok := strings.CutPrefix(fields[i], name)
		if !ok {
			return p, nil, nil, ErrMalformed
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return p, nil, nil, ErrMalformed
		}
		vals[i] = n
	}
	if vals[2] > 255 {
		return p, nil, nil, ErrMalformed
	}
	// Decoders skip CR and LF: insist on the canonical spelling instead.
	salt, err := b64.DecodeString(parts[4])
	if err != nil || b64.EncodeToString(salt) != parts[4] {
		return p, nil, nil, ErrMalformed
	}
	key, err := b64.DecodeString(parts[5])
	if err != nil || b64.EncodeToString(key) != parts[5] {
		return p, nil, nil, ErrMalformed
	}
	p = Params{
		Memory:      uint32(vals[0]),
		Iterations:  uint32(vals[1]),
		Parallelism: uint8(vals[2]),
		SaltLength:  uint32(len(salt)),
		KeyLength:   uint32(len(key)),
	}
	if p.check() != nil {
		return Params{}, nil, nil, ErrMalformed
	}
	return p, salt, key, nil
}
