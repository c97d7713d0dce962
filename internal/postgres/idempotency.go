package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orgs-dev/orgs/internal/domain"
)

// IdempotencyTakeover is how long a claimed key may stay in progress before a retry may
// take it over: the first request's process is then presumed dead.
const IdempotencyTakeover = 60 * time.Second

// ClaimIdempotencyKey claims key in scope for a request whose body hashes to
// requestHash. It returns status 0 when the caller now owns the key and must do the work,
// then call CompleteIdempotencyKey or ReleaseIdempotencyKey. When a request with the same
// hash completed before, it returns that response (status, content type, body) to replay.
// A key claimed more than IdempotencyTakeover ago and never completed is taken over.
//
// Returns domain.ErrIdempotencyConflict when the key was used with another request hash,
// and domain.ErrIdempotencyInFlight when the same request is still in progress.
func (s *Store) ClaimIdempotencyKey(ctx context.Context, scope []byte, key string, requestHash []byte) (status int, contentType string, body []byte, err error) {
	// A few rounds cover a row deleted (released or pruned) between our INSERT and SELECT.
	for range 3 {
		var claimed bool
		err := s.pool.QueryRow(ctx, `
			INSERT INTO idempotency_keys (scope, key, request_hash) VALUES ($1, $2, $3)
			ON CONFLICT (scope, key) DO NOTHING
			RETURNING true`, scope, key, requestHash).Scan(&claimed)
		if err == nil {
			return 0, "", nil, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return 0, "", nil, fmt.Errorf("claim idempotency key: %w", err)
		}

		var (
			hash  []byte
			stale bool
		)
		err = s.pool.QueryRow(ctx, `
			SELECT request_hash, status, content_type, coalesce(body, ''::bytea),
				created_at < now() - make_interval(secs => $3)
			FROM idempotency_keys WHERE scope = $1 AND key = $2`,
			scope, key, IdempotencyTakeover.Seconds()).Scan(&hash, &status, &contentType, &body, &stale)
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return 0, "", nil, fmt.Errorf("read idempotency key: %w", err)
		}
		if !bytes.Equal(hash, requestHash) {
			return 0, "", nil, domain.ErrIdempotencyConflict
		}
		if status != 0 {
			return status, contentType, body, nil
		}
		if !stale {
			return 0, "", nil, domain.ErrIdempotencyInFlight
		}
		// Take the abandoned claim over; of several retries racing here, one wins.
		tag, err := s.pool.Exec(ctx, `
			UPDATE idempotency_keys SET created_at = now()
			WHERE scope = $1 AND key = $2 AND status = 0
				AND created_at < now() - make_interval(secs => $3)`,
			scope, key, IdempotencyTakeover.Seconds())
		if err != nil {
			return 0, "", nil, fmt.Errorf("take over idempotency key: %w", err)
		}
		if tag.RowsAffected() == 1 {
			return 0, "", nil, nil
		}
		return 0, "", nil, domain.ErrIdempotencyInFlight
	}
	return 0, "", nil, domain.ErrIdempotencyInFlight
}

// CompleteIdempotencyKey stores the response of the request that claimed key, to be
// replayed to its retries.
func (s *Store) CompleteIdempotencyKey(ctx context.Context, scope []byte, key string, status int, contentType string, body []byte) error {
	if body == nil {
		body = []byte{}
	}
	_, err := s.pool.Exec(ctx, `
		UPDATE idempotency_keys SET status = $3, content_type = $4, body = $5
		WHERE scope = $1 AND key = $2 AND status = 0`, scope, key, status, contentType, body)
	if err != nil {
		return fmt.Errorf("complete idempotency key: %w", err)
	}
	return nil
}

// ReleaseIdempotencyKey forgets a claimed key whose request failed (5xx), so that a
// retry does the work.
func (s *Store) ReleaseIdempotencyKey(ctx context.Context, scope []byte, key string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND status = 0`, scope, key)
	if err != nil {
		return fmt.Errorf("release idempotency key: %w", err)
	}
	return nil
}

// PruneIdempotencyKeys deletes the keys claimed more than olderThan ago (never less than
// 24 h: the contract replays for at least that long) and returns how many went. It
// deletes in batches so that no one statement holds many locks or runs long.
func (s *Store) PruneIdempotencyKeys(ctx context.Context, olderThan time.Duration) (int64, error) {
	const batch = 10000
	olderThan = max(olderThan, 24*time.Hour)
	var total int64
	for {
		tag, err := s.pool.Exec(ctx, `
			DELETE FROM idempotency_keys WHERE ctid = ANY (ARRAY(
				SELECT ctid FROM idempotency_keys
				WHERE created_at < now() - make_interval(secs => $1)
				LIMIT $2))`, olderThan.Seconds(), batch)
		if err != nil {
			return total, fmt.Errorf("prune idempotency keys: %w", err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < batch {
			return total, nil
		}
	}
}
