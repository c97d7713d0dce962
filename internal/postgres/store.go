package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/orgs-dev/orgs/internal/domain"
)

// Store is orgs' storage. Each method that changes state owns one transaction in which it
// locks the organization concerned (its row, first, so that one organization's outbox
// order is its commit order), makes the change, writes the change's domain events to the
// outbox and inserts its email jobs.
type Store struct {
	pool  *pgxpool.Pool
	river *river.Client[pgx.Tx]
	cfg   StoreConfig
}

// StoreConfig holds the Store's settings.
type StoreConfig struct {
	// InvitationTTL is how long an invitation or activation link is valid.
	InvitationTTL time.Duration
	// SessionTTL is how long a session is valid.
	SessionTTL time.Duration
	// AfterCommit, if set, is called after each commit that wrote events (the api wakes
	// its outbox relay with it). It must not block.
	AfterCommit func()
	// Now returns the current time; tests may fix it.
	Now func() time.Time
	// MailLimitRecipient is how many emails one address of no active user may get per
	// hour (invitations, reminders, activations) through requests that are not a
	// service key's; 0: no limit.
	MailLimitRecipient int
	// ReminderSchedule are the delays after an invitation at which its scheduled
	// reminders go out (ORGS_REMINDER_SCHEDULE): an invitation that sends an email is
	// created with its reminder jobs.
	ReminderSchedule []time.Duration
	// MailLimitOrganization is how many emails one organization's members may cause per
	// hour; 0: no limit.
	MailLimitOrganization int
}

// NewStore returns a Store on pool. It inserts jobs with an insert-only River client.
func NewStore(pool *pgxpool.Pool, cfg StoreConfig) *Store {
	if cfg.InvitationTTL == 0 {
		cfg.InvitationTTL = 168 * time.Hour
	}
	if cfg.SessionTTL == 0 {
		cfg.SessionTTL = 720 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	// An insert-only client: no queues, no workers; it cannot fail with this config. Its
	// FetchCooldown rate-limits the pg_notify with which River wakes the mailer: at most
	// one insert transaction per queue in 20 ms pays for a notify (a notify serializes
	// commits), and an email still leaves within milliseconds of an idle queue's commit.
	rc, err := river.NewClient(riverpgxv5.New(pool), &river.Config{FetchCooldown: 20 * time.Millisecond})
	if err != nil {
		panic(fmt.Sprintf("river insert-only client: %v", err))
	}
	return &Store{pool: pool, river: rc, cfg: cfg}
}

// Pool returns the store's connection pool.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Ping checks that Postgres answers (for /readyz).
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

func (s *Store) now() time.Time { return s.cfg.Now().UTC().Truncate(time.Microsecond) }

// newID returns a time-ordered UUID (v7), which keeps the primary-key indexes compact.
func newID() string { return uuid.Must(uuid.NewV7()).String() }

// validUUID reports whether s is a UUID; ids that are not cannot exist (ErrNotFound).
func validUUID(s string) bool {
	_, err := uuid.Parse(s)
	return err == nil && len(s) == 36
}

// change is one write transaction: its events and jobs are written just before commit.
type change struct {
	tx     pgx.Tx
	events []domain.Event
	jobs   []river.InsertManyParams
	// deferWrites lets write queue statements whose result nobody reads, to go in one
	// batch with the outbox rows; queued holds them.
	deferWrites bool
	queued      []*pgx.QueuedQuery
}

// write runs a statement whose result is not read: at once, or with deferWrites queued
// for the batch that writes the outbox (for an idempotent request, at its Commit: a
// failure there is the request's answer, and nothing is kept).
func (c *change) write(ctx context.Context, sql string, args ...any) error {
	if c.deferWrites {
		c.queued = append(c.queued, &pgx.QueuedQuery{SQL: sql, Arguments: args})
		return nil
	}
	_, err := c.tx.Exec(ctx, sql, args...)
	return err
}

func (c *change) emit(e domain.Event) { c.events = append(c.events, e) }

func (c *change) enqueue(args river.JobArgs) {
	c.jobs = append(c.jobs, river.InsertManyParams{Args: args})
}

// write runs fn in a transaction, then writes its events to the outbox and inserts its
// jobs in the same transaction, and commits. A transaction that failed on a deadlock, a
// serialization failure or a lock it would not wait for (NOWAIT) is run again from the
// start, a few times, after a short random pause; fn must be safe to run again.
func (s *Store) write(ctx context.Context, fn func(c *change) error) error {
	for attempt := 1; ; attempt++ {
		err := s.writeOnce(ctx, fn)
		if err == nil || !retryable(err) || attempt >= maxAttempts {
			return err
		}
		pause := time.Duration(rand.Int64N(int64(min(attempt, 10))*int64(5*time.Millisecond))) + time.Millisecond
		select {
		case <-ctx.Done():
			return err
		case <-time.After(pause):
		}
	}
}

// maxAttempts bounds write's retries (about 2 s of pauses at most).
const maxAttempts = 40

// retryable reports whether err ended a transaction that may simply be run again.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code {
	case "40P01", "40001", "55P03": // deadlock, serialization failure, lock not available
		return true
	}
	return false
}

