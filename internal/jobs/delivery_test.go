package jobs_test

import (
	"context"
	"sync"
	"testing"

	"github.com/orgs-dev/orgs/internal/jobs"
	"github.com/orgs-dev/orgs/internal/postgres/postgrestest"
)

// Concurrent workers' deliveries are each committed by the time record returns, however
// they were batched, and a job recorded twice (a retry) is recorded once.
func TestDeliveriesAreCommittedWhenRecordReturns(t *testing.T) {
	t.Parallel()
	pool := postgrestest.New(t)
	record := jobs.RecordDelivery(pool)
	ctx := context.Background()
	const n = 300
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := record(ctx, int64(i+1), "invitation", ""); err != nil {
				errs <- err
				return
			}
			var found bool
			if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM mail_deliveries WHERE job_id = $1)`, i+1).Scan(&found); err != nil || !found {
				t.Errorf("job %d: recorded, but not in mail_deliveries (%v)", i+1, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := record(ctx, 1, "invitation", ""); err != nil {
		t.Fatalf("recording a delivery again: %v", err)
	}
	var count int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM mail_deliveries`).Scan(&count); err != nil || count != n {
		t.Fatalf("mail_deliveries holds %d rows (%v), want %d", count, err, n)
	}
}
