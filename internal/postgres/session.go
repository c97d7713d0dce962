package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orgs-dev/orgs/internal/domain"
)

// FindUserForLogin returns the user with email and their password hash ("" when they have
// none), or domain.ErrNotFound.
func (s *Store) FindUserForLogin(ctx context.Context, email string) (domain.User, string, error) {
	var (
		u    domain.User
		hash *string
	)
	err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userColumns+`, u.password_hash FROM users u WHERE lower(u.email) = lower($1)`, email), &u, &hash)
	if err != nil {
		return u, "", translate(fmt.Errorf("find user for login: %w", err))
	}
	if hash == nil {
		return u, "", nil
	}
	return u, *hash, nil
}

// CreateSession stores a session of userID under tokenHash, valid for the store's session
// TTL, and returns its expiry.
// It is a write transaction, so that a sign-in with an Idempotency-Key keeps its key and
// its session together.
func (s *Store) CreateSession(ctx context.Context, userID string, tokenHash []byte) (time.Time, error) {
	var expires time.Time
	err := s.write(ctx, func(c *change) error {
		var err error
		expires, err = s.createSessionTx(ctx, c.tx, userID, tokenHash)
		return err
	})
	return expires, err
}

// createSessionTx is CreateSession inside a write transaction (activation).
func (s *Store) createSessionTx(ctx context.Context, tx pgx.Tx, userID string, tokenHash []byte) (time.Time, error) {
	expires := s.now().Add(s.cfg.SessionTTL)
	if _, err := tx.Exec(ctx, `INSERT INTO sessions (token_hash, user_id, expires_at) VALUES ($1, $2, $3)`, tokenHash, userID, expires); err != nil {
		return time.Time{}, fmt.Errorf("create session: %w", err)
	}
	return expires, nil
}

// FindSessionUser returns the active user of an unexpired session, or
// domain.ErrUnauthenticated.
func (s *Store) FindSessionUser(ctx context.Context, tokenHash []byte) (domain.User, error) {
	var u domain.User
	err := scanUser(s.pool.QueryRow(ctx, `
		SELECT `+userColumns+` FROM sessions s JOIN users u ON u.id = s.user_id
		WHERE s.token_hash = $1 AND s.expires_at > now() AND u.is_active`, tokenHash), &u)
	if errors.Is(err, pgx.ErrNoRows) {
		return u, domain.ErrUnauthenticated
	}
	if err != nil {
		return u, fmt.Errorf("find session: %w", err)
	}
	return u, nil
}

// DeleteSession ends the session with tokenHash (and only that one).
func (s *Store) DeleteSession(ctx context.Context, tokenHash []byte) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM sessions WHERE token_hash = $1`, tokenHash); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// PruneSessions deletes expired sessions and returns how many.
func (s *Store) PruneSessions(ctx context.Context) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM sessions WHERE expires_at < now()`)
	if err != nil {
		return 0, fmt.Errorf("prune sessions: %w", err)
	}
	return tag.RowsAffected(), nil
}