func (s *Store) writeOnce(ctx context.Context, fn func(c *change) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	k := idempotencyFrom(ctx)
	c := &change{tx: tx}
	if k != nil {
		c.tx = &claimTx{Tx: tx, k: k}
	}
	if err := fn(c); err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		if retryable(err) {
			return err
		}
		return translate(err)
	}
	if k != nil {
		// The request's response goes into the key's row before commit (Commit).
		if err := c.tx.(*claimTx).flush(ctx); err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
			return translate(err)
		}
		k.used = true
		k.parked = &parkedTx{store: s, tx: tx, c: c}
		return nil
	}
	if err := s.finish(ctx, tx, c, nil); err != nil {
		return translate(err)
	}
	return nil
}

// finish writes c's events and jobs (and extra, the stored response of an idempotent
// request, in one batch with the events), commits tx, and wakes the relay. It rolls tx
// back on any error.
func (s *Store) finish(ctx context.Context, tx pgx.Tx, c *change, extra *pgx.QueuedQuery) error {
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	c.tx = tx
	if err := s.flush(ctx, c, extra); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if len(c.events) > 0 && s.cfg.AfterCommit != nil {
		s.cfg.AfterCommit()
	}
	return nil
}

// lockOrgsTx locks several organizations in one statement, in id order, without waiting:
// a transaction that waited for the second lock while holding the first (and so its
// transaction id) could commit after a writer of the second organization that got a
// later id, and the relay, which orders by id, would publish that organization's events
// out of commit order. When any is busy it fails with 55P03 and write runs it again.
func lockOrgsTx(ctx context.Context, tx pgx.Tx, ids []string) error {
	if len(ids) == 1 {
		return lockOrgRow(ctx, tx, ids[0])
	}
	if _, err := tx.Exec(ctx, orgLockMark+`SELECT 1 FROM organizations WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE NOWAIT`, ids); err != nil {
		return fmt.Errorf("lock organizations: %w", err)
	}
	return nil
}

// flush writes c's events in one statement and its jobs in one InsertManyTx; extra, if
// not nil, goes in one batch with the events.
func (s *Store) flush(ctx context.Context, c *change, extra *pgx.QueuedQuery) error {
	var b pgx.Batch
	b.QueuedQueries = append(b.QueuedQueries, c.queued...)
	c.queued = nil
	if extra != nil {
		b.QueuedQueries = append(b.QueuedQueries, extra)
	}
	if n := len(c.events); n > 0 {
		ids := make([]string, n)
		types := make([]string, n)
		subjects := make([]string, n)
		orgs := make([]*string, n)
		datas := make([]string, n)
		for i, e := range c.events {
			b, err := json.Marshal(e.Data)
			if err != nil {
				return fmt.Errorf("encode %s event: %w", e.Type, err)
			}
			ids[i], types[i], subjects[i], datas[i] = newID(), string(e.Type), e.Subject, string(b)
			if e.OrganizationID != "" {
				org := e.OrganizationID
				orgs[i] = &org
			}
		}
		// unnest keeps the rows in order, so pos (bigserial) follows emission order.
		b.Queue(`
			INSERT INTO outbox (id, type, subject, organization_id, data)
			SELECT id, type, subject, org, data::jsonb
			FROM unnest($1::uuid[], $2::text[], $3::text[], $4::uuid[], $5::text[])
				WITH ORDINALITY AS e(id, type, subject, org, data, n)
			ORDER BY n`, ids, types, subjects, orgs, datas)
	}
	if b.Len() > 0 {
		if err := c.tx.SendBatch(ctx, &b).Close(); err != nil {
			return fmt.Errorf("write outbox: %w", err)
		}
	}
	if len(c.jobs) > 0 {
		if _, err := s.river.InsertManyTx(ctx, c.tx, c.jobs); err != nil {
			return fmt.Errorf("insert jobs: %w", err)
		}
	}
	return nil
}

