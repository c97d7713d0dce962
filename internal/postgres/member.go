package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orgs-dev/orgs/internal/domain"
	"github.com/orgs-dev/orgs/internal/jobs"
)

const membershipColumns = `m.organization_id, m.is_admin, m.pending, m.metadata, m.created_at`

// scanMembership scans membershipColumns into m (without its user).
func scanMembership(row interface{ Scan(...any) error }, m *domain.Member, extra ...any) error {
	var pending bool
	if err := row.Scan(append([]any{&m.OrganizationID, &m.IsAdmin, &pending, &m.Metadata, &m.CreatedAt}, extra...)...); err != nil {
		return err
	}
	m.Status = domain.MemberActive
	if pending {
		m.Status = domain.MemberPending
	}
	return nil
}

// memberQuery selects members with their users and whether each is the owner.
const memberQuery = `SELECT ` + membershipColumns + `, ` + userColumns + `, o.owner_id = m.user_id
	FROM memberships m JOIN users u ON u.id = m.user_id JOIN organizations o ON o.id = m.organization_id`

func scanMember(row interface{ Scan(...any) error }) (domain.Member, error) {
	var m domain.Member
	u := &m.User
	err := scanMembership(row, &m, &u.ID, &u.Email, &u.Name, &u.IsActive, &u.ExternalID, &u.CreatedAt, &m.IsOwner)
	m.Role = domain.RoleOf(m.IsAdmin, m.IsOwner)
	return m, err
}

func memberAddedEvent(orgID string, u domain.User, isAdmin bool, actor domain.Actor) domain.Event {
	return domain.Event{Type: domain.MemberAdded, Subject: orgID, OrganizationID: orgID, Data: map[string]any{
		"organization_id": orgID, "user": u, "is_admin": isAdmin, "actor_id": actorRef(actor),
	}}
}

func memberRemovedEvent(orgID, userID string, actor domain.Actor) domain.Event {
	return domain.Event{Type: domain.MemberRemoved, Subject: orgID, OrganizationID: orgID, Data: map[string]any{
		"organization_id": orgID, "user_id": userID, "actor_id": actorRef(actor),
	}}
}

// checkMemberSQL tells whether $2 is an active member of organization $1, or, with $3
// (a superuser), whether the organization exists.
const checkMemberSQL = `
	SELECT CASE WHEN $3 THEN EXISTS (SELECT 1 FROM organizations WHERE id = $1)
	ELSE EXISTS (SELECT 1 FROM memberships WHERE organization_id = $1 AND user_id = $2 AND NOT pending) END`

// readAsMember runs query (one row or many, read by read) in the same round trip as the
// membership check: the actor must be an active member of orgID (or a superuser), else
// domain.ErrNotFound, and read's result is dropped.
func (s *Store) readAsMember(ctx context.Context, actor domain.Actor, orgID, query string, args []any, read func(pgx.Rows) error) error {
	if !validUUID(orgID) {
		return domain.ErrNotFound
	}
	var b pgx.Batch
	var ok bool
	b.Queue(checkMemberSQL, orgID, nullUUID(actor.UserID), actor.IsSuperuser()).QueryRow(func(r pgx.Row) error {
		return r.Scan(&ok)
	})
	b.Queue(query, args...).Query(func(rows pgx.Rows) error {
		if !ok {
			return nil
		}
		return read(rows)
	})
	if err := s.pool.SendBatch(ctx, &b).Close(); err != nil {
		return fmt.Errorf("read as member: %w", err)
	}
	if !ok {
		return domain.ErrNotFound
	}
	return nil
}

// FindMembers returns a page of organization orgID's members (pending ones included) in
// the order they joined, to its members. Returns domain.ErrNotFound to others.
func (s *Store) FindMembers(ctx context.Context, actor domain.Actor, orgID string, after Cursor, limit int) (Page[domain.Member], error) {
	var members []domain.Member
	err := s.readAsMember(ctx, actor, orgID, memberQuery+`
		WHERE m.organization_id = $1 AND (m.created_at, m.user_id) > ($2, $3::uuid)
		ORDER BY m.created_at, m.user_id LIMIT $4`, []any{orgID, after.Time, after.uuid(), limit + 1},
		func(rows pgx.Rows) error {
			var err error
			members, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.Member, error) { return scanMember(r) })
			return err
		})
	if err != nil {
		return Page[domain.Member]{}, err
	}
	return page(members, limit, func(m domain.Member) Cursor { return Cursor{m.CreatedAt, m.User.ID} }), nil
}

