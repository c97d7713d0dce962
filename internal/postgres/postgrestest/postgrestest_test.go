package postgrestest_test

import (
	"context"
	"testing"

	"github.com/orgs-dev/orgs/internal/postgres/postgrestest"
)

func TestNew(t *testing.T) {
	t.Parallel()
	pool := postgrestest.New(t)
	var n int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM organizations").Scan(&n); err != nil {
		t.Fatalf("query migrated table: %v", err)
	}
	if n != 0 {
		t.Fatalf("got %d organizations in a fresh schema, want 0", n)
	}
	var riverTable bool
	if err := pool.QueryRow(context.Background(), "SELECT to_regclass('river_job') IS NOT NULL").Scan(&riverTable); err != nil || !riverTable {
		t.Fatalf("river_job missing (err %v)", err)
	}
}
