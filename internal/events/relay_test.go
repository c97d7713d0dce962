package events_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/orgs-dev/orgs/internal/events"
	"github.com/orgs-dev/orgs/internal/events/eventstest"
	"github.com/orgs-dev/orgs/internal/postgres/postgrestest"
	"github.com/orgs-dev/orgs/orgsevents"
)

type testBundle struct {
	pool *pgxpool.Pool
	nats *eventstest.RestartableServer
	js   jetstream.JetStream
}

func setup(t testing.TB) *testBundle {
	t.Helper()
	srv := eventstest.NewRestartableServer(t)
	_, js := eventstest.Connect(t, srv.URL(), jetstream.WithPublishAsyncTimeout(5*time.Second))
	return &testBundle{pool: postgrestest.New(t), nats: srv, js: js}
}

func testLogger(t testing.TB) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel).With().Timestamp().Logger()
}

// startRelay runs a relay until the returned stop is called (or the test ends).
func startRelay(t testing.TB, b *testBundle, cfg events.RelayConfig) (*events.Relay, *events.Metrics, func()) {
	t.Helper()
	m := events.NewMetrics(nil)
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 20 * time.Millisecond
	}
	cfg.LockRetry = 200 * time.Millisecond
	r := events.NewRelay(b.pool, b.js, testLogger(t), m, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("relay Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return r, m, stop
}

// insert commits n rows for org, each its own transaction, and returns their ids in order.
func insert(t testing.TB, pool *pgxpool.Pool, org string, n int) []string {
	t.Helper()
	ids, err := tryInsert(pool, org, n)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func tryInsert(pool *pgxpool.Pool, org string, n int) ([]string, error) {
	ids := make([]string, 0, n)
	for i := range n {
		var id string
		err := pool.QueryRow(context.Background(), `INSERT INTO outbox (id, type, subject, organization_id, data)
			VALUES (gen_random_uuid(), 'member_updated', $1::text, $1::text::uuid, jsonb_build_object('organization_id', $1::text, 'user_id', gen_random_uuid(), 'is_admin', $2::int % 2 = 0, 'actor_id', null))
			RETURNING id::text`, org, i).Scan(&id)
		if err != nil {
			return nil, fmt.Errorf("insert event: %w", err)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// insertTx inserts n rows for org in tx and returns their ids.
func insertTx(t testing.TB, tx pgx.Tx, org string, n int) []string {
	t.Helper()
	rows, err := tx.Query(context.Background(), `INSERT INTO outbox (id, type, subject, organization_id, data)
		SELECT gen_random_uuid(), 'member_removed', $1::text, $1::text::uuid, jsonb_build_object('organization_id', $1::text, 'user_id', gen_random_uuid(), 'actor_id', null)
		FROM generate_series(1, $2) ORDER BY 1 RETURNING id::text`, org, n)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("insert events: %v", err)
	}
	return ids
}

func newOrg() string { return uuid.NewString() }

// streamEvent is one message read back from the stream.
type streamEvent struct {
	streamSeq uint64
	msgID     string
	hdrSeq    int64
	ev        orgsevents.Event
}

// readStream returns every message on the stream, in stream order.
func readStream(t testing.TB, js jetstream.JetStream) []streamEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, events.StreamName)
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	last := s.CachedInfo().State.LastSeq
	out := make([]streamEvent, 0, last)
	for seq := uint64(1); seq <= last; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("get msg %d: %v", seq, err)
		}
		ev, err := orgsevents.Parse(m.Data)
		if err != nil {
			t.Fatalf("msg %d: %v", seq, err)
		}
		hs, _ := strconv.ParseInt(m.Header.Get(events.HeaderSeq), 10, 64)
		if m.Subject != events.Subject(ev.Type) {
			t.Errorf("msg %d: got subject %s, want %s", seq, m.Subject, events.Subject(ev.Type))
		}
		out = append(out, streamEvent{streamSeq: seq, msgID: m.Header.Get(nats.MsgIdHdr), hdrSeq: hs, ev: ev})
	}
	return out
}

