package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orgs-dev/orgs/internal/domain"
	"github.com/orgs-dev/orgs/internal/jobs"
)

const invitationColumns = `i.id, i.organization_id, i.email, i.user_id, i.invited_by, i.is_admin, i.status,
	i.created_at, i.expires_at, i.reminders_sent, i.last_sent_at, i.require_acceptance`

func scanInvitation(row interface{ Scan(...any) error }, inv *domain.Invitation, extra ...any) error {
	return row.Scan(append([]any{&inv.ID, &inv.OrganizationID, &inv.Email, &inv.UserID, &inv.InvitedBy, &inv.IsAdmin,
		&inv.Status, &inv.CreatedAt, &inv.ExpiresAt, &inv.RemindersSent, &inv.LastSentAt, &inv.RequireAcceptance}, extra...)...)
}

func collectInvitations(rows pgx.Rows, err error) ([]domain.Invitation, error) {
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.Invitation, error) {
		var inv domain.Invitation
		return inv, scanInvitation(r, &inv)
	})
}

// invitationEndedEvent is the event of an invitation leaving pending for status.
func invitationEndedEvent(status domain.InvitationStatus, invID, orgID, userID string) domain.Event {
	t := map[domain.InvitationStatus]domain.EventType{
		domain.StatusAccepted: domain.InvitationAccepted,
		domain.StatusDeclined: domain.InvitationDeclined,
		domain.StatusRevoked:  domain.InvitationRevoked,
		domain.StatusExpired:  domain.InvitationExpired,
	}[status]
	return domain.Event{Type: t, Subject: orgID, OrganizationID: orgID, Data: map[string]any{
		"invitation_id": invID, "organization_id": orgID, "user_id": userID,
	}}
}

// createInvitationTx creates a pending invitation of user to orgID, emits user_invited and
// enqueues the invitation email and its scheduled reminders (unless in.SendEmail is false:
// then the customer reminds); its caller counted the email against the mail limits.
func (s *Store) createInvitationTx(ctx context.Context, c *change, actor domain.Actor, orgID string, user domain.User, in AddMemberInput) (domain.Invitation, error) {
	now := s.now()
	inv := domain.Invitation{
		ID: newID(), OrganizationID: orgID, Email: in.Email, UserID: user.ID, InvitedBy: nullUUID(actor.UserID),
		IsAdmin: in.IsAdmin, Status: domain.StatusPending, CreatedAt: now, ExpiresAt: now.Add(s.cfg.InvitationTTL),
		RequireAcceptance: in.RequireAcceptance && user.IsActive,
	}
	if in.SendEmail {
		inv.LastSentAt = &now
	}
	// The row is known in full here: a change that defers its writes sends it in one
	// round trip with the outbox rows (a conflict then fails the commit just the same).
	err := c.write(ctx, `
		INSERT INTO invitations (id, organization_id, email, user_id, invited_by, is_admin, require_acceptance, message, metadata, created_at, expires_at, last_sent_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, coalesce($9::jsonb, '{}'), $10, $11, $12)`,
		inv.ID, orgID, inv.Email, user.ID, inv.InvitedBy, inv.IsAdmin, inv.RequireAcceptance,
		in.Message, nullJSON(in.Metadata), now, inv.ExpiresAt, inv.LastSentAt)
	if err != nil {
		return inv, fmt.Errorf("create invitation: %w", err)
	}
	c.emit(domain.Event{Type: domain.UserInvited, Subject: orgID, OrganizationID: orgID, Data: map[string]any{
		"invitation": inv, "organization_id": orgID, "invited_by": inv.InvitedBy,
	}})
	if in.SendEmail {
		c.enqueue(jobs.SendInvitationArgs{InvitationID: inv.ID})
		c.jobs = append(c.jobs, jobs.ScheduledReminders(inv, s.cfg.ReminderSchedule)...)
	}
	return inv, nil
}

// InvitationFilter selects an organization's invitations.
type InvitationFilter struct {
	Status domain.InvitationStatus // "" for all
	After  Cursor
	Limit  int
}

// FindInvitations returns a page of organization orgID's invitations, newest last, to its
// admins.
func (s *Store) FindInvitations(ctx context.Context, actor domain.Actor, orgID string, f InvitationFilter) (Page[domain.Invitation], error) {
	if err := s.checkRole(ctx, actor, orgID, domain.RoleAdmin); err != nil {
		return Page[domain.Invitation]{}, err
	}
	invs, err := collectInvitations(s.pool.Query(ctx, `
		SELECT `+invitationColumns+` FROM invitations i
		WHERE i.organization_id = $1 AND ($2 = '' OR i.status = $2) AND (i.created_at, i.id) > ($3, $4::uuid)
		ORDER BY i.created_at, i.id LIMIT $5`, orgID, string(f.Status), f.After.Time, f.After.uuid(), f.Limit+1))
	if err != nil {
		return Page[domain.Invitation]{}, fmt.Errorf("find invitations: %w", err)
	}
	return page(invs, f.Limit, func(i domain.Invitation) Cursor { return Cursor{i.CreatedAt, i.ID} }), nil
}

