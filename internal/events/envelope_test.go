package events_test

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/orgs-dev/orgs/internal/events"
	"github.com/orgs-dev/orgs/internal/events/eventstest"
	"github.com/orgs-dev/orgs/orgsevents"
)

func TestMarshal(t *testing.T) {
	t.Parallel()
	tm := time.Date(2025, 3, 4, 5, 6, 7, 890123000, time.FixedZone("x", 3600))
	env := events.Envelope{
		ID:      "0195a0f4-4c1e-7000-8000-000000000001",
		Source:  "https://orgs.example.com",
		Type:    orgsevents.TypeOrgDeleted,
		Subject: "0195a0f4-4c1e-7000-8000-0000000000aa",
		Time:    tm,
		Seq:     math.MaxInt64,
		Data:    json.RawMessage(`{"organization_id": "0195a0f4-4c1e-7000-8000-0000000000aa", "slug": "x", "actor_id": null}`),
	}
	b := events.Marshal(env)

	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("unmarshal %s: %v", b, err)
	}
	want := map[string]any{
		"specversion":     "1.0",
		"id":              env.ID,
		"source":          env.Source,
		"type":            "org_deleted",
		"subject":         env.Subject,
		"time":            "2025-03-04T04:06:07.890123Z",
		"datacontenttype": "application/json",
		"seq":             float64(math.MaxInt64),
		"data":            map[string]any{"organization_id": env.Subject, "slug": "x", "actor_id": nil},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("envelope (-want +got):\n%s", diff)
	}
	ev, err := orgsevents.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Seq != math.MaxInt64 || !ev.Time.Equal(tm) {
		t.Errorf("got seq %d time %s, want %d %s", ev.Seq, ev.Time, int64(math.MaxInt64), tm)
	}
	env.Seq = 1
	if err := eventstest.ValidateEvent(events.Marshal(env)); err != nil {
		t.Errorf("validate: %v", err)
	}
}

func TestMarshalEscapes(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "plain", `quote " back \ slash`, "ctl \x00\x01\n\r\t\x1f", "utf8 é 漢字 🙂", "bad \xff\xfe utf8", "<html>&"} {
		b := events.Marshal(events.Envelope{ID: s, Source: s, Type: s, Subject: s, Data: json.RawMessage(`{}`)})
		var got struct{ ID, Source string }
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%q: invalid JSON %s: %v", s, b, err)
		}
		want, _ := json.Marshal(s)
		var ws string
		_ = json.Unmarshal(want, &ws)
		if got.ID != ws || (s != "" && got.Source != ws) {
			t.Errorf("got %q, want %q", got.ID, ws)
		}
	}
	// The default source.
	var got struct{ Source string }
	_ = json.Unmarshal(events.Marshal(events.Envelope{Data: json.RawMessage(`{}`)}), &got)
	if got.Source != events.DefaultSource {
		t.Errorf("got source %q, want %q", got.Source, events.DefaultSource)
	}
}

func BenchmarkMarshal(b *testing.B) {
	env := events.Envelope{
		ID: "0195a0f4-4c1e-7000-8000-000000000001", Source: "orgs", Type: "member_added",
		Subject: "0195a0f4-4c1e-7000-8000-0000000000aa", Time: time.Now(), Seq: 123456,
		Data: json.RawMessage(`{"organization_id": "0195a0f4-4c1e-7000-8000-0000000000aa", "is_admin": false, "actor_id": null, "user": {"id": "0195a0f4-4c1e-7000-8000-0000000000bb", "email": "a@example.com", "name": "A", "is_active": true, "external_id": null, "created_at": "2025-01-01T00:00:00Z"}}`),
	}
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = env.AppendJSON(buf[:0])
	}
}
