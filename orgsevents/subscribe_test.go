package orgsevents_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/orgs-dev/orgs/internal/events"
	"github.com/orgs-dev/orgs/internal/events/eventstest"
	"github.com/orgs-dev/orgs/orgsevents"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type testBundle struct {
	js  jetstream.JetStream
	seq int64
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	srv := eventstest.RunServer(t)
	_, js := eventstest.Connect(t, srv.ClientURL())
	if _, err := events.EnsureStream(context.Background(), js, events.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	return &testBundle{js: js}
}

// publish puts an event on the stream; msgID overrides the Nats-Msg-Id header (to get a
// duplicate past JetStream's own de-duplication).
func (b *testBundle) publish(t *testing.T, id, typ string, data string, msgID string) {
	t.Helper()
	b.seq++
	body := events.Marshal(events.Envelope{ID: id, Type: typ, Subject: uuid.NewString(), Time: time.Now(), Seq: b.seq, Data: json.RawMessage(data)})
	b.publishRaw(t, typ, body, msgID)
}

func (b *testBundle) publishRaw(t *testing.T, typ string, body []byte, msgID string) {
	t.Helper()
	msg := &nats.Msg{Subject: orgsevents.Subject(typ), Data: body, Header: nats.Header{nats.MsgIdHdr: []string{msgID}}}
	if _, err := b.js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
}

// subscribe runs Subscribe until the test ends.
func subscribe(t *testing.T, js jetstream.JetStream, cfg orgsevents.Config, h orgsevents.Handler) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	cfg.Logger = zerolog.New(zerolog.NewTestWriter(t))
	go func() { done <- orgsevents.Subscribe(ctx, js, cfg, h) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Subscribe: %v", err)
		}
	})
}

// recorder records handled event ids.
type recorder struct {
	mu    sync.Mutex
	calls []string
	ch    chan string
}

func newRecorder() *recorder { return &recorder{ch: make(chan string, 100)} }

func (r *recorder) record(id string) {
	r.mu.Lock()
	r.calls = append(r.calls, id)
	r.mu.Unlock()
	r.ch <- id
}

func (r *recorder) wait(t *testing.T, want string) {
	t.Helper()
	select {
	case got := <-r.ch:
		if got != want {
			t.Fatalf("handled %s, want %s", got, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("event %s not handled", want)
	}
}

func (r *recorder) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case got := <-r.ch:
		t.Fatalf("unexpected handling of %s", got)
	case <-time.After(d):
	}
}

const memberRemoved = `{"organization_id":"0195a0f4-4c1e-7000-8000-0000000000aa","user_id":"0195a0f4-4c1e-7000-8000-0000000000bb","actor_id":null}`

func TestSubscribeDecodesAndFilters(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rec := newRecorder()
	var got orgsevents.MemberRemoved
	subscribe(t, b.js, orgsevents.Config{Durable: "filter", Types: []string{orgsevents.TypeMemberRemoved}},
		func(_ context.Context, ev orgsevents.Event) error {
			if err := ev.Decode(&got); err != nil {
				return fmt.Errorf("%w: %v", orgsevents.ErrPoison, err)
			}
			rec.record(ev.ID)
			return nil
		})
	other := uuid.NewString()
	b.publish(t, other, orgsevents.TypeOrgDeleted, `{"organization_id":"0195a0f4-4c1e-7000-8000-0000000000aa","slug":"x","actor_id":null}`, other)
	id := uuid.NewString()
	b.publish(t, id, orgsevents.TypeMemberRemoved, memberRemoved, id)
	rec.wait(t, id)
	if got.UserID != "0195a0f4-4c1e-7000-8000-0000000000bb" || got.ActorID != "" {
		t.Errorf("decoded %+v", got)
	}
}

func TestSubscribeDeduplicates(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rec := newRecorder()
	subscribe(t, b.js, orgsevents.Config{Durable: "dedupe"}, func(_ context.Context, ev orgsevents.Event) error {
		rec.record(ev.ID)
		return nil
	})
	id, next := uuid.NewString(), uuid.NewString()
	b.publish(t, id, orgsevents.TypeMemberRemoved, memberRemoved, id)
	b.publish(t, id, orgsevents.TypeMemberRemoved, memberRemoved, "another-msg-id")
	b.publish(t, next, orgsevents.TypeMemberRemoved, memberRemoved, next)
	rec.wait(t, id)
	rec.wait(t, next)
	rec.none(t, 200*time.Millisecond)
}

func TestSubscribeRetriesWithBackoff(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rec := newRecorder()
	var attempts int
	subscribe(t, b.js, orgsevents.Config{Durable: "retry", Backoff: []time.Duration{100 * time.Millisecond}},
		func(_ context.Context, ev orgsevents.Event) error {
			attempts++
			if attempts < 3 {
				return errors.New("database unavailable")
			}
			rec.record(ev.ID)
			return nil
		})
	id := uuid.NewString()
	start := time.Now()
	b.publish(t, id, orgsevents.TypeMemberRemoved, memberRemoved, id)
	rec.wait(t, id)
	if took := time.Since(start); took < 200*time.Millisecond {
		t.Errorf("handled after %s, want at least 2 backoffs of 100ms", took)
	}
	if attempts != 3 {
		t.Errorf("got %d attempts, want 3", attempts)
	}
}

func TestSubscribeTerminatesPoison(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rec := newRecorder()
	var mu sync.Mutex
	calls := map[string]int{}
	subscribe(t, b.js, orgsevents.Config{Durable: "poison", Backoff: []time.Duration{50 * time.Millisecond}, AckWait: time.Second},
		func(_ context.Context, ev orgsevents.Event) error {
			mu.Lock()
			calls[ev.ID]++
			mu.Unlock()
			if ev.Type == orgsevents.TypeOrgDeleted {
				return fmt.Errorf("%w: no such plan", orgsevents.ErrPoison)
			}
			rec.record(ev.ID)
			return nil
		})
	b.publishRaw(t, orgsevents.TypeMemberRemoved, []byte("not json"), uuid.NewString())
	poison := uuid.NewString()
	b.publish(t, poison, orgsevents.TypeOrgDeleted, `{}`, poison)
	ok := uuid.NewString()
	b.publish(t, ok, orgsevents.TypeMemberRemoved, memberRemoved, ok)
	rec.wait(t, ok)
	rec.none(t, 300*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if calls[poison] != 1 {
		t.Errorf("poison event handled %d times, want 1", calls[poison])
	}
	cons, err := b.js.Consumer(context.Background(), events.StreamName, "poison")
	if err != nil {
		t.Fatal(err)
	}
	if info := cons.CachedInfo(); info.NumAckPending != 0 || info.NumRedelivered != 0 {
		t.Errorf("consumer has %d pending, %d redelivered, want 0 and 0", info.NumAckPending, info.NumRedelivered)
	}
}