// FindMyInvitations returns the acting user's pending, unexpired invitations.
func (s *Store) FindMyInvitations(ctx context.Context, actor domain.Actor) ([]domain.Invitation, error) {
	invs, err := collectInvitations(s.pool.Query(ctx, `
		SELECT `+invitationColumns+` FROM invitations i
		WHERE i.user_id = $1 AND i.status = 'pending' AND i.expires_at > $2
		ORDER BY i.created_at, i.id`, nullUUID(actor.UserID), s.now()))
	if err != nil {
		return nil, fmt.Errorf("find my invitations: %w", err)
	}
	if invs == nil {
		invs = []domain.Invitation{}
	}
	return invs, nil
}

// checkRole returns nil when actor has at least role want in orgID (without locking).
func (s *Store) checkRole(ctx context.Context, actor domain.Actor, orgID string, want domain.Role) error {
	if !validUUID(orgID) {
		return domain.ErrNotFound
	}
	var (
		exists           bool
		isAdmin, isOwner *bool
	)
	err := s.pool.QueryRow(ctx, `
		SELECT true, m.is_admin, o.owner_id = m.user_id FROM organizations o
		LEFT JOIN memberships m ON m.organization_id = o.id AND m.user_id = $2 AND NOT m.pending
		WHERE o.id = $1`, orgID, nullUUID(actor.UserID)).Scan(&exists, &isAdmin, &isOwner)
	if errors.Is(err, pgx.ErrNoRows) {
		return domain.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("check role: %w", err)
	}
	var role domain.Role
	if isAdmin != nil {
		role = domain.RoleOf(*isAdmin, *isOwner)
	}
	return domain.CheckRole(actor.IsSuperuser(), role, want)
}

// lockOrgRow locks organization id without a permission check (for the invited user,
// who is not a member yet). Returns domain.ErrNotFound.
func lockOrgRow(ctx context.Context, tx pgx.Tx, id string) error {
	var x string
	err := tx.QueryRow(ctx, orgLockMark+`SELECT id FROM organizations WHERE id = $1 FOR NO KEY UPDATE`, id).Scan(&x)
	if errors.Is(err, pgx.ErrNoRows) {
		return domain.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("lock organization %s: %w", id, err)
	}
	return nil
}

// invitationOrg returns the organization of invitation id without locking anything.
func (s *Store) invitationOrg(ctx context.Context, id string) (string, error) {
	if !validUUID(id) {
		return "", domain.ErrNotFound
	}
	var orgID string
	if err := s.pool.QueryRow(ctx, `SELECT organization_id FROM invitations WHERE id = $1`, id).Scan(&orgID); err != nil {
		return "", translate(fmt.Errorf("find invitation %s: %w", id, err))
	}
	return orgID, nil
}

// RespondToInvitation accepts (accept true: the pending membership becomes active) or
// declines (the pending membership goes) invitation id, for the invited user only. Emits
// invitation_accepted, or invitation_declined and member_removed. Returns
// domain.ErrNotFound (not the caller's) and domain.ErrInvitationNotPending.
func (s *Store) RespondToInvitation(ctx context.Context, actor domain.Actor, id string, accept bool) (domain.Invitation, error) {
	if actor.UserID == "" {
		return domain.Invitation{}, domain.ErrForbidden
	}
	orgID, err := s.invitationOrg(ctx, id)
	if err != nil {
		return domain.Invitation{}, err
	}
	var inv domain.Invitation
	err = s.write(ctx, func(c *change) error {
		if err := lockOrgRow(ctx, c.tx, orgID); err != nil {
			return err
		}
		// The invited user, whose email is still the invited address.
		if err := scanInvitation(c.tx.QueryRow(ctx, `
			SELECT `+invitationColumns+` FROM invitations i
			WHERE i.id = $1 AND i.user_id = $2
			  AND EXISTS (SELECT 1 FROM users u WHERE u.id = i.user_id AND lower(u.email) = lower(i.email))
			FOR UPDATE OF i`, id, actor.UserID), &inv); err != nil {
			return translate(fmt.Errorf("find invitation %s: %w", id, err))
		}
		if inv.Status != domain.StatusPending || !inv.ExpiresAt.After(s.now()) {
			return domain.ErrInvitationNotPending
		}
		status := domain.StatusDeclined
		if accept {
			status = domain.StatusAccepted
		}
		return s.endInvitationTx(ctx, c, &inv, status, actor)
	})
	return inv, err
}

