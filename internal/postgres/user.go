package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/orgs-dev/orgs/internal/domain"
)

const userColumns = `u.id, u.email, u.name, u.is_active, u.external_id, u.created_at`

// linksResetNow is the users.links_reset_at of an activation or a decline by link: the
// current time, and always later than the last one, so that it differs from what any
// earlier link was made for.
const linksResetNow = `greatest(clock_timestamp(), u.links_reset_at + interval '1 microsecond')`

func scanUser(row interface{ Scan(...any) error }, u *domain.User, extra ...any) error {
	return row.Scan(append([]any{&u.ID, &u.Email, &u.Name, &u.IsActive, &u.ExternalID, &u.CreatedAt}, extra...)...)
}

// FindUserByID returns the user with id, or domain.ErrNotFound.
func (s *Store) FindUserByID(ctx context.Context, id string) (domain.User, error) {
	if !validUUID(id) {
		return domain.User{}, domain.ErrNotFound
	}
	var u domain.User
	err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users u WHERE u.id = $1`, id), &u)
	if err != nil {
		return domain.User{}, translate(fmt.Errorf("find user %s: %w", id, err))
	}
	return u, nil
}

// UserFilter selects users for FindUsers; empty fields do not filter.
type UserFilter struct {
	Email      string
	ExternalID string
	After      Cursor
	Limit      int
}

// FindUsers returns a page of users in creation order.
func (s *Store) FindUsers(ctx context.Context, f UserFilter) (Page[domain.User], error) {
	rows, err := s.pool.Query(ctx, `
		SELECT `+userColumns+` FROM users u
		WHERE ($1 = '' OR lower(u.email) = lower($1))
		  AND ($2 = '' OR u.external_id = $2)
		  AND (u.created_at, u.id) > ($3, $4::uuid)
		ORDER BY u.created_at, u.id
		LIMIT $5`, f.Email, f.ExternalID, f.After.Time, f.After.uuid(), f.Limit+1)
	if err != nil {
		return Page[domain.User]{}, fmt.Errorf("find users: %w", err)
	}
	users, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.User, error) {
		var u domain.User
		return u, scanUser(r, &u)
	})
	if err != nil {
		return Page[domain.User]{}, fmt.Errorf("find users: %w", err)
	}
	return page(users, f.Limit, func(u domain.User) Cursor { return Cursor{u.CreatedAt, u.ID} }), nil
}

// UpsertUserInput creates or updates a user of the customer's own user system.
type UpsertUserInput struct {
	Email      string
	Name       *string
	ExternalID *string
	IsActive   *bool
}

// UpsertUser creates or updates (by external_id when given, else by email) a user without
// a password. It reports whether the user was created. A user activated by it emits
// user_activated. A change of address or an activation kills the user's activation
// links (see FindActivationRecipient). Returns domain.ErrEmailTaken when the email belongs to another user
// and domain.ErrExternalIDTaken likewise.
func (s *Store) UpsertUser(ctx context.Context, actor domain.Actor, in UpsertUserInput) (domain.User, bool, error) {
	var (
		u       domain.User
		created bool
	)
	err := s.write(ctx, func(c *change) error {
		var err error
		// Find by external_id first, then by email; lock the row for the update.
		var found bool
		if in.ExternalID != nil {
			err = scanUser(c.tx.QueryRow(ctx, `SELECT `+userColumns+` FROM users u WHERE u.external_id = $1 FOR UPDATE`, *in.ExternalID), &u)
			found = err == nil
			if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("find user by external id: %w", err)
			}
		}
		if !found {
			err = scanUser(c.tx.QueryRow(ctx, `SELECT `+userColumns+` FROM users u WHERE lower(u.email) = lower($1) FOR UPDATE`, in.Email), &u)
			found = err == nil
			if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("find user by email: %w", err)
			}
			if found && in.ExternalID != nil && u.ExternalID != nil && *u.ExternalID != *in.ExternalID {
				return domain.ErrEmailTaken
			}
		}
		if !found {
			name := ""
			if in.Name != nil {
				name = *in.Name
			}
			active := in.IsActive != nil && *in.IsActive
			err = scanUser(c.tx.QueryRow(ctx, `
				INSERT INTO users AS u (id, email, name, is_active, external_id, links_reset_at)
				VALUES ($1, $2, $3, $4, $5, CASE WHEN $4 THEN clock_timestamp() END)
				ON CONFLICT ((lower(email))) DO NOTHING
				RETURNING `+userColumns, newID(), in.Email, name, active, in.ExternalID), &u)
			if err == nil {
				created = true
				return nil
			}
			if !errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("create user: %w", err)
			}
			// A concurrent creation of the same email (a sign-up, an invitation, another
			// upsert) won: update that user instead.
			err = scanUser(c.tx.QueryRow(ctx, `SELECT `+userColumns+` FROM users u WHERE lower(u.email) = lower($1) FOR UPDATE`, in.Email), &u)
			if err != nil {
				return fmt.Errorf("find user by email: %w", err)
			}
			if in.ExternalID != nil && u.ExternalID != nil && *u.ExternalID != *in.ExternalID {
				return domain.ErrEmailTaken
			}
		}
		wasActive, formerEmail := u.IsActive, u.Email
		err = scanUser(c.tx.QueryRow(ctx, `
			UPDATE users AS u SET
				email = $2,
				name = coalesce($3, u.name),
				external_id = coalesce($4, u.external_id),
				is_active = coalesce($5, u.is_active),
				links_reset_at = CASE WHEN NOT u.is_active AND coalesce($5, u.is_active) THEN `+linksResetNow+` ELSE u.links_reset_at END,
				updated_at = now()
			WHERE u.id = $1
			RETURNING `+userColumns, u.ID, in.Email, in.Name, in.ExternalID, in.IsActive), &u)
		if err != nil {
			return fmt.Errorf("update user: %w", err)
		}
		// Pending invitations follow the user to the new address: reminders go there, and
		// the former address can be invited as someone else.
		if !strings.EqualFold(formerEmail, u.Email) {
			if _, err := c.tx.Exec(ctx, `UPDATE invitations SET email = $2 WHERE user_id = $1 AND status = 'pending'`, u.ID, u.Email); err != nil {
				return translate(fmt.Errorf("move invitations to the new address: %w", err))
			}
		}
		if !wasActive && u.IsActive {
			c.emit(domain.Event{Type: domain.UserActivated, Subject: u.ID, Data: map[string]any{
				"user": u, "organization_ids": []string{},
			}})
		}
		return nil
	})
	return u, created, err
}

// findUserByEmailTx returns the user with email (case-insensitively), or ok false.
func findUserByEmailTx(ctx context.Context, tx pgx.Tx, email string, lock bool) (domain.User, bool, error) {
	q := `SELECT ` + userColumns + ` FROM users u WHERE lower(u.email) = lower($1)`
	if lock {
		q += ` FOR UPDATE`
	}
	var u domain.User
	err := scanUser(tx.QueryRow(ctx, q, email), &u)
	if errors.Is(err, pgx.ErrNoRows) {
		return u, false, nil
	}
	if err != nil {
		return u, false, fmt.Errorf("find user by email: %w", err)
	}
	return u, true, nil
}

// ensureUserTx returns the user with email, creating an inactive one when there is none.
// Concurrent creations of one email resolve to the same row.
func ensureUserTx(ctx context.Context, tx pgx.Tx, email, name string) (domain.User, bool, error) {
	var u domain.User
	err := scanUser(tx.QueryRow(ctx, `
		INSERT INTO users AS u (id, email, name) VALUES ($1, $2, $3)
		ON CONFLICT ((lower(email))) DO NOTHING
		RETURNING `+userColumns, newID(), email, strings.TrimSpace(name)), &u)
	if err == nil {
		return u, true, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return u, false, fmt.Errorf("create user: %w", err)
	}
	u, ok, err := findUserByEmailTx(ctx, tx, email, true)
	if err != nil {
		return u, false, err
	}
	if !ok {
		return u, false, fmt.Errorf("create user %q: conflicting row vanished", email)
	}
	return u, false, nil
}
