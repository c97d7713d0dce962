package events_test

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
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
	// As long as the issue asks for: the relay's retries back off to their 5s maximum.
	time.Sleep(10 * time.Second)
	b.nats.Start()
	start := time.Now()
	waitStream(t, b.js, 2000, 30*time.Second)
	t.Logf("caught up to 2000 events %s after NATS restarted", time.Since(start))
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

func TestRelaySurvivesPostgresRestart(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()

	// The relay and the writers connect with an application_name of their own, so that
	// the test can kill exactly their connections, as a Postgres restart would (other
	// tests share the server).
	var rnd [6]byte
	_, _ = crand.Read(rnd[:])
	appName := "orgs_events_test_" + hex.EncodeToString(rnd[:])
	cfg := b.pool.Config()
	cfg.ConnConfig.RuntimeParams["application_name"] = appName
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	kill := func() int {
		t.Helper()
		var n int
		err := b.pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			WHERE datname = current_database() AND application_name = $1) k`, appName).Scan(&n)
		if err != nil {
			t.Fatalf("terminate backends: %v", err)
		}
		return n
	}

	rb := *b
	rb.pool = pool
	r, _, _ := startRelay(t, &rb, events.RelayConfig{BatchSize: 100})

	// Writers, one per organization, keep committing throughout; a failed insert is
	// retried (its row may or may not have committed: the outbox is the truth).
	wctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	var wg sync.WaitGroup
	var committed atomic.Int64
	for range 3 {
		org := newOrg()
		wg.Go(func() {
			for wctx.Err() == nil {
				ids, err := tryInsert(pool, org, 10)
				committed.Add(int64(len(ids)))
				if err == nil {
					r.Notify()
				}
				time.Sleep(2 * time.Millisecond)
			}
		})
	}
	waitStream(t, b.js, 100, 10*time.Second)
	for range 4 {
		before := committed.Load()
		n := kill()
		t.Logf("terminated %d backends", n)
		// Let the writers commit more before the next kill.
		for deadline := time.Now().Add(5 * time.Second); committed.Load() < before+200; {
			if time.Now().After(deadline) {
				t.Fatalf("writers committed %d events in 5s after a kill, want 200", committed.Load()-before)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	cancel()
	wg.Wait()

	waitUnpublished(t, b.pool, 20*time.Second)
	rows, err := b.pool.Query(ctx, "SELECT id::text, organization_id::text FROM outbox ORDER BY seq")
	if err != nil {
		t.Fatal(err)
	}
	type outboxRow struct{ ID, Org string }
	want, err := pgx.CollectRows(rows, pgx.RowToStructByPos[outboxRow])
	if err != nil {
		t.Fatal(err)
	}
	var wantIDs []string
	for _, x := range want {
		wantIDs = append(wantIDs, x.ID)
	}
	waitStream(t, b.js, uint64(len(want)), 10*time.Second)
	checkStreamByID(t, b, wantIDs)

	// Per organization, the stream (and seq) order is the order the writer committed.
	rows, err = b.pool.Query(ctx, "SELECT id::text, organization_id::text FROM outbox ORDER BY organization_id, pos")
	if err != nil {
		t.Fatal(err)
	}
	byPos, err := pgx.CollectRows(rows, pgx.RowToStructByPos[outboxRow])
	if err != nil {
		t.Fatal(err)
	}
	perOrg := func(xs []outboxRow) map[string][]string {
		m := make(map[string][]string)
		for _, x := range xs {
			m[x.Org] = append(m[x.Org], x.ID)
		}
		return m
	}
	if diff := cmp.Diff(perOrg(byPos), perOrg(want)); diff != "" {
		t.Errorf("per-organization order on the stream differs from commit order (-commit +stream):\n%s", diff)
	}
	t.Logf("%d events, %d committed without error", len(want), committed.Load())
}

// checkStreamByID checks that the stream, read back whole, holds wantIDs (the outbox
// in seq order) in this order, allowing only a repeated event (same id, same seq) as a
// duplicate: at least once, never reordered, nothing lost.
func checkStreamByID(t testing.TB, b *testBundle, wantIDs []string) {
	t.Helper()
	var got []string
	seqOf := make(map[string]int64)
	dups := 0
	var prev int64
	for i, e := range readStream(t, b.js) {
		if e.msgID != e.ev.ID || e.hdrSeq != e.ev.Seq {
			t.Errorf("stream[%d]: headers Nats-Msg-Id %s Orgs-Seq %d, want %s %d", i, e.msgID, e.hdrSeq, e.ev.ID, e.ev.Seq)
		}
		if s, ok := seqOf[e.ev.ID]; ok {
			if s != e.ev.Seq {
				t.Errorf("stream[%d]: event %s again with seq %d, first %d", i, e.ev.ID, e.ev.Seq, s)
			}
			dups++
			continue
		}
		if e.ev.Seq <= prev {
			t.Fatalf("stream[%d]: seq %d after %d", i, e.ev.Seq, prev)
		}
		prev = e.ev.Seq
		seqOf[e.ev.ID] = e.ev.Seq
		got = append(got, e.ev.ID)
	}
	if diff := cmp.Diff(wantIDs, got); diff != "" {
		t.Fatalf("stream differs from the outbox (-outbox +stream):\n%s", diff)
	}
	if dups > 0 {
		t.Logf("%d duplicates (by id) on the stream", dups)
	}
}

// TestRelayGaugesMoveWhileNATSIsDown: the backlog gauges are sampled on their own clock,
// so an alert sees the outbox grow while every publish fails (before, they were sampled
// only after a pass that succeeded, and stood still for the whole outage).
func TestRelayGaugesMoveWhileNATSIsDown(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, m, _ := startRelay(t, b, events.RelayConfig{BatchSize: 100, AckTimeout: time.Second})
	org := newOrg()
	insert(t, b.pool, org, 1)
	waitStream(t, b.js, 1, 10*time.Second) // the stream is there and settled
	waitGauge(t, m.OutboxPending, 0, 3*sampleEvery)
	b.nats.Shutdown()
	insert(t, b.pool, org, 25)
	waitGauge(t, m.OutboxPending, 25, 3*sampleEvery)
	if age := testutil.ToFloat64(m.OldestUnpublishedAge); age <= 0 {
		t.Errorf("oldest unpublished age: got %v, want > 0", age)
	}
	b.nats.Start()
	waitGauge(t, m.OutboxPending, 0, 30*time.Second)
}

// sampleEvery is the relay's gauge sampling interval (events.sampleInterval).
const sampleEvery = 2 * time.Second

// TestRelayTwoLeadersLeaveNoGap: an old leader that lost its lock connection publishes
// for a moment beside the new one. Each may have sequenced rows the other has not seen;
// the stream must still hold every event, in seq order, none missing (before, a row of
// one could follow a gap that the other's messages filled by number, and reconcile then
// marked the rows of the gap published).
func TestRelayTwoLeadersLeaveNoGap(t *testing.T) {
	t.Parallel()
	b := setup(t)
	cfg := events.RelayConfig{BatchSize: 7, AckTimeout: 2 * time.Second, PollInterval: time.Millisecond}
	r1, _, _ := startRelay(t, b, cfg)
	r2, _, _ := startRelay(t, b, events.WithLockName(cfg, "the other leader"))
	org := newOrg()
	var want []string
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		want = append(want, insert(t, b.pool, org, 3)...)
		r1.Notify()
		r2.Notify()
	}
	waitUnpublished(t, b.pool, 30*time.Second)
	checkStreamByID(t, b, want)
}

// Another process's commit wakes the leader through NATS: its events go out at once, not
// after the leader's next poll (a minute here).
func TestRelayIsWokenByOtherProcessesOverNATS(t *testing.T) {
	t.Parallel()
	b := setup(t)
	cfg := events.RelayConfig{PollInterval: time.Minute}
	_, m1, _ := startRelay(t, b, cfg)
	waitGauge(t, m1.Leader, 1, 5*time.Second)
	standby, m2, _ := startRelay(t, b, cfg)
	nc, _ := eventstest.Connect(t, b.nats.URL())
	org := newOrg()
	var want []string
	for i, wake := range []func(){standby.Notify, events.WakeRelay(nc)} {
		// Idle for a while, the leader polls seconds apart.
		time.Sleep(6 * time.Second)
		want = append(want, insert(t, b.pool, org, 1)...)
		start := time.Now()
		wake()
		waitStream(t, b.js, uint64(len(want)), 5*time.Second)
		if d := time.Since(start); d > 500*time.Millisecond {
			t.Errorf("wake %d: the event reached the stream %s after the commit, want within 500ms", i+1, d)
		}
	}
	if v := testutil.ToFloat64(m2.Leader); v != 0 {
		t.Fatalf("the standby leads")
	}
	checkStream(t, b, want)
}