// endInvitationTx moves a locked pending invitation to status, updates the membership
// (accepted: active; declined or revoked: removed) and emits the events.
func (s *Store) endInvitationTx(ctx context.Context, c *change, inv *domain.Invitation, status domain.InvitationStatus, actor domain.Actor) error {
	if err := c.tx.QueryRow(ctx, `UPDATE invitations SET status = $2, responded_at = $3 WHERE id = $1 RETURNING status`,
		inv.ID, string(status), s.now()).Scan(&inv.Status); err != nil {
		return fmt.Errorf("update invitation: %w", err)
	}
	c.emit(invitationEndedEvent(status, inv.ID, inv.OrganizationID, inv.UserID))
	if status == domain.StatusAccepted {
		// The membership holds the admin flag (an admin may have changed it since the
		// invitation); accepting only makes it active.
		if _, err := c.tx.Exec(ctx, `
			UPDATE memberships SET pending = false
			WHERE organization_id = $1 AND user_id = $2`, inv.OrganizationID, inv.UserID); err != nil {
			return fmt.Errorf("accept membership: %w", err)
		}
		return nil
	}
	tag, err := c.tx.Exec(ctx, `DELETE FROM memberships WHERE organization_id = $1 AND user_id = $2 AND pending`, inv.OrganizationID, inv.UserID)
	if err != nil {
		return fmt.Errorf("remove pending membership: %w", err)
	}
	if tag.RowsAffected() > 0 {
		c.emit(memberRemovedEvent(inv.OrganizationID, inv.UserID, actor))
	}
	return nil
}

// RevokeInvitation revokes pending invitation id of orgID (admins); its pending
// membership goes. Emits invitation_revoked and member_removed. Returns
// domain.ErrInvitationNotPending.
func (s *Store) RevokeInvitation(ctx context.Context, actor domain.Actor, orgID, id string) error {
	return s.write(ctx, func(c *change) error {
		if _, err := lockOrg(ctx, c.tx, actor, orgID, domain.RoleAdmin); err != nil {
			return err
		}
		if !validUUID(id) {
			return domain.ErrNotFound
		}
		var inv domain.Invitation
		if err := scanInvitation(c.tx.QueryRow(ctx, `SELECT `+invitationColumns+` FROM invitations i
			WHERE i.id = $1 AND i.organization_id = $2 FOR UPDATE`, id, orgID), &inv); err != nil {
			return translate(fmt.Errorf("find invitation %s: %w", id, err))
		}
		if inv.Status != domain.StatusPending {
			return domain.ErrInvitationNotPending
		}
		return s.endInvitationTx(ctx, c, &inv, domain.StatusRevoked, actor)
	})
}

// RemindMember re-sends userID's invitation to orgID (admins) with a fresh link and a
// fresh expiry; an expired invitation becomes pending again. Emits invitation_reminded.
// Returns domain.ErrAlreadyActive when the user has no pending or expired invitation to
// this organization, domain.ErrNotFound when the user is not a member, and a
// *domain.RateLimitError (nothing changed) beyond a mail limit.
func (s *Store) RemindMember(ctx context.Context, actor domain.Actor, orgID, userID string) (domain.Invitation, error) {
	var inv domain.Invitation
	err := s.write(ctx, func(c *change) error {
		if _, err := lockOrg(ctx, c.tx, actor, orgID, domain.RoleAdmin); err != nil {
			return err
		}
		m, err := findMemberTx(ctx, c.tx, orgID, userID, false)
		if err != nil {
			return err
		}
		if m.Status != domain.MemberPending {
			return domain.ErrAlreadyActive
		}
		err = scanInvitation(c.tx.QueryRow(ctx, `SELECT `+invitationColumns+` FROM invitations i
			WHERE i.organization_id = $1 AND i.user_id = $2 AND i.status IN ('pending', 'expired')
			ORDER BY i.created_at DESC LIMIT 1 FOR UPDATE`, orgID, userID), &inv)
		if errors.Is(err, pgx.ErrNoRows) {
			return domain.ErrAlreadyActive
		}
		if err != nil {
			return fmt.Errorf("find invitation: %w", err)
		}
		if err := s.limitMailTx(ctx, c.tx, mailLimit{actor: actor, org: orgID, email: inv.Email}); err != nil {
			return err
		}
		return s.remindTx(ctx, c, &inv)
	})
	return inv, err
}