// FindMember returns userID's membership of orgID to a member. Returns domain.ErrNotFound
// when either is unknown or the actor is not a member.
func (s *Store) FindMember(ctx context.Context, actor domain.Actor, orgID, userID string) (domain.Member, error) {
	if !validUUID(userID) {
		return domain.Member{}, domain.ErrNotFound
	}
	var (
		m     domain.Member
		found bool
	)
	err := s.readAsMember(ctx, actor, orgID, memberQuery+` WHERE m.organization_id = $1 AND m.user_id = $2`, []any{orgID, userID},
		func(rows pgx.Rows) error {
			defer rows.Close()
			if !rows.Next() {
				return rows.Err()
			}
			var err error
			m, err = scanMember(rows)
			found = err == nil
			return err
		})
	if err != nil {
		return m, err
	}
	if !found {
		return m, domain.ErrNotFound
	}
	return m, nil
}

func findMemberTx(ctx context.Context, tx pgx.Tx, orgID, userID string, lock bool) (domain.Member, error) {
	if !validUUID(userID) {
		return domain.Member{}, domain.ErrNotFound
	}
	q := memberQuery + ` WHERE m.organization_id = $1 AND m.user_id = $2`
	if lock {
		q += ` FOR UPDATE OF m`
	}
	m, err := scanMember(tx.QueryRow(ctx, q, orgID, userID))
	if err != nil {
		return m, translate(fmt.Errorf("find member: %w", err))
	}
	return m, nil
}

// AddMemberInput adds a member by email.
type AddMemberInput struct {
	Email             string
	IsAdmin           bool
	RequireAcceptance bool
	Message           string
	Metadata          json.RawMessage
	// SendEmail false enqueues no email (service keys only; the caller sends its own).
	SendEmail bool

	mailCounted bool // the email was counted against the mail limits already
}

// AddMemberResult is what AddMember did: Status is "added" (an active user, now a member)
// or "invited" (a pending membership and an invitation).
type AddMemberResult struct {
	Status     string
	Member     domain.Member
	Invitation *domain.Invitation
}

// AddMember adds email to organization orgID (admins). An existing active user is added
// at once and notified; with RequireAcceptance, or for an unknown email (an inactive user
// is created) or an inactive user, the membership is pending and an invitation is sent.
// Emits member_added, and user_invited for an invitation. Returns domain.ErrAlreadyMember
// when the user is a member already (pending or not), and a *domain.RateLimitError
// (nothing changed) when the email would go beyond a mail limit.
func (s *Store) AddMember(ctx context.Context, actor domain.Actor, orgID string, in AddMemberInput) (AddMemberResult, error) {
	if !validUUID(orgID) {
		return AddMemberResult{}, domain.ErrNotFound
	}
	var res AddMemberResult
	err := s.write(ctx, func(c *change) error {
		// The invitation's row goes with the outbox rows: one round trip fewer while
		// the organization is locked.
		c.deferWrites = true
		// One round trip locks the organization and adds the member; when the
		// permission check then fails, the transaction rolls the member back.
		meta := in.Metadata
		if len(meta) == 0 {
			meta = json.RawMessage(`{}`)
		}
		var b pgx.Batch
		b.Queue(lockOrgSQL, orgID, nullUUID(actor.UserID))
		b.Queue(addMemberSQL, newID(), in.Email, orgID, in.IsAdmin, in.RequireAcceptance, meta)
		s.queueAddMemberMailLimit(&b, actor, orgID, &in)
		br := c.tx.SendBatch(ctx, &b)
		l, err := readLock(br.QueryRow(), actor, orgID, domain.RoleAdmin)
		if err != nil {
			_ = br.Close()
			return err
		}
		user, m, found, err := readAddMember(br.QueryRow())
		if cerr := br.Close(); err == nil && cerr != nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		if !found {
			res, err = s.addMemberSlowTx(ctx, c, actor, l.org, in, meta)
			return err
		}
		res, err = s.finishAddMemberTx(ctx, c, actor, l.org, in, user, m)
		return err
	})
	return res, err
}