// waitStream waits until the stream holds at least n messages.
func waitStream(t testing.TB, js jetstream.JetStream, n uint64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		s, err := js.Stream(ctx, events.StreamName)
		cancel()
		if err == nil && s.CachedInfo().State.Msgs >= n {
			return
		}
		if time.Now().After(deadline) {
			got := uint64(0)
			if err == nil {
				got = s.CachedInfo().State.Msgs
			}
			t.Fatalf("stream holds %d messages after %s, want %d (err %v)", got, timeout, n, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitUnpublished(t testing.TB, pool *pgxpool.Pool, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var n int
		err := pool.QueryRow(context.Background(), "SELECT count(*) FROM outbox WHERE published_at IS NULL").Scan(&n)
		if err == nil && n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d rows unpublished after %s (err %v)", n, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkStream checks the stream holds exactly wantIDs in this order (each once, seq
// strictly increasing, headers matching the body) and that the outbox agrees.
func checkStream(t testing.TB, b *testBundle, wantIDs []string) []streamEvent {
	t.Helper()
	got := readStream(t, b.js)
	if len(got) != len(wantIDs) {
		t.Fatalf("stream holds %d events, want %d", len(got), len(wantIDs))
	}
	var prev int64
	for i, e := range got {
		if e.ev.ID != wantIDs[i] {
			t.Fatalf("stream[%d]: got id %s, want %s", i, e.ev.ID, wantIDs[i])
		}
		if e.msgID != e.ev.ID || e.hdrSeq != e.ev.Seq {
			t.Errorf("stream[%d]: headers Nats-Msg-Id %s Orgs-Seq %d, want %s %d", i, e.msgID, e.hdrSeq, e.ev.ID, e.ev.Seq)
		}
		if e.ev.Seq <= prev {
			t.Fatalf("stream[%d]: seq %d after %d", i, e.ev.Seq, prev)
		}
		prev = e.ev.Seq
		if err := eventstest.ValidateData(e.ev.Type, e.ev.Data); err != nil {
			t.Errorf("stream[%d]: %v", i, err)
		}
	}
	rows, err := b.pool.Query(context.Background(), "SELECT id::text FROM outbox ORDER BY seq")
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(ids) != fmt.Sprint(wantIDs) {
		t.Errorf("outbox by seq differs from the stream")
	}
	return got
}

func TestRelayPublishesInCommitOrder(t *testing.T) {
	t.Parallel()
	b := setup(t)
	org1, org2 := newOrg(), newOrg()
	want := insert(t, b.pool, org1, 5)
	want = append(want, insert(t, b.pool, org2, 5)...)
	tx, err := b.pool.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, insertTx(t, tx, org1, 20)...)
	if err := tx.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}

	_, m, _ := startRelay(t, b, events.RelayConfig{BatchSize: 7, Source: "/orgs"})
	waitStream(t, b.js, uint64(len(want)), 10*time.Second)
	waitUnpublished(t, b.pool, 5*time.Second)
	got := checkStream(t, b, want)
	if got[0].ev.Seq != 1 || got[0].ev.Source != "/orgs" || got[0].ev.Subject != org1 {
		t.Errorf("first event: got seq %d source %s subject %s, want 1 /orgs %s", got[0].ev.Seq, got[0].ev.Source, got[0].ev.Subject, org1)
	}
	if v := testutil.ToFloat64(m.Published.WithLabelValues("member_removed")); v != 20 {
		t.Errorf("published member_removed: got %v, want 20", v)
	}
	if v := testutil.ToFloat64(m.Leader); v != 1 {
		t.Errorf("leader gauge: got %v, want 1", v)
	}
}

func TestRelayWaitsForOlderOpenTransaction(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	org := newOrg()
	r, _, _ := startRelay(t, b, events.RelayConfig{})
	want := insert(t, b.pool, org, 1)
	waitStream(t, b.js, 1, 5*time.Second)

	// A long transaction writes first (taking its xid) but commits last.
	late, err := b.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer late.Rollback(ctx)
	lateIDs := insertTx(t, late, org, 2)
	early := insert(t, b.pool, newOrg(), 3)
	r.Notify()
	time.Sleep(300 * time.Millisecond)
	if got := readStream(t, b.js); len(got) != 1 {
		t.Fatalf("stream holds %d events while an older transaction is open, want 1", len(got))
	}
	if err := late.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	r.Notify()
	want = append(append(want, lateIDs...), early...)
	waitStream(t, b.js, uint64(len(want)), 5*time.Second)
	checkStream(t, b, want)
}

func TestRelayRestartMidBatch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	var want []string
	for range 10 {
		tx, err := b.pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, insertTx(t, tx, newOrg(), 300)...)
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for round := range 3 {
		_, _, stop := startRelay(t, b, events.RelayConfig{BatchSize: 250})
		waitStream(t, b.js, uint64(500*(round+1)), 10*time.Second)
		stop() // mid-batch, most likely
	}
	startRelay(t, b, events.RelayConfig{BatchSize: 250})
	waitStream(t, b.js, uint64(len(want)), 20*time.Second)
	waitUnpublished(t, b.pool, 5*time.Second)
	checkStream(t, b, want)
}

func TestRelaySurvivesNATSRestart(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r, _, _ := startRelay(t, b, events.RelayConfig{BatchSize: 100, AckTimeout: time.Second})
	org := newOrg()

	// Keep writing throughout the outage.
	var want []string
	var mu sync.Mutex
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for ctx.Err() == nil {
			ids, err := tryInsert(b.pool, org, 20)
			if err != nil {
				t.Errorf("writer: %v", err)
				return
			}
			mu.Lock()
			want = append(want, ids...)
			mu.Unlock()
			r.Notify()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	waitStream(t, b.js, 200, 10*time.Second)
	b.nats.Shutdown()
	time.Sleep(2500 * time.Millisecond)
	b.nats.Start()
	waitStream(t, b.js, 2000, 30*time.Second)
	cancel()
	<-writerDone
	waitStream(t, b.js, uint64(len(want)), 30*time.Second)
	waitUnpublished(t, b.pool, 10*time.Second)
	checkStream(t, b, want)
}

func TestRelayOneLeaderAndFailover(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, m1, stop1 := startRelay(t, b, events.RelayConfig{})
	waitGauge(t, m1.Leader, 1, 5*time.Second)
	_, m2, _ := startRelay(t, b, events.RelayConfig{})
	org := newOrg()
	want := insert(t, b.pool, org, 10)
	waitStream(t, b.js, 10, 5*time.Second)
	if v := testutil.ToFloat64(m2.Leader); v != 0 {
		t.Fatalf("second relay leader gauge: got %v, want 0", v)
	}
	if v := testutil.ToFloat64(m2.Published.WithLabelValues("member_updated")); v != 0 {
		t.Errorf("standby published %v events, want 0", v)
	}

	start := time.Now()
	stop1()
	waitGauge(t, m2.Leader, 1, 5*time.Second)
	t.Logf("failover took %s", time.Since(start))
	want = append(want, insert(t, b.pool, org, 10)...)
	waitStream(t, b.js, 20, 5*time.Second)
	checkStream(t, b, want)
}

func waitGauge(t testing.TB, g prometheus.Gauge, want float64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for testutil.ToFloat64(g) != want {
		if time.Now().After(deadline) {
			t.Fatalf("gauge is %v after %s, want %v", testutil.ToFloat64(g), timeout, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
