package httpapi

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/orgs-dev/orgs/internal/domain"
	"github.com/orgs-dev/orgs/internal/postgres/postgrestest"
)

func TestCheckMetadata(t *testing.T) {
	t.Parallel()
	ok := map[string]string{
		`{}`:                          `{}`,
		`{"a": "\ud83c\udf89"}`:       `{"a":"🎉"}`,
		`{"a": "\\ud800"}`:            `{"a":"\\ud800"}`,
		`{"n": 12345678901234567890}`: `{"n":12345678901234567890}`,
		`{"html": "<b>&</b>"}`:        `{"html":"<b>&</b>"}`,
	}
	for in, want := range ok {
		var v domain.Validator
		got := checkMetadata(&v, "body.metadata", []byte(in))
		if err := v.Err(); err != nil || string(got) != want {
			t.Errorf("checkMetadata(%s) = %s, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{`[]`, `"x"`, `null`, `{"a": "\ud800"}`, `{"a": "\udc00x"}`, `{"a": "\u0000"}`, `{"\u0000": 1}`, `{"a": "\ud800\u0041"}`} {
		var v domain.Validator
		checkMetadata(&v, "body.metadata", []byte(in))
		if v.Err() == nil {
			t.Errorf("checkMetadata(%s) accepted", in)
		}
	}
}

func TestLoggablePath(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ path, want string }{
		{"/v1/activation/u1/secret.tok", "/v1/activation/u1/REDACTED"},
		{"/v1/activation/u1/secret/decline", "/v1/activation/u1/REDACTED/decline"},
		{"/activate/u1/secret", "/activate/u1/REDACTED"},
		{"/activate/u1/secret/", "/activate/u1/REDACTED/"},
		{"/v1/activation/u1/secret/extra", "/v1/activation/u1/REDACTED/REDACTED"},
		{"/v1/activation/u1/secret/decline/x", "/v1/activation/u1/REDACTED/REDACTED/REDACTED"},
		{"/v1//activation//u1//secret", "/v1//activation//u1//REDACTED"},
		{"/V1/Activation/u1/secret", "/V1/Activation/u1/REDACTED"},
		{"/x/../activate/u1/secret", "/x/../activate/u1/REDACTED"},
		{"/v1/activation/u1/secret/../../resend", "/v1/activation/u1/REDACTED/REDACTED/REDACTED/REDACTED"},
		{"/v1/activation/resend", "/v1/activation/resend"},
		{"/v1/activation/u1", "/v1/activation/u1"},
		{"/activate", "/activate"},
		{"/v1/organizations/o1", "/v1/organizations/o1"},
		{"/x/y", "/x/y"},
		{"/", "/"},
	} {
		if got := loggablePath(tt.path); got != tt.want {
			t.Errorf("loggablePath(%q) = %q, want %q", tt.path, got, tt.want)
		}
	}
}

// TestStoredJSONSize compares storedJSONSize with what Postgres prints back from jsonb,
// the form the API returns.
func TestStoredJSONSize(t *testing.T) {
	t.Parallel()
	pool := postgrestest.New(t)
	docs := []string{
		`{}`,
		`{"a":1}`,
		`{"a":[],"b":{},"c":[1,2,3],"d":{"x":null,"y":true,"z":false}}`,
		`{"s":"tab\tnl\nquote\"back\\bell\u0007del\u007f é 🎉 \u2028"}`,
		`{"bs":"\b\f\r","k\"ey":"v"}`,
		`{"n":[0,-0,-0.0,0.00e5,1.50e1,2e-3,1E+2,12.3400e-10,-1.5,100,0.5,-0.001,1e0,10e-1,123456789012345678901234567890]}`,
		`{"big":1e300,"small":1e-300,"neg":-7.25E2}`,
		`{"dup":1,"dup":22}`,
		`{"invalid":"` + "\xff\xfe" + `"}`,
	}
	for _, d := range docs {
		var doc any
		dec := json.NewDecoder(strings.NewReader(d))
		dec.UseNumber()
		if err := dec.Decode(&doc); err != nil {
			t.Fatalf("%s: %v", d, err)
		}
		var v domain.Validator
		normalized := checkMetadata(&v, "m", json.RawMessage(d))
		if err := v.Err(); err != nil {
			t.Fatalf("checkMetadata(%s): %v", d, err)
		}
		var want int
		if err := pool.QueryRow(context.Background(), `SELECT octet_length($1::jsonb::text)`, string(normalized)).Scan(&want); err != nil {
			t.Fatalf("%s: %v", d, err)
		}
		if got := storedJSONSize(doc, 1<<20); got != want {
			t.Errorf("storedJSONSize(%s) = %d, want %d (Postgres)", d, got, want)
		}
	}
}

// TestCheckMetadataStoredSize: the 16 KiB limit holds for the stored form, which can be
// larger than the request's (invalid UTF-8 becomes a three-byte U+FFFD, an exponent
// becomes digits, Postgres adds spaces), and a pretty-printed document that is small
// once stored passes.
func TestCheckMetadataStoredSize(t *testing.T) {
	t.Parallel()
	fill := func(prefix string, n int, suffix string) []byte {
		return []byte(prefix + strings.Repeat("x", n-len(prefix)-len(suffix)) + suffix)
	}
	for name, raw := range map[string][]byte{
		"invalid UTF-8":     []byte(`{"a":"` + strings.Repeat("\xff", domain.MaxMetadataBytes-10) + `"}`),
		"exponent":          []byte(`{"a":1e20000}`),
		"negative exponent": []byte(`{"a":1e-20000}`),
		"huge exponent":     []byte(`{"a":1e99999999999999999999}`),
		"spaces added":      []byte(`{"a":[` + strings.Repeat("0,", domain.MaxMetadataBytes/2-5) + `0]}`),
		"just over":         fill(`{"a":"`, domain.MaxMetadataBytes, `"}`),
	} {
		var v domain.Validator
		if out := checkMetadata(&v, "body.metadata", raw); v.Err() == nil {
			t.Errorf("%s: accepted %d bytes that store as %d", name, len(raw), len(out))
		}
	}
	for name, raw := range map[string][]byte{
		"at the limit":   fill(`{"a": "`, domain.MaxMetadataBytes, `"}`),
		"pretty-printed": []byte("{\n" + strings.Repeat(" ", 3*domain.MaxMetadataBytes) + `"a": 1` + "\n}"),
	} {
		var v domain.Validator
		checkMetadata(&v, "body.metadata", raw)
		if err := v.Err(); err != nil {
			t.Errorf("%s: %v, want accepted", name, err)
		}
	}
}
