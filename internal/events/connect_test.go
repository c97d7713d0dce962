package events_test

import (
	"context"
	"testing"
	"time"

	"github.com/orgs-dev/orgs/internal/events"
	"github.com/orgs-dev/orgs/internal/events/eventstest"
)

func TestConnectAndReady(t *testing.T) {
	t.Parallel()
	srv := eventstest.NewRestartableServer(t)
	nc, js, err := events.Connect(srv.URL(), "test", testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := events.Ready(nc); err != nil {
		t.Errorf("ready: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := events.EnsureStream(ctx, js, events.StreamConfig{MaxAge: time.Minute}); err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, events.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	if cfg := s.CachedInfo().Config; cfg.Duplicates != time.Minute || cfg.Subjects[0] != "orgs.events.>" {
		t.Errorf("got duplicates %s subjects %v, want 1m (capped by MaxAge) and orgs.events.>", cfg.Duplicates, cfg.Subjects)
	}
	srv.Shutdown()
	deadline := time.Now().Add(2 * time.Second)
	for events.Ready(nc) == nil {
		if time.Now().After(deadline) {
			t.Fatal("ready with the server down")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