// BulkResult is the outcome of one item of AddMembers: Err is nil on success.
type BulkResult struct {
	Email string
	AddMemberResult
	Err error
}

// AddMembers adds each item like AddMember, in one transaction where each item is its own
// savepoint, so one bad item does not stop the others. The permission check fails the
// whole call (domain.ErrNotFound, domain.ErrForbidden).
func (s *Store) AddMembers(ctx context.Context, actor domain.Actor, orgID string, items []AddMemberInput) ([]BulkResult, error) {
	results := make([]BulkResult, len(items))
	// Items go in email order, so that two bulk adds sharing new emails (each waits on
	// the other's uncommitted user row) cannot lock in opposite orders and deadlock.
	order := make([]int, len(items))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return strings.Compare(strings.ToLower(items[a].Email), strings.ToLower(items[b].Email))
	})
	err := s.write(ctx, func(c *change) error {
		l, err := lockOrg(ctx, c.tx, actor, orgID, domain.RoleAdmin)
		if err != nil {
			return err
		}
		for _, i := range order {
			in := items[i]
			results[i] = BulkResult{Email: in.Email}
			sp, err := c.tx.Begin(ctx) // a savepoint
			if err != nil {
				return fmt.Errorf("savepoint: %w", err)
			}
			nEvents, nJobs := len(c.events), len(c.jobs)
			item := &change{tx: sp, events: c.events, jobs: c.jobs}
			res, err := s.addMemberTx(ctx, item, actor, l.org, in)
			if err != nil {
				if rerr := sp.Rollback(ctx); rerr != nil {
					return fmt.Errorf("rollback to savepoint: %w", rerr)
				}
				c.events, c.jobs = c.events[:nEvents], c.jobs[:nJobs]
				results[i].Err = translate(err)
				continue
			}
			if err := sp.Commit(ctx); err != nil {
				return fmt.Errorf("release savepoint: %w", err)
			}
			c.events, c.jobs = item.events, item.jobs
			results[i].AddMemberResult = res
		}
		return nil
	})
	return results, err
}

func (s *Store) addMemberTx(ctx context.Context, c *change, actor domain.Actor, org domain.Organization, in AddMemberInput) (AddMemberResult, error) {
	meta := in.Metadata
	if len(meta) == 0 {
		meta = json.RawMessage(`{}`)
	}
	var (
		b     pgx.Batch
		user  domain.User
		m     domain.Member
		found bool
	)
	b.Queue(addMemberSQL, newID(), in.Email, org.ID, in.IsAdmin, in.RequireAcceptance, meta).QueryRow(func(row pgx.Row) error {
		var err error
		user, m, found, err = readAddMember(row)
		return err
	})
	s.queueAddMemberMailLimit(&b, actor, org.ID, &in)
	if err := c.tx.SendBatch(ctx, &b).Close(); err != nil {
		return AddMemberResult{}, err
	}
	if !found {
		return s.addMemberSlowTx(ctx, c, actor, org, in, meta)
	}
	return s.finishAddMemberTx(ctx, c, actor, org, in, user, m)
}

// queueAddMemberMailLimit queues in b, after addMemberSQL, the count of the email that
// adding in.Email sends: whether the transaction commits an invitation or a notification,
// exactly one email goes (the statement sees the user addMemberSQL found or created), and
// when it does not commit, the count goes with it. The batch's Close then returns a
// *domain.RateLimitError beyond a limit.
func (s *Store) queueAddMemberMailLimit(b *pgx.Batch, actor domain.Actor, orgID string, in *AddMemberInput) {
	if in.SendEmail {
		s.queueMailLimit(b, mailLimit{actor: actor, org: orgID, email: in.Email})
		in.mailCounted = true
	}
}

// addMemberSQL finds or creates the user with an email and creates their membership in
// one statement ($1 new user id, $2 email, $3 organization, $4 is_admin,
// $5 require_acceptance, $6 metadata). It returns no row when the user was committed by
// a concurrent transaction after the statement's snapshot, and null membership columns
// when the user is a member already.
const addMemberSQL = `
	WITH ins AS (
		INSERT INTO users AS u (id, email, name) VALUES ($1, $2, '')
		ON CONFLICT ((lower(email))) DO NOTHING
		RETURNING ` + userColumns + `
	), usr AS (
		SELECT * FROM ins
		UNION ALL
		SELECT ` + userColumns + ` FROM users u WHERE lower(u.email) = lower($2) AND NOT EXISTS (SELECT 1 FROM ins)
	), m AS (
		INSERT INTO memberships AS m (organization_id, user_id, is_admin, pending, metadata)
		SELECT $3, usr.id, $4, NOT usr.is_active OR $5, $6 FROM usr
		ON CONFLICT (organization_id, user_id) DO NOTHING
		RETURNING ` + membershipColumns + `
	)
	SELECT usr.*, m.* FROM usr LEFT JOIN m ON true`

