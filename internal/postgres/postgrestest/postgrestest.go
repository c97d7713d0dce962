// Package postgrestest gives each test its own freshly migrated Postgres schema on the
// server named by TEST_DATABASE_URL (make test starts one), dropped when the test ends.
package postgrestest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/orgs-dev/orgs/internal/postgres"
)

// DefaultURL is the throwaway cluster that scripts/pg.sh starts.
const DefaultURL = "postgres://orgs@127.0.0.1:54329/orgs?sslmode=disable"

// URL returns TEST_DATABASE_URL, or DefaultURL.
func URL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// New creates a schema, migrates it, and returns a pool whose connections use it. The
// schema is dropped in t.Cleanup.
func New(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	pool, _ := NewWithURL(tb)
	return pool
}

// NewWithURL is New that also returns a connection string for the same schema, for code
// that opens its own pool (a process's run function).
func NewWithURL(tb testing.TB) (*pgxpool.Pool, string) {
	tb.Helper()
	ctx := context.Background()
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "test_" + hex.EncodeToString(b[:])

	admin, err := pgx.Connect(ctx, URL())
	if err != nil {
		tb.Fatalf("postgrestest: connect to %s (is make test's database running?): %v", URL(), err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		tb.Fatalf("postgrestest: create schema: %v", err)
	}
	tb.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), URL())
		if err != nil {
			tb.Errorf("postgrestest: connect for cleanup: %v", err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			tb.Errorf("postgrestest: drop schema: %v", err)
		}
	})

	cfg, err := pgxpool.ParseConfig(URL())
	if err != nil {
		tb.Fatalf("postgrestest: %v", err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	pool, err := postgres.OpenConfig(ctx, cfg, 10)
	if err != nil {
		tb.Fatalf("postgrestest: %v", err)
	}
	tb.Cleanup(pool.Close)
	if err := postgres.Migrate(ctx, pool); err != nil {
		tb.Fatalf("postgrestest: %v", err)
	}
	return pool, SchemaURL(URL(), schema)
}

// SchemaURL adds search_path=schema to a connection URL.
func SchemaURL(url, schema string) string {
	sep := "?"
	for _, c := range url {
		if c == '?' {
			sep = "&"
		}
	}
	return url + sep + "search_path=" + schema
}