// translate turns pgx and Postgres errors into domain errors.
func translate(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w (%v)", domain.ErrNotFound, err)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "22021" || pgErr.Code == "22P05") {
		// Text Postgres cannot store (a NUL, an unpaired surrogate): the handlers reject
		// it first; this is the safety net that keeps it a client error.
		return &domain.ValidationError{Problems: []domain.Problem{{Location: "body", Message: "contains characters that cannot be stored"}}}
	}
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		switch pgErr.ConstraintName {
		case "organizations_slug_key":
			return fmt.Errorf("%w: %v", domain.ErrSlugTaken, err)
		case "users_email_key":
			return fmt.Errorf("%w: %v", domain.ErrEmailTaken, err)
		case "users_external_id_key":
			return fmt.Errorf("%w: %v", domain.ErrExternalIDTaken, err)
		case "memberships_pkey", "invitations_pending_key":
			return fmt.Errorf("%w: %v", domain.ErrAlreadyMember, err)
		}
	}
	return err
}

// orgLock is an organization locked by a write transaction, with the actor's role in it.
type orgLock struct {
	org  domain.Organization
	role domain.Role // "" when the actor is not an active member
}

const orgColumns = `o.id, o.name, o.slug, o.is_active, o.owner_id, o.metadata, o.created_at, o.updated_at`

func scanOrg(row interface{ Scan(...any) error }, o *domain.Organization, extra ...any) error {
	dest := append([]any{&o.ID, &o.Name, &o.Slug, &o.IsActive, &o.OwnerID, &o.Metadata, &o.CreatedAt, &o.UpdatedAt}, extra...)
	return row.Scan(dest...)
}

// lockOrg locks organization id (FOR NO KEY UPDATE: writers of one organization queue up,
// foreign-key checks of new rows still pass) and returns it with actor's role. It must be
// the first statement of a write transaction that changes an organization. It checks that
// the actor has at least role want: ErrNotFound for non-members, ErrForbidden otherwise.
func lockOrg(ctx context.Context, tx pgx.Tx, actor domain.Actor, id string, want domain.Role) (orgLock, error) {
	if !validUUID(id) {
		return orgLock{}, domain.ErrNotFound
	}
	return readLock(tx.QueryRow(ctx, lockOrgSQL, id, nullUUID(actor.UserID)), actor, id, want)
}

// lockOrgSQL locks an organization and reads the actor's membership ($1 org, $2 user).
const lockOrgSQL = orgLockMark + `
	SELECT ` + orgColumns + `, m.is_admin, m.pending
	FROM organizations o
	LEFT JOIN memberships m ON m.organization_id = o.id AND m.user_id = $2
	WHERE o.id = $1
	FOR NO KEY UPDATE OF o`

// readLock reads lockOrgSQL's row and checks the actor's role.
func readLock(row pgx.Row, actor domain.Actor, id string, want domain.Role) (orgLock, error) {
	var (
		l                orgLock
		isAdmin, pending *bool
	)
	if err := scanOrg(row, &l.org, &isAdmin, &pending); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return orgLock{}, domain.ErrNotFound
		}
		return orgLock{}, fmt.Errorf("lock organization %s: %w", id, err)
	}
	if isAdmin != nil && !*pending {
		l.role = domain.RoleOf(*isAdmin, l.org.OwnerID == actor.UserID)
	}
	if err := domain.CheckRole(actor.IsSuperuser(), l.role, want); err != nil {
		return orgLock{}, err
	}
	return l, nil
}

// nullUUID passes "" as SQL NULL.
func nullUUID(id string) *string {
	if id == "" || !validUUID(id) {
		return nil
	}
	return &id
}

// actorRef is the actor_id of an event: the user id, or null for a service.
func actorRef(a domain.Actor) *string {
	if a.UserID == "" {
		return nil
	}
	id := a.UserID
	return &id
}
