package postgres_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/orgs-dev/orgs/internal/domain"
	"github.com/orgs-dev/orgs/internal/postgres"
	"github.com/orgs-dev/orgs/internal/postgres/postgrestest"
)

func hash(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

func TestIdempotencyKeyLifecycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := postgrestest.New(t)
	s := postgres.NewStore(pool, postgres.StoreConfig{})
	scope := hash("Bearer x\n\nPOST\n/v1/things")

	claim := func(key, body string) (int, string, []byte, error) {
		t.Helper()
		return s.ClaimIdempotencyKey(ctx, scope, key, hash(body))
	}
	if status, _, _, err := claim("k", "a"); err != nil || status != 0 {
		t.Fatalf("first claim: got %d, %v, want 0 (claimed)", status, err)
	}
	if _, _, _, err := claim("k", "a"); !errors.Is(err, domain.ErrIdempotencyInFlight) {
		t.Errorf("claim while in progress: got %v, want ErrIdempotencyInFlight", err)
	}
	if _, _, _, err := claim("k", "b"); !errors.Is(err, domain.ErrIdempotencyConflict) {
		t.Errorf("claim with another body while in progress: got %v, want ErrIdempotencyConflict", err)
	}
	if err := s.CompleteIdempotencyKey(ctx, scope, "k", 201, "application/json", []byte(`{"id":1}`)); err != nil {
		t.Fatal(err)
	}
	status, ct, body, err := claim("k", "a")
	if err != nil || status != 201 || ct != "application/json" || string(body) != `{"id":1}` {
		t.Errorf("replay: got %d %q %s %v, want 201 application/json {\"id\":1}", status, ct, body, err)
	}
	if _, _, _, err := claim("k", "b"); !errors.Is(err, domain.ErrIdempotencyConflict) {
		t.Errorf("claim with another body: got %v, want ErrIdempotencyConflict", err)
	}
	if status, _, _, err := s.ClaimIdempotencyKey(ctx, hash("other scope"), "k", hash("b")); err != nil || status != 0 {
		t.Errorf("same key in another scope: got %d %v, want a claim", status, err)
	}

	// Released keys can be claimed again; completed ones are not released.
	if status, _, _, err := claim("r", "a"); err != nil || status != 0 {
		t.Fatalf("claim r: %d %v", status, err)
	}
	if err := s.ReleaseIdempotencyKey(ctx, scope, "r"); err != nil {
		t.Fatal(err)
	}
	if status, _, _, err := claim("r", "b"); err != nil || status != 0 {
		t.Errorf("claim after release: got %d %v, want a claim", status, err)
	}
	if err := s.ReleaseIdempotencyKey(ctx, scope, "k"); err != nil {
		t.Fatal(err)
	}
	if status, _, _, _ := claim("k", "a"); status != 201 {
		t.Errorf("release of a completed key: got status %d, want the replay kept", status)
	}
}

func TestIdempotencyKeyTakeover(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := postgrestest.New(t)
	s := postgres.NewStore(pool, postgres.StoreConfig{})
	scope := hash("scope")
	if _, _, _, err := s.ClaimIdempotencyKey(ctx, scope, "k", hash("a")); err != nil {
		t.Fatal(err)
	}
	// The first request's process died a while ago.
	if _, err := pool.Exec(ctx, `UPDATE idempotency_keys SET created_at = now() - interval '61 seconds'`); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	results := make([]error, 4)
	claimed := make([]bool, 4)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, _, _, err := s.ClaimIdempotencyKey(ctx, scope, "k", hash("a"))
			results[i], claimed[i] = err, err == nil && status == 0
		}()
	}
	wg.Wait()
	n := 0
	for i, err := range results {
		switch {
		case claimed[i]:
			n++
		case !errors.Is(err, domain.ErrIdempotencyInFlight):
			t.Errorf("retry %d: got %v, want a takeover or ErrIdempotencyInFlight", i, err)
		}
	}
	if n != 1 {
		t.Errorf("got %d takeovers, want exactly 1", n)
	}
}

func TestPruneIdempotencyKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := postgrestest.New(t)
	s := postgres.NewStore(pool, postgres.StoreConfig{})
	for _, key := range []string{"old", "day-old", "new"} {
		if _, _, _, err := s.ClaimIdempotencyKey(ctx, hash("scope"), key, hash(key)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, `UPDATE idempotency_keys SET created_at = now() - interval '3 days' WHERE key = 'old'`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE idempotency_keys SET created_at = now() - interval '23 hours' WHERE key = 'day-old'`); err != nil {
		t.Fatal(err)
	}
	// Asking for less than a day still keeps a day.
	n, err := s.PruneIdempotencyKeys(ctx, time.Hour)
	if err != nil || n != 1 {
		t.Errorf("prune: got %d, %v, want 1 key deleted", n, err)
	}
	var left int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM idempotency_keys`).Scan(&left); err != nil || left != 2 {
		t.Errorf("got %d keys left (%v), want 2", left, err)
	}
}