// readAddMember reads addMemberSQL's row: found is false when the user appeared
// concurrently (take addMemberSlowTx); domain.ErrAlreadyMember for a member already.
func readAddMember(row pgx.Row) (user domain.User, m domain.Member, found bool, err error) {
	var (
		mOrg             *string
		mAdmin, mPending *bool
		mMeta            []byte
		mCreated         *time.Time
	)
	err = scanUser(row, &user, &mOrg, &mAdmin, &mPending, &mMeta, &mCreated)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return user, m, false, nil
	case err != nil:
		return user, m, false, fmt.Errorf("create membership: %w", err)
	case mOrg == nil:
		return user, m, false, domain.ErrAlreadyMember
	}
	m = domain.Member{OrganizationID: *mOrg, IsAdmin: *mAdmin, Metadata: mMeta, CreatedAt: *mCreated, Status: domain.MemberActive}
	if *mPending {
		m.Status = domain.MemberPending
	}
	return user, m, true, nil
}

// addMemberSlowTx is addMemberTx in two statements, for when the user appeared
// concurrently.
func (s *Store) addMemberSlowTx(ctx context.Context, c *change, actor domain.Actor, org domain.Organization, in AddMemberInput, meta json.RawMessage) (AddMemberResult, error) {
	user, _, err := ensureUserTx(ctx, c.tx, in.Email, "")
	if err != nil {
		return AddMemberResult{}, err
	}
	var m domain.Member
	err = scanMembership(c.tx.QueryRow(ctx, `
		INSERT INTO memberships AS m (organization_id, user_id, is_admin, pending, metadata)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (organization_id, user_id) DO NOTHING
		RETURNING `+membershipColumns, org.ID, user.ID, in.IsAdmin, !user.IsActive || in.RequireAcceptance, meta), &m)
	if errors.Is(err, pgx.ErrNoRows) {
		return AddMemberResult{}, domain.ErrAlreadyMember
	}
	if err != nil {
		return AddMemberResult{}, fmt.Errorf("create membership: %w", err)
	}
	return s.finishAddMemberTx(ctx, c, actor, org, in, user, m)
}

// finishAddMemberTx emits member_added and, for an active user, the notification, or
// for a pending member, the invitation; it counts the email against the mail limits
// unless the caller did.
func (s *Store) finishAddMemberTx(ctx context.Context, c *change, actor domain.Actor, org domain.Organization, in AddMemberInput, user domain.User, m domain.Member) (AddMemberResult, error) {
	var res AddMemberResult
	if in.SendEmail && !in.mailCounted {
		if err := s.limitMailTx(ctx, c.tx, mailLimit{actor: actor, org: org.ID, email: user.Email}); err != nil {
			return res, err
		}
	}
	pending := m.Status == domain.MemberPending
	m.User = user
	m.Role = domain.RoleOf(m.IsAdmin, false)
	res.Member = m
	c.emit(memberAddedEvent(org.ID, user, in.IsAdmin, actor))
	if !pending {
		res.Status = "added"
		if in.SendEmail {
			c.enqueue(jobs.SendNotificationArgs{OrganizationID: org.ID, UserID: user.ID, ActorID: actor.UserID, AddedAt: m.CreatedAt, Message: in.Message})
		}
		return res, nil
	}
	res.Status = "invited"
	inv, err := s.createInvitationTx(ctx, c, actor, org.ID, user, in)
	if err != nil {
		return res, err
	}
	res.Invitation = &inv
	return res, nil
}

// UpdateMemberInput changes a membership; nil fields are left alone.
type UpdateMemberInput struct {
	IsAdmin  *bool
	Metadata json.RawMessage
}

