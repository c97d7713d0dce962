// Package postgres is orgs' storage on PostgreSQL through pgx/v5: the connection pool,
// migrations (goose for orgs' schema, rivermigrate for River's), and the Store whose
// methods each own one transaction that makes a change, writes its outbox events and
// inserts its email jobs. It translates pgx and Postgres errors into domain errors.
package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/orgs-dev/orgs/migrations"
)

// Open connects a pool to databaseURL and checks that the server answers. metrics, if not
// nil, traces every connection of the pool.
func Open(ctx context.Context, databaseURL string, maxConns int, metrics *DBMetrics) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	if metrics != nil {
		cfg.ConnConfig.Tracer = metrics
	}
	return OpenConfig(ctx, cfg, maxConns)
}

// OpenConfig is Open for a parsed configuration (tests set search_path on it).
func OpenConfig(ctx context.Context, cfg *pgxpool.Config, maxConns int) (*pgxpool.Pool, error) {
	if maxConns > 0 {
		cfg.MaxConns = int32(maxConns)
	}
	cfg.MaxConnIdleTime = 5 * time.Minute
	cfg.HealthCheckPeriod = 30 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("ping database: %w", err)
	}
	return pool, nil
}

// migrateLockKey is the advisory lock that serializes migrations of one schema, so that
// several replicas starting together migrate once.
const migrateLockKey = "orgs_migrate"

// Migrate applies orgs' goose migrations and River's migrations to the pool's current
// schema, holding a session advisory lock on a dedicated connection for the duration.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate: acquire: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(hashtext($1 || current_schema()))", migrateLockKey); err != nil {
		return fmt.Errorf("migrate: lock: %w", err)
	}
	defer func() {
		// The lock is released with the session otherwise; unlock so the pooled
		// connection can be reused.
		_, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(hashtext($1 || current_schema()))", migrateLockKey)
	}()

	migrator, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		return fmt.Errorf("migrate river: %w", err)
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("migrate river: %w", err)
	}

	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	provider, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if _, err := provider.Up(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}
