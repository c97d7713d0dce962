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

func TestDBMetricsCountRoundTripsAndTimeTheOrganizationLock(t *testing.T) {
	t.Parallel()
	_, url := postgrestest.NewWithURL(t)
	reg := prometheus.NewRegistry()
	m := postgres.NewDBMetrics(reg)
	ctx := context.Background()
	pool, err := postgres.Open(ctx, url, 4, m)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	store := postgres.NewStore(pool, postgres.StoreConfig{})
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
	// An invitation: begin, the lock batched with the insert, the outbox and the job, commit.
	if _, err := store.AddMember(ctx, actor, org.ID, postgres.AddMemberInput{Email: "new@example.com", SendEmail: true}); err != nil {
		t.Fatal(err)
	}
	gotTrips := testutil.ToFloat64(m.RoundTrips()) - trips
	gotStmts := testutil.ToFloat64(m.Statements()) - stmts
	t.Logf("an invitation: %v round trips, %v statements", gotTrips, gotStmts)
	// begin; the lock batched with the user and membership; the invitation batched with
	// the outbox rows; the jobs; commit.
	if gotTrips != 5 || gotStmts <= gotTrips {
		t.Errorf("an invitation took %v round trips and %v statements: want 5 round trips (begin, lock+member, invitation+outbox, jobs, commit) of more statements", gotTrips, gotStmts)
	}
	held, _ := histogram(t, reg, "orgs_db_org_lock_held_seconds")
	if held != held0+1 {
		t.Errorf("lock held observations: got %d, want %d (one per locking transaction)", held, held0+1)
	}

	// A second writer waits while the first holds the lock for 100 ms: the wait and the
	// hold are both seen.
	wait0, waitSum0 := histogram(t, reg, "orgs_db_org_lock_wait_seconds")
	_, heldSum0 := histogram(t, reg, "orgs_db_org_lock_held_seconds")
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `/* orgs:org-lock */ SELECT 1 FROM organizations WHERE id = $1 FOR NO KEY UPDATE`, org.ID); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := store.AddMember(ctx, actor, org.ID, postgres.AddMemberInput{Email: "second@example.com"})
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	wait, waitSum := histogram(t, reg, "orgs_db_org_lock_wait_seconds")
	if wait != wait0+2 || waitSum-waitSum0 < 0.09 {
		t.Errorf("lock waits: %d more observations summing to %.3fs, want 2 with the second writer's wait of about 0.1s", wait-wait0, waitSum-waitSum0)
	}
	_, heldSum := histogram(t, reg, "orgs_db_org_lock_held_seconds")
	if heldSum-heldSum0 < 0.09 {
		t.Errorf("lock held %.3fs in all, want at least the first transaction's 0.1s", heldSum-heldSum0)
	}

	// A failed transaction releases too: no connection stays counted as holding.
	if _, err := store.AddMember(ctx, actor, org.ID, postgres.AddMemberInput{Email: "second@example.com"}); err == nil {
		t.Fatal("adding a member twice: no error")
	}
	if n := m.Holding(); n != 0 {
		t.Errorf("%d connections still counted as holding a lock", n)
	}
}
