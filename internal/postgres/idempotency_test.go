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
)

func hash(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// keyed returns ctx with an armed Idempotency for key and body.
func keyed(ctx context.Context, key, body string) (context.Context, *postgres.Idempotency) {
	k := &postgres.Idempotency{Scope: hash("Bearer x\n\nPOST\n/v1/organizations"), Key: key, RequestHash: hash(body)}
	k.Arm()
	return postgres.WithIdempotency(ctx, k), k
}

func (b *testBundle) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := b.store.Pool().QueryRow(b.ctx, sql, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestIdempotentWriteParksAndCommitsWithItsResponse(t *testing.T) {
	t.Parallel()
	b := setup(t)
	owner := b.activeUser(t, "owner@example.com")
	actor := domain.Actor{UserID: owner.ID}

	ctx, k := keyed(b.ctx, "k1", "a")
	org, err := b.store.CreateOrganization(ctx, actor, postgres.CreateOrganizationInput{Name: "Parked"})
	if err != nil {
		t.Fatal(err)
	}
	if !k.Parked() {
		t.Fatal("the write did not park")
	}
	// Parked: neither the organization nor the key is visible to others yet.
	if n := b.count(t, `SELECT count(*) FROM organizations WHERE id = $1`, org.ID); n != 0 {
		t.Errorf("organization visible before commit: %d rows", n)
	}
	if n := b.count(t, `SELECT count(*) FROM idempotency_keys`); n != 0 {
		t.Errorf("key visible before commit: %d rows", n)
	}
	if err := k.Commit(b.ctx, 201, "application/json", []byte(`{"id":"x"}`)); err != nil {
		t.Fatal(err)
	}
	if n := b.count(t, `SELECT count(*) FROM organizations WHERE id = $1`, org.ID); n != 1 {
		t.Errorf("organization after commit: %d rows, want 1", n)
	}
	if got := b.outboxTypes(t, org.ID); len(got) != 2 {
		t.Errorf("outbox after commit: %v, want org_created and member_added", got)
	}
	stored, err := b.store.FindIdempotentResponse(b.ctx, k)
	if err != nil || stored == nil || stored.Status != 201 || stored.ContentType != "application/json" || string(stored.Body) != `{"id":"x"}` || !stored.SameRequest(k) {
		t.Fatalf("stored response: got %+v, %v", stored, err)
	}

	// A retry's write finds the key taken and changes nothing.
	ctx2, k2 := keyed(b.ctx, "k1", "a")
	_, err = b.store.CreateOrganization(ctx2, actor, postgres.CreateOrganizationInput{Name: "Parked"})
	if !errors.Is(err, domain.ErrIdempotencyKeyUsed) || !k2.Replay() || k2.Parked() {
		t.Errorf("retry: got %v replay=%v parked=%v, want ErrIdempotencyKeyUsed and a replay", err, k2.Replay(), k2.Parked())
	}
	if n := b.count(t, `SELECT count(*) FROM organizations WHERE name = 'Parked'`); n != 1 {
		t.Errorf("organizations after the retry: %d, want 1", n)
	}
}

func TestIdempotentWriteRolledBackLeavesNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	owner := b.activeUser(t, "owner@example.com")
	actor := domain.Actor{UserID: owner.ID}

	ctx, k := keyed(b.ctx, "k1", "a")
	if _, err := b.store.CreateOrganization(ctx, actor, postgres.CreateOrganizationInput{Name: "Gone"}); err != nil {
		t.Fatal(err)
	}
	k.Rollback(b.ctx) // the process died, or the response was a 5xx
	if n := b.count(t, `SELECT count(*) FROM organizations WHERE name = 'Gone'`) + b.count(t, `SELECT count(*) FROM idempotency_keys`); n != 0 {
		t.Fatalf("rows after rollback: %d, want 0", n)
	}
	// The retry does the work, once.
	ctx2, k2 := keyed(b.ctx, "k1", "a")
	if _, err := b.store.CreateOrganization(ctx2, actor, postgres.CreateOrganizationInput{Name: "Gone"}); err != nil || !k2.Parked() {
		t.Fatalf("retry: %v parked=%v", err, k2.Parked())
	}
	if err := k2.Commit(b.ctx, 201, "application/json", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if n := b.count(t, `SELECT count(*) FROM organizations WHERE name = 'Gone'`); n != 1 {
		t.Errorf("organizations: %d, want 1", n)
	}
}

func TestIdempotentWriteFailureKeepsNoKey(t *testing.T) {
	t.Parallel()
	b := setup(t)
	owner := b.activeUser(t, "owner@example.com")
	actor := domain.Actor{UserID: owner.ID}
	slug := "taken"
	if _, err := b.store.CreateOrganization(b.ctx, actor, postgres.CreateOrganizationInput{Name: "First", Slug: &slug}); err != nil {
		t.Fatal(err)
	}
	ctx, k := keyed(b.ctx, "k1", "a")
	_, err := b.store.CreateOrganization(ctx, actor, postgres.CreateOrganizationInput{Name: "Second", Slug: &slug})
	if !errors.Is(err, domain.ErrSlugTaken) || k.Parked() || k.Replay() {
		t.Fatalf("got %v parked=%v replay=%v, want ErrSlugTaken and nothing parked", err, k.Parked(), k.Replay())
	}
	if n := b.count(t, `SELECT count(*) FROM idempotency_keys`); n != 0 {
		t.Errorf("keys after a refused write: %d, want 0 (the HTTP layer keeps the refusal)", n)
	}
}

func TestIdempotentWriteUnarmedCommitsAtOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	owner := b.activeUser(t, "owner@example.com")
	k := &postgres.Idempotency{Scope: hash("s"), Key: "k", RequestHash: hash("a")} // never armed: no endpoint
	ctx := postgres.WithIdempotency(b.ctx, k)
	if _, err := b.store.CreateOrganization(ctx, domain.Actor{UserID: owner.ID}, postgres.CreateOrganizationInput{Name: "Plain"}); err != nil {
		t.Fatal(err)
	}
	if k.Parked() || b.count(t, `SELECT count(*) FROM organizations WHERE name = 'Plain'`) != 1 || b.count(t, `SELECT count(*) FROM idempotency_keys`) != 0 {
		t.Errorf("an unarmed key: parked=%v; want a plain commit and no key", k.Parked())
	}
}

func TestIdempotentWriteWaitsForTheFirst(t *testing.T) {
	t.Parallel()
	b := setup(t)
	owner := b.activeUser(t, "owner@example.com")
	actor := domain.Actor{UserID: owner.ID}

	// Two organizations, so that the second request does not queue on the first's lock
	// but on its uncommitted key.
	ctx, k := keyed(b.ctx, "same", "a")
	if _, err := b.store.CreateOrganization(ctx, actor, postgres.CreateOrganizationInput{Name: "One"}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	ctx2, k2 := keyed(b.ctx, "same", "a")
	go func() {
		_, err := b.store.CreateOrganization(ctx2, actor, postgres.CreateOrganizationInput{Name: "Two"})
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("the second write finished while the first was parked: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	if err := k.Commit(b.ctx, 201, "application/json", []byte(`{"name":"One"}`)); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, domain.ErrIdempotencyKeyUsed) || !k2.Replay() {
		t.Fatalf("second: got %v, want ErrIdempotencyKeyUsed", err)
	}
	if n := b.count(t, `SELECT count(*) FROM organizations WHERE name IN ('One', 'Two')`); n != 1 {
		t.Errorf("organizations: %d, want 1", n)
	}
}

func TestSaveIdempotentResponse(t *testing.T) {
	t.Parallel()
	b := setup(t)
	k := &postgres.Idempotency{Scope: hash("s"), Key: "k", RequestHash: hash("a")}
	if stored, err := b.store.SaveIdempotentResponse(b.ctx, k, 422, "application/problem+json", []byte(`{"code":"validation_failed"}`)); err != nil || stored != nil {
		t.Fatalf("first save: got %+v, %v, want it kept", stored, err)
	}
	// A later answer with the same key gets the first one back.
	stored, err := b.store.SaveIdempotentResponse(b.ctx, k, 404, "application/problem+json", []byte(`{}`))
	if err != nil || stored == nil || stored.Status != 422 || !stored.SameRequest(k) {
		t.Fatalf("second save: got %+v, %v, want the first (422)", stored, err)
	}
	other := &postgres.Idempotency{Scope: k.Scope, Key: k.Key, RequestHash: hash("b")}
	if stored, _ := b.store.FindIdempotentResponse(b.ctx, other); stored == nil || stored.SameRequest(other) {
		t.Errorf("another body: got %+v, want the stored response of another request", stored)
	}
	if stored, err := b.store.FindIdempotentResponse(b.ctx, &postgres.Idempotency{Scope: hash("other"), Key: "k"}); err != nil || stored != nil {
		t.Errorf("another scope: got %+v, %v, want none", stored, err)
	}
}

func TestIdempotentConcurrentSaves(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var wg sync.WaitGroup
	kept := make([]bool, 8)
	for i := range kept {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := &postgres.Idempotency{Scope: hash("s"), Key: "k", RequestHash: hash("a")}
			stored, err := b.store.SaveIdempotentResponse(b.ctx, k, 400+i, "", nil)
			if err != nil {
				t.Error(err)
			}
			kept[i] = stored == nil
		}()
	}
	wg.Wait()
	n := 0
	for _, ok := range kept {
		if ok {
			n++
		}
	}
	if n != 1 {
		t.Errorf("responses kept: %d, want exactly 1", n)
	}
}

func TestPruneIdempotencyKeys(t *testing.T) {
	t.Parallel()
	b := setup(t)
	pool := b.store.Pool()
	for _, key := range []string{"old", "day-old", "new"} {
		if _, err := b.store.SaveIdempotentResponse(b.ctx, &postgres.Idempotency{Scope: hash("scope"), Key: key, RequestHash: hash(key)}, 200, "", nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pool.Exec(b.ctx, `UPDATE idempotency_keys SET created_at = now() - interval '3 days' WHERE key = 'old'`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(b.ctx, `UPDATE idempotency_keys SET created_at = now() - interval '23 hours' WHERE key = 'day-old'`); err != nil {
		t.Fatal(err)
	}
	// Asking for less than a day still keeps a day.
	n, err := b.store.PruneIdempotencyKeys(b.ctx, time.Hour)
	if err != nil || n != 1 {
		t.Errorf("prune: got %d, %v, want 1 key deleted", n, err)
	}
	if left := b.count(t, `SELECT count(*) FROM idempotency_keys`); left != 2 {
		t.Errorf("got %d keys left, want 2", left)
	}
}