// UpdateMember changes userID's membership of orgID (admins). Emits member_updated when
// anything changed. Returns domain.ErrOwnerMustBeAdmin when demoting the owner.
func (s *Store) UpdateMember(ctx context.Context, actor domain.Actor, orgID, userID string, in UpdateMemberInput) (domain.Member, error) {
	var m domain.Member
	err := s.write(ctx, func(c *change) error {
		if _, err := lockOrg(ctx, c.tx, actor, orgID, domain.RoleAdmin); err != nil {
			return err
		}
		var err error
		m, err = findMemberTx(ctx, c.tx, orgID, userID, true)
		if err != nil {
			return err
		}
		if err := domain.CheckDemotion(m.IsOwner, in.IsAdmin); err != nil {
			return err
		}
		adminChanged := in.IsAdmin != nil && *in.IsAdmin != m.IsAdmin
		metaChanged := in.Metadata != nil && !jsonEqual(in.Metadata, m.Metadata)
		if !adminChanged && !metaChanged {
			return nil
		}
		var meta any
		if in.Metadata != nil {
			meta = in.Metadata
		}
		if err := c.tx.QueryRow(ctx, `
			UPDATE memberships SET is_admin = coalesce($3, is_admin), metadata = coalesce($4::jsonb, metadata)
			WHERE organization_id = $1 AND user_id = $2
			RETURNING is_admin, metadata`, orgID, userID, in.IsAdmin, meta).Scan(&m.IsAdmin, &m.Metadata); err != nil {
			return fmt.Errorf("update member: %w", err)
		}
		m.Role = domain.RoleOf(m.IsAdmin, m.IsOwner)
		if adminChanged && m.Status == domain.MemberPending {
			// Keep the open invitation (shown in the invitation list) in step.
			if _, err := c.tx.Exec(ctx, `UPDATE invitations SET is_admin = $3
				WHERE organization_id = $1 AND user_id = $2 AND status IN ('pending', 'expired')`, orgID, userID, m.IsAdmin); err != nil {
				return fmt.Errorf("update invitation: %w", err)
			}
		}
		c.emit(domain.Event{Type: domain.MemberUpdated, Subject: orgID, OrganizationID: orgID, Data: map[string]any{
			"organization_id": orgID, "user_id": userID, "is_admin": m.IsAdmin, "actor_id": actorRef(actor),
		}})
		return nil
	})
	return m, err
}

// RemoveMember removes userID from orgID: admins remove anyone but the owner, members may
// leave. A pending member's invitation is revoked with it. Emits invitation_revoked (for a
// pending invitation) and member_removed. Returns domain.ErrOwnerCannotBeRemoved,
// domain.ErrForbidden, domain.ErrNotFound.
func (s *Store) RemoveMember(ctx context.Context, actor domain.Actor, orgID, userID string) error {
	return s.write(ctx, func(c *change) error {
		l, err := lockOrg(ctx, c.tx, actor, orgID, "")
		if err != nil {
			return err
		}
		m, err := findMemberTx(ctx, c.tx, orgID, userID, true)
		if err != nil {
			return err
		}
		if err := domain.CanRemoveMember(actor.IsSuperuser(), actor.UserID, l.role, userID, m.IsOwner); err != nil {
			return err
		}
		if _, err := c.tx.Exec(ctx, `DELETE FROM memberships WHERE organization_id = $1 AND user_id = $2`, orgID, userID); err != nil {
			return fmt.Errorf("remove member: %w", err)
		}
		if err := endInvitationsTx(ctx, c, orgID, userID, domain.StatusRevoked, s.now()); err != nil {
			return err
		}
		c.emit(memberRemovedEvent(orgID, userID, actor))
		return nil
	})
}

// endInvitationsTx moves userID's pending invitations to orgID into status and emits the
// matching event for each.
func endInvitationsTx(ctx context.Context, c *change, orgID, userID string, status domain.InvitationStatus, now time.Time) error {
	rows, err := c.tx.Query(ctx, `
		UPDATE invitations SET status = $3, responded_at = $4
		WHERE organization_id = $1 AND user_id = $2 AND status = 'pending'
		RETURNING id`, orgID, userID, string(status), now)
	if err != nil {
		return fmt.Errorf("end invitations: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("end invitations: %w", err)
	}
	for _, id := range ids {
		c.emit(invitationEndedEvent(status, id, orgID, userID))
	}
	return nil
}
