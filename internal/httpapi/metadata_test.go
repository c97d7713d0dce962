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