// RemindInvitation sends scheduled reminder number n (1, 2, ...) of invitation id, if it
// is still pending and unexpired and its scheduled reminder n was not sent yet (so a
// repeated or concurrent call sends nothing). next is the delay after the invitation of
// reminder n+1 (0 for the last): when that one is due too (the reminder service was
// down through both), only it is sent, not two at once. It reports whether a reminder
// was sent. Returns a *domain.RateLimitError, having changed nothing, when the invitee's
// address had its limit of emails this hour: the reminder is due again after its
// RetryAfter.
func (s *Store) RemindInvitation(ctx context.Context, id string, n int, next time.Duration) (bool, error) {
	orgID, err := s.invitationOrg(ctx, id)
	if err != nil {
		return false, err
	}
	var sent bool
	err = s.write(ctx, func(c *change) error {
		if err := lockOrgRow(ctx, c.tx, orgID); err != nil {
			return err
		}
		var (
			inv       domain.Invitation
			scheduled int
		)
		if err := scanInvitation(c.tx.QueryRow(ctx, `SELECT `+invitationColumns+`, i.scheduled_reminders FROM invitations i WHERE i.id = $1 FOR UPDATE`, id), &inv, &scheduled); err != nil {
			return translate(fmt.Errorf("find invitation %s: %w", id, err))
		}
		now := s.now()
		if inv.Status != domain.StatusPending || scheduled >= n || !inv.ExpiresAt.After(now) {
			return nil
		}
		if next > 0 && !inv.CreatedAt.Add(next).After(now) {
			return nil // superseded by the next reminder, due as well
		}
		// A scheduled reminder counts against its address's limit (not its
		// organization's: no member caused it); beyond it, the whole reminder waits
		// (the caller retries after the error's RetryAfter).
		if err := s.limitMailTx(ctx, c.tx, mailLimit{email: inv.Email}); err != nil {
			return err
		}
		if _, err := c.tx.Exec(ctx, `UPDATE invitations SET scheduled_reminders = $2 WHERE id = $1`, id, n); err != nil {
			return fmt.Errorf("record scheduled reminder: %w", err)
		}
		sent = true
		return s.remindTx(ctx, c, &inv)
	})
	return sent, err
}

func (s *Store) remindTx(ctx context.Context, c *change, inv *domain.Invitation) error {
	now := s.now()
	if err := scanInvitation(c.tx.QueryRow(ctx, `
		UPDATE invitations AS i SET status = 'pending', expires_at = $2, reminders_sent = reminders_sent + 1, last_sent_at = $3,
			-- an invitee who became active meanwhile accepts while logged in
			require_acceptance = require_acceptance OR (SELECT is_active FROM users WHERE id = i.user_id)
		WHERE i.id = $1 RETURNING `+invitationColumns, inv.ID, now.Add(s.cfg.InvitationTTL), now), inv); err != nil {
		return translate(fmt.Errorf("renew invitation: %w", err))
	}
	c.emit(domain.Event{Type: domain.InvitationReminded, Subject: inv.OrganizationID, OrganizationID: inv.OrganizationID, Data: map[string]any{
		"invitation_id": inv.ID, "organization_id": inv.OrganizationID, "reminders_sent": inv.RemindersSent,
	}})
	c.enqueue(jobs.SendReminderArgs{InvitationID: inv.ID, Reminder: inv.RemindersSent})
	return nil
}

// ExpireInvitations marks up to limit pending invitations past their expiry as expired,
// one organization per transaction, emitting invitation_expired for each. Their pending
// memberships stay, so that a reminder can renew them. It returns how many expired.
func (s *Store) ExpireInvitations(ctx context.Context, limit int) (int, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT DISTINCT organization_id FROM (
			SELECT organization_id FROM invitations WHERE status = 'pending' AND expires_at <= $1
			ORDER BY expires_at LIMIT $2) due`, s.now(), limit)
	if err != nil {
		return 0, fmt.Errorf("find expired invitations: %w", err)
	}
	orgs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, fmt.Errorf("find expired invitations: %w", err)
	}
	total := 0
	for _, orgID := range orgs {
		err := s.write(ctx, func(c *change) error {
			if err := lockOrgRow(ctx, c.tx, orgID); err != nil {
				return err
			}
			rows, err := c.tx.Query(ctx, `
				UPDATE invitations SET status = 'expired'
				WHERE organization_id = $1 AND status = 'pending' AND expires_at <= $2
				RETURNING id, user_id`, orgID, s.now())
			if err != nil {
				return fmt.Errorf("expire invitations: %w", err)
			}
			var id, userID string
			_, err = pgx.ForEachRow(rows, []any{&id, &userID}, func() error {
				c.emit(invitationEndedEvent(domain.StatusExpired, id, orgID, userID))
				total++
				return nil
			})
			return err
		})
		if err != nil && !errors.Is(err, domain.ErrNotFound) {
			return total, err
		}
	}
	return total, nil
}

// CountPendingInvitations returns how many invitations are pending (a gauge).
func (s *Store) CountPendingInvitations(ctx context.Context) (int64, error) {
	var n int64
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM invitations WHERE status = 'pending'`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count pending invitations: %w", err)
	}
	return n, nil
}

// nullJSON passes an empty document as SQL NULL.
func nullJSON(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return string(b)
}
