package httpapi

import (
	"encoding/base64"
	"testing"
	"time"
)

func TestCursorRoundTrip(t *testing.T) {
	t.Parallel()
	at := time.Date(2025, 6, 7, 8, 9, 10, 123456000, time.FixedZone("x", 3600))
	c := encodeCursor(at, aliceID)
	gotT, gotID, err := decodeCursor(c)
	if err != nil || !gotT.Equal(at) || gotID != aliceID {
		t.Errorf("got %v %q %v, want %v %q", gotT, gotID, err, at, aliceID)
	}
	for _, bad := range []string{
		"", "!!!", base64.RawURLEncoding.EncodeToString([]byte("no comma")),
		base64.RawURLEncoding.EncodeToString([]byte("yesterday," + aliceID)),
		base64.RawURLEncoding.EncodeToString([]byte("2025-01-01T00:00:00Z,1; DROP TABLE users")),
	} {
		if _, _, err := decodeCursor(bad); err == nil {
			t.Errorf("decodeCursor(%q): got nil error, want one", bad)
		}
	}
}

func TestNewListNeverNull(t *testing.T) {
	t.Parallel()
	out := newList[thing](nil, "")
	if out.Body.Items == nil || out.Body.NextCursor != nil {
		t.Errorf("got %+v, want empty items and a nil cursor", out.Body)
	}
}
