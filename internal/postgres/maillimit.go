package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orgs-dev/orgs/internal/domain"
)

// The limits on the emails that users cause (StoreConfig.MailLimitRecipient and
// MailLimitOrganization) are counters per limit and clock hour in mail_limits. The
// transaction that enqueues an email adds one to its counters with mailLimitSQL, an
// upsert that locks the counter's row until commit, so concurrent transactions queue on
// it and a limit is never exceeded; one that would go beyond a limit gets a
// *domain.RateLimitError and rolls back (nothing changed, nothing sent). A service key's
// requests are not counted: a customer's backend provisions freely.

// mailWindow is the length of a counting window.
const mailWindow = time.Hour

// mailLimitSQL counts one email in window $1 against organization $2's counter (limit
// $3; skipped when $2 is empty or $3 is 0) and, when address $4 is no active user's,
// against its counter (limit $5; skipped when $5 is 0). A counter at its limit is left
// alone. It returns the scope refused ('recipient' first), or NULL when the email
// counted. A refused email may have counted against the other scope: the caller rolls
// back.
const mailLimitSQL = `
	WITH want (scope, key, lim) AS (
		SELECT 'organization', $2::text, $3::int WHERE $2::text <> '' AND $3::int > 0
		UNION ALL
		SELECT 'recipient', lower($4::text), $5::int
		WHERE $4::text <> '' AND $5::int > 0 AND NOT EXISTS (SELECT 1 FROM users u WHERE lower(u.email) = lower($4::text) AND u.is_active)
	), counted AS (
		INSERT INTO mail_limits AS l (scope, key, window_start, count)
		SELECT scope, key, $1, 1 FROM want
		ON CONFLICT (scope, key, window_start) DO UPDATE SET count = l.count + 1
		WHERE l.count < CASE l.scope WHEN 'organization' THEN $3::int ELSE $5::int END
		RETURNING l.scope
	)
	SELECT (SELECT w.scope FROM want w WHERE w.scope NOT IN (SELECT scope FROM counted) ORDER BY w.scope DESC LIMIT 1)`

// mailLimit is one email to count: caused by actor in organization org ("" when no
// organization's member caused it, as for a sign-up or a scheduled reminder), to the
// address email.
type mailLimit struct {
	actor domain.Actor
	org   string
	email string
}

// args returns mailLimitSQL's arguments at now, and false when nothing limits the
// email (a service key's request, or no limit configured).
func (s *Store) mailLimitArgs(l mailLimit, now time.Time) ([]any, bool) {
	if l.actor.IsService() {
		return nil, false
	}
	orgMax, recipientMax := s.cfg.MailLimitOrganization, s.cfg.MailLimitRecipient
	if l.org == "" {
		orgMax = 0
	}
	if orgMax <= 0 && recipientMax <= 0 {
		return nil, false
	}
	return []any{now.Truncate(mailWindow), l.org, max(orgMax, 0), l.email, max(recipientMax, 0)}, true
}

// readMailLimit turns mailLimitSQL's row into nil or a *domain.RateLimitError.
func readMailLimit(row pgx.Row, now time.Time) error {
	var refused *string
	if err := row.Scan(&refused); err != nil {
		return fmt.Errorf("count email: %w", err)
	}
	if refused == nil {
		return nil
	}
	return &domain.RateLimitError{Limit: *refused, RetryAfter: now.Truncate(mailWindow).Add(mailWindow).Sub(now)}
}

// queueMailLimit queues in b the count of email l, for a caller that sends b anyway: then
// the batch's Close returns a *domain.RateLimitError when the email would go beyond a
// limit, and the caller must roll back. It queues nothing when nothing limits the email.
func (s *Store) queueMailLimit(b *pgx.Batch, l mailLimit) {
	now := s.now()
	args, ok := s.mailLimitArgs(l, now)
	if !ok {
		return
	}
	b.Queue(mailLimitSQL, args...).QueryRow(func(row pgx.Row) error { return readMailLimit(row, now) })
}

// limitMailTx counts email l in its own statement. Returns a *domain.RateLimitError when
// the email would go beyond a limit; the caller must then roll back.
func (s *Store) limitMailTx(ctx context.Context, tx pgx.Tx, l mailLimit) error {
	now := s.now()
	args, ok := s.mailLimitArgs(l, now)
	if !ok {
		return nil
	}
	return readMailLimit(tx.QueryRow(ctx, mailLimitSQL, args...), now)
}

// isMailLimited reports whether err is a mail limit's refusal.
func isMailLimited(err error) bool {
	var rl *domain.RateLimitError
	return errors.As(err, &rl)
}

// PruneMailLimits deletes the counters of windows that have ended and returns how many.
func (s *Store) PruneMailLimits(ctx context.Context) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM mail_limits WHERE window_start < $1`, s.now().Truncate(mailWindow))
	if err != nil {
		return 0, fmt.Errorf("prune mail limits: %w", err)
	}
	return tag.RowsAffected(), nil
}
