package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/orgs-dev/orgs/internal/domain"
	"github.com/orgs-dev/orgs/internal/postgres"
	"github.com/orgs-dev/orgs/internal/postgres/postgrestest"
)

// histogram returns the sample count and sum of the histogram name in reg.
func histogram(t *testing.T, reg *prometheus.Registry, name string) (uint64, float64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			var h *dto.Histogram = mf.GetMetric()[0].GetHistogram()
			return h.GetSampleCount(), h.GetSampleSum()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0, 0
}

// traced opens a pool of maxConns connections on url, traced by fresh DBMetrics.
func traced(t *testing.T, url string, maxConns int) (*postgres.Store, *postgres.DBMetrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := postgres.NewDBMetrics(reg)
	pool, err := postgres.Open(context.Background(), url, maxConns, m)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return postgres.NewStore(pool, postgres.StoreConfig{}), m, reg
}

func TestDBMetricsCountRoundTripsAndTimeTheOrganizationLock(t *testing.T) {
	t.Parallel()
	_, url := postgrestest.NewWithURL(t)
	ctx := context.Background()
	// One connection, so that the measured invitation finds its statements prepared.
	store, m, reg := traced(t, url, 1)
	b := &testBundle{store: store, ctx: ctx}
	owner := b.activeUser(t, "owner@example.com")
	actor := domain.Actor{UserID: owner.ID}
	org, err := store.CreateOrganization(ctx, actor, postgres.CreateOrganizationInput{Name: "Traced"})
	if err != nil {
		t.Fatal(err)
	}

	// The first invitation prepares its statements on the connection; the second one's
	// round trips are the steady state.
	if _, err := store.AddMember(ctx, actor, org.ID, postgres.AddMemberInput{Email: "warm@example.com", SendEmail: true}); err != nil {
		t.Fatal(err)
	}
	trips := testutil.ToFloat64(m.RoundTrips())
	stmts := testutil.ToFloat64(m.Statements())
	held0, _ := histogram(t, reg, "orgs_db_org_lock_held_seconds")
	if _, err := store.AddMember(ctx, actor, org.ID, postgres.AddMemberInput{Email: "new@example.com", SendEmail: true}); err != nil {
		t.Fatal(err)
	}
	gotTrips := testutil.ToFloat64(m.RoundTrips()) - trips
	gotStmts := testutil.ToFloat64(m.Statements()) - stmts
	// begin; the lock batched with the user and membership; the invitation batched with
	// the outbox rows; the jobs; commit.
	if gotTrips != 5 || gotStmts <= gotTrips {
		t.Errorf("an invitation took %v round trips and %v statements: want 5 round trips (begin, lock+member, invitation+outbox, jobs, commit) of more statements", gotTrips, gotStmts)
	}
	held, _ := histogram(t, reg, "orgs_db_org_lock_held_seconds")
	if held != held0+1 {
		t.Errorf("lock held observations: got %d, want %d (one per locking transaction)", held, held0+1)
	}

	// A second writer waits while the first holds the lock: the wait and the hold are
	// both seen.
	store, m, reg = traced(t, url, 4)
	pool := store.Pool()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `/* orgs:org-lock */ SELECT 1 FROM organizations WHERE id = $1 FOR NO KEY UPDATE`, org.ID); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		_, err := store.AddMember(ctx, actor, org.ID, postgres.AddMemberInput{Email: "second@example.com"})
		done <- err
	}()
	// Until the second writer waits for the lock, then 100 ms more.
	for {
		var waiting bool
		if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%orgs:org-lock%')`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatal("the second writer never waited for the lock")
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	wait, waitSum := histogram(t, reg, "orgs_db_org_lock_wait_seconds")
	if wait != 2 || waitSum < 0.1 {
		t.Errorf("lock waits: %d observations summing to %.3fs, want 2 with the second writer's wait of at least 0.1s", wait, waitSum)
	}
	heldN, heldSum := histogram(t, reg, "orgs_db_org_lock_held_seconds")
	if heldN != 2 || heldSum < 0.1 {
		t.Errorf("lock held: %d observations, %.3fs in all; want 2, with the first transaction's 0.1s at least", heldN, heldSum)
	}

	// A failed transaction releases too: no connection stays counted as holding.
	if _, err := store.AddMember(ctx, actor, org.ID, postgres.AddMemberInput{Email: "second@example.com"}); err == nil {
		t.Fatal("adding a member twice: no error")
	}
	if n := m.Holding(); n != 0 {
		t.Errorf("%d connections still counted as holding a lock", n)
	}
}
