package httpapi

import (
	"testing"

	"github.com/orgs-dev/orgs/internal/domain"
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
