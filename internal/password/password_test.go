package password_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/orgs-dev/orgs/internal/password"
)

// cheap keeps the tests fast; DefaultParams is exercised once and by the benchmark.
var cheap = password.Params{Memory: 64, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}

func TestHashDefault(t *testing.T) {
	t.Parallel()
	h, err := password.Hash("correct horse battery staple")
	if err != nil {
		t.Fatalf("Hash: %v", err)
	}
	if want := "$argon2id$v=19$m=19456,t=2,p=1$"; !strings.HasPrefix(h, want) {
		t.Errorf("Hash: got %q, want prefix %q", h, want)
	}
	parts := strings.Split(h, "$")
	if len(parts[4]) != 22 || len(parts[5]) != 43 {
		t.Errorf("salt and key: got %d and %d base64 characters, want 22 and 43 (16 and 32 bytes)", len(parts[4]), len(parts[5]))
	}
	if ok, err := password.Verify("correct horse battery staple", h); !ok || err != nil {
		t.Errorf("Verify right password: got %v, %v; want true, nil", ok, err)
	}
	if ok, err := password.Verify("correct horse battery stapler", h); ok || err != nil {
		t.Errorf("Verify wrong password: got %v, %v; want false, nil", ok, err)
	}
	if password.NeedsRehash(h, password.DefaultParams) {
		t.Errorf("NeedsRehash of a DefaultParams hash: got true, want false")
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	for _, pw := range []string{"", "hunter2", "pässwörd 🔑", strings.Repeat("x", 1000)} {
		h, err := password.HashWithParams(pw, cheap)
		if err != nil {
			t.Fatalf("HashWithParams: %v", err)
		}
		if ok, err := password.Verify(pw, h); !ok || err != nil {
			t.Errorf("Verify(%q): got %v, %v; want true, nil", pw, ok, err)
		}
		if ok, err := password.Verify(pw+"x", h); ok || err != nil {
			t.Errorf("Verify(%q+x): got %v, %v; want false, nil", pw, ok, err)
		}
	}
	a, _ := password.HashWithParams("same", cheap)
	b, _ := password.HashWithParams("same", cheap)
	if a == b {
		t.Errorf("two hashes of the same password are equal: the salt is not random")
	}
}

func TestOtherParamsStillVerify(t *testing.T) {
	t.Parallel()
	other := password.Params{Memory: 128, Iterations: 3, Parallelism: 2, SaltLength: 24, KeyLength: 64}
	h, err := password.HashWithParams("s3cret!", other)
	if err != nil {
		t.Fatalf("HashWithParams: %v", err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=128,t=3,p=2$") {
		t.Errorf("got %q, want the other params encoded", h)
	}
	if ok, err := password.Verify("s3cret!", h); !ok || err != nil {
		t.Errorf("Verify: got %v, %v; want true, nil", ok, err)
	}
	if !password.NeedsRehash(h, password.DefaultParams) {
		t.Errorf("NeedsRehash: got false, want true")
	}
	if password.NeedsRehash(h, other) {
		t.Errorf("NeedsRehash with its own params: got true, want false")
	}
}

// A hash made by another implementation (the reference argon2 CLI:
// echo -n password | argon2 somesaltsomesalt -id -t 2 -m 6 -p 1 -l 32 -e) verifies.
func TestVerifyReferenceVector(t *testing.T) {
	t.Parallel()
	const h = "$argon2id$v=19$m=64,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Gpj7qOY5RCXJvcMzqcdQqvgR3wcPX7SleI4c9NtXk6E"
	if ok, err := password.Verify("password", h); !ok || err != nil {
		t.Errorf("Verify: got %v, %v; want true, nil", ok, err)
	}
	if ok, err := password.Verify("Password", h); ok || err != nil {
		t.Errorf("Verify wrong password: got %v, %v; want false, nil", ok, err)
	}
}

func TestVerifyMalformed(t *testing.T) {
	t.Parallel()
	good, err := password.HashWithParams("pw", cheap)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(good, "$")
	salt, key := parts[4], parts[5]
	with := func(params string) string { return "$argon2id$v=19$" + params + "$" + salt + "$" + key }

	for _, enc := range []string{
		"",
		"$",
		"plaintext",
		"$argon2i$v=19$m=64,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=16$m=64,t=1,p=1$" + salt + "$" + key,
		"$argon2id$m=64,t=1,p=1$" + salt + "$" + key,
		with("m=64,t=1"),
		with("t=1,m=64,p=1"),
		with("m=64,t=1,p=1,x=2"),
		with("m=-1,t=1,p=1"),
		with("m=64,t=0,p=1"),
		with("m=64,t=1,p=0"),
		with("m=64,t=1,p=256"),
		with("m=4294967295,t=1,p=1"),
		with("m=64,t=4294967295,p=1"),
		with("m=99999999999,t=1,p=1"),
		with("m=,t=1,p=1"),
		with("m=0x40,t=1,p=1"),
		"$argon2id$v=19$m=64,t=1,p=1$!!!$" + key,
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key + "=",
		"$argon2id$v=19$m=64,t=1,p=1$$" + key,
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "$",
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key + "$",
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + strings.Repeat("A", 10000),
		good[1:],
		good + "\n",
	} {
		ok, err := password.Verify("pw", enc)
		if ok || !errors.Is(err, password.ErrMalformed) {
			t.Errorf("Verify(%q): got %v, %v; want false, ErrMalformed", enc, ok, err)
		}
		if !password.NeedsRehash(enc, cheap) {
			t.Errorf("NeedsRehash(%q): got false, want true", enc)
		}
	}
}

func TestHashWithParamsRejectsBadParams(t *testing.T) {
	t.Parallel()
	for _, p := range []password.Params{
		{},
		{Memory: 64, Iterations: 1, Parallelism: 1, SaltLength: 4, KeyLength: 32},
		{Memory: 64, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 4},
		{Memory: 64, Iterations: 0, Parallelism: 1, SaltLength: 16, KeyLength: 32},
		{Memory: 8, Iterations: 1, Parallelism: 4, SaltLength: 16, KeyLength: 32},
		{Memory: 1 << 19, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32},
	} {
		if _, err := password.HashWithParams("pw", p); err == nil {
			t.Errorf("HashWithParams(%+v): got nil error, want an error", p)
		}
	}
}

func TestVerifyDummy(t *testing.T) {
	t.Parallel()
	password.VerifyDummy("anything") // must not panic; its timing is the point, not its result
}

func FuzzVerify(f *testing.F) {
	good, err := password.HashWithParams("pw", cheap)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add("$argon2id$v=19$m=64,t=1,p=1$$")
	f.Add("")
	f.Fuzz(func(t *testing.T, enc string) {
		ok, err := password.Verify("pw", enc)
		if err != nil && ok {
			t.Fatalf("Verify(%q): true with error %v", enc, err)
		}
	})
}

func BenchmarkHash(b *testing.B) {
	for b.Loop() {
		if _, err := password.Hash("correct horse battery staple"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyDummy(b *testing.B) {
	for b.Loop() {
		password.VerifyDummy("correct horse battery staple")
	}
}
