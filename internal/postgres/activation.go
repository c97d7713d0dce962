package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/orgs-dev/orgs/internal/domain"
	"github.com/orgs-dev/orgs/internal/jobs"
	"github.com/orgs-dev/orgs/internal/token"
)

// SignUpInput is a sign-up: a new user and their new organization.
type SignUpInput struct {
	Email            string
	Name             string
	OrganizationName string
	OrganizationSlug *string
}

// SignUp creates an inactive user (or takes the existing inactive user with that email)
// and a new inactive organization owned by them, and enqueues the activation email.
// Emits org_created, member_added and user_registered. Returns domain.ErrEmailTaken
// (nothing created, nothing sent) when the email belongs to an active user,
// domain.ErrSlugTaken, and a *domain.RateLimitError (nothing created) beyond the
// address's mail limit.
func (s *Store) SignUp(ctx context.Context, in SignUpInput) (domain.User, domain.Organization, error) {
	var (
		user domain.User
		org  domain.Organization
	)
	err := s.write(ctx, func(c *change) error {
		var err error
		user, _, err = ensureUserTx(ctx, c.tx, in.Email, in.Name)
		if err != nil {
			return err
		}
		if user.IsActive {
			return domain.ErrEmailTaken
		}
		// An anonymous sign-up names a user only if nobody did (an invited user keeps the
		// name an admin or the customer's system gave).
		if in.Name != "" && user.Name == "" {
			if err := c.tx.QueryRow(ctx, `UPDATE users SET name = $2, updated_at = now() WHERE id = $1 RETURNING name`, user.ID, in.Name).Scan(&user.Name); err != nil {
				return fmt.Errorf("update user name: %w", err)
			}
		}
		org, err = createOrganizationTx(ctx, c, user, CreateOrganizationInput{Name: in.OrganizationName, Slug: in.OrganizationSlug}, false, domain.Actor{UserID: user.ID})
		if err != nil {
			return err
		}
		c.emit(domain.Event{Type: domain.UserRegistered, Subject: org.ID, OrganizationID: org.ID, Data: map[string]any{
			"user": user, "organization_id": org.ID,
		}})
		if err := s.limitMailTx(ctx, c.tx, mailLimit{email: user.Email}); err != nil {
			return err
		}
		c.enqueue(jobs.SendActivationArgs{UserID: user.ID, ExpiresAt: s.now().Add(s.cfg.InvitationTTL).Truncate(time.Second)})
		return nil
	})
	return user, org, err
}

// ResendActivation enqueues a fresh activation email for the inactive user with email, if
// there is one with something to join; otherwise it does nothing (no account
// enumeration: the caller answers the same either way). Beyond the address's mail limit
// it sends nothing, and answers the same too.
func (s *Store) ResendActivation(ctx context.Context, email string) error {
	var userID string
	err := s.pool.QueryRow(ctx, `SELECT id FROM users WHERE lower(email) = lower($1) AND NOT is_active`, email).Scan(&userID)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("find user for resend: %w", err)
	}
	orgs, err := joinableOrgs(ctx, s.pool, userID, s.now())
	if err != nil || len(orgs) == 0 {
		return err
	}
	err = s.write(ctx, func(c *change) error {
		if err := s.limitMailTx(ctx, c.tx, mailLimit{email: email}); err != nil {
			return err
		}
		c.enqueue(jobs.SendActivationArgs{UserID: userID, ExpiresAt: s.now().Add(s.cfg.InvitationTTL).Truncate(time.Second)})
		return nil
	})
	if isMailLimited(err) {
		return nil // the caller answers the same either way: nothing to enumerate
	}
	return err
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// joinableOrgsSQL selects the organizations user $1 would join by activating at $2: a
// union, so that each half uses its index (an OR of the two scanned every organization).
const joinableOrgsSQL = `
	SELECT ` + orgColumns + ` FROM organizations o
	WHERE o.id IN (SELECT organization_id FROM invitations WHERE user_id = $1 AND status = 'pending' AND expires_at > $2)
	UNION
	SELECT ` + orgColumns + ` FROM organizations o WHERE o.owner_id = $1 AND NOT o.is_active
	ORDER BY id`

// joinableOrgs returns the organizations an inactive user would join by activating:
// those with a pending, unexpired invitation, and the inactive ones they own (sign-up).
func joinableOrgs(ctx context.Context, q querier, userID string, now time.Time) ([]domain.Organization, error) {
	rows, err := q.Query(ctx, joinableOrgsSQL, userID, now)
	if err != nil {
		return nil, fmt.Errorf("find organizations to join: %w", err)
	}
	orgs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.Organization, error) {
		var o domain.Organization
		return o, scanOrg(r, &o)
	})
	if err != nil {
		return nil, fmt.Errorf("find organizations to join: %w", err)
	}
	return orgs, nil
}

// FindActivationRecipient returns what an activation link for user userID is bound to:
// the user's current address and last activation. Links are made for it (and sent to its
// address) and checked against it. Returns domain.ErrTokenInvalid when there is no such
// user.
func (s *Store) FindActivationRecipient(ctx context.Context, userID string) (token.Recipient, error) {
	r := token.Recipient{UserID: userID}
	if !validUUID(userID) {
		return r, domain.ErrTokenInvalid
	}
	var activated *time.Time
	err := s.reader(ctx).QueryRow(ctx, `SELECT email, links_reset_at FROM users WHERE id = $1`, userID).Scan(&r.Email, &activated)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, domain.ErrTokenInvalid
	}
	if err != nil {
		return r, fmt.Errorf("find activation recipient %s: %w", userID, err)
	}
	if activated != nil {
		r.LinksResetAt = *activated
	}
	return r, nil
}

// lockRecipientTx locks user link.UserID and returns domain.ErrTokenInvalid unless the
// user is still inactive and still link's recipient: the same address, and not activated
// since the link was checked (a user deactivated after an activation is not).
func lockRecipientTx(ctx context.Context, tx pgx.Tx, link token.Recipient, u *domain.User) error {
	var activated *time.Time
	err := scanUser(tx.QueryRow(ctx, `SELECT `+userColumns+`, u.links_reset_at FROM users u WHERE u.id = $1 FOR UPDATE`, link.UserID), u, &activated)
	if errors.Is(err, pgx.ErrNoRows) {
		return domain.ErrTokenInvalid
	}
	if err != nil {
		return fmt.Errorf("find user: %w", err)
	}
	var at time.Time
	if activated != nil {
		at = *activated
	}
	if u.IsActive || !strings.EqualFold(u.Email, link.Email) || !at.Equal(link.LinksResetAt) {
		return domain.ErrTokenInvalid
	}
	return nil
}

// FindActivation returns the inactive user userID and the organizations they will join,
// after the caller verified the link's signature. Returns domain.ErrTokenInvalid when the
// user is unknown or already active, or has nothing left to join (their invitations were
// revoked, declined or expired).
func (s *Store) FindActivation(ctx context.Context, userID string) (domain.User, []domain.Organization, error) {
	u, err := s.FindUserByID(ctx, userID)
	if err != nil {
		if errors.Is(err, domain.ErrNotFound) {
			return u, nil, domain.ErrTokenInvalid
		}
		return u, nil, err
	}
	if u.IsActive {
		return u, nil, domain.ErrTokenInvalid
	}
	orgs, err := joinableOrgs(ctx, s.pool, userID, s.now())
	if err != nil {
		return u, nil, err
	}
	if len(orgs) == 0 {
		return u, nil, domain.ErrTokenInvalid
	}
	return u, orgs, nil
}

// ActivateInput completes an activation.
type ActivateInput struct {
	PasswordHash *string // nil: keep none (a service key activating for its own credentials)
	Name         *string
	SessionHash  []byte // the new session's token hash
}

// Activate activates inactive user link.UserID through a link checked for link
// (FindActivationRecipient): sets the password and name, activates the inactive
// organizations they own, accepts their pending invitations, records the activation's
// time (which kills every link made before), and opens a session. Emits
// invitation_accepted per invitation, org_updated per organization activated, then
// user_activated. Returns domain.ErrTokenInvalid as FindActivation, and when the user's
// address changed or the user was activated since the link was checked.
func (s *Store) Activate(ctx context.Context, link token.Recipient, in ActivateInput) (domain.User, time.Time, error) {
	userID := link.UserID
	if !validUUID(userID) {
		return domain.User{}, time.Time{}, domain.ErrTokenInvalid
	}
	var (
		user    domain.User
		expires time.Time
	)
	err := s.write(ctx, func(c *change) error {
		// Lock the organizations first (in id order), as every write transaction does.
		orgs, err := joinableOrgs(ctx, c.tx, userID, s.now())
		if err != nil {
			return err
		}
		if len(orgs) == 0 {
			return domain.ErrTokenInvalid
		}
		ids := make([]string, len(orgs))
		for i, o := range orgs {
			ids[i] = o.ID
		}
		if err := lockOrgsTx(ctx, c.tx, ids); err != nil {
			return err
		}
		if err := lockRecipientTx(ctx, c.tx, link, &user); err != nil {
			return err
		}
		// What the user joins, read again under the locks (an invitation may have been
		// revoked meanwhile).
		invs, err := collectInvitations(c.tx.Query(ctx, `SELECT `+invitationColumns+` FROM invitations i
			WHERE i.user_id = $1 AND i.status = 'pending' AND i.expires_at > $2 AND i.organization_id = ANY($3)
			ORDER BY i.organization_id FOR UPDATE`, userID, s.now(), ids))
		if err != nil {
			return fmt.Errorf("find invitations: %w", err)
		}
		var owned []string
		rows, err := c.tx.Query(ctx, `SELECT id FROM organizations WHERE owner_id = $1 AND NOT is_active AND id = ANY($2) ORDER BY id`, userID, ids)
		if err != nil {
			return fmt.Errorf("find organizations to activate: %w", err)
		}
		if owned, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return fmt.Errorf("find organizations to activate: %w", err)
		}
		var joined []string
		for _, inv := range invs {
			joined = append(joined, inv.OrganizationID)
		}
		for _, id := range owned {
			if !slices.Contains(joined, id) {
				joined = append(joined, id)
			}
		}
		if len(joined) == 0 {
			return domain.ErrTokenInvalid
		}
		slices.Sort(joined)

		if err := scanUser(c.tx.QueryRow(ctx, `
			UPDATE users AS u SET is_active = true, password_hash = coalesce($2, u.password_hash),
				name = coalesce($3, u.name), links_reset_at = `+linksResetNow+`, updated_at = now()
			WHERE u.id = $1 RETURNING `+userColumns, userID, in.PasswordHash, in.Name), &user); err != nil {
			return fmt.Errorf("activate user: %w", err)
		}
		actor := domain.Actor{UserID: userID}
		for i := range invs {
			if err := s.endInvitationTx(ctx, c, &invs[i], domain.StatusAccepted, actor); err != nil {
				return err
			}
		}
		if len(owned) > 0 {
			rows, err := c.tx.Query(ctx, `
				UPDATE organizations AS o SET is_active = true, updated_at = now()
				WHERE o.id = ANY($1) RETURNING `+orgColumns, owned)
			if err != nil {
				return fmt.Errorf("activate organizations: %w", err)
			}
			activated, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.Organization, error) {
				var o domain.Organization
				return o, scanOrg(r, &o)
			})
			if err != nil {
				return fmt.Errorf("activate organizations: %w", err)
			}
			for _, o := range activated {
				c.emit(domain.Event{Type: domain.OrgUpdated, Subject: o.ID, OrganizationID: o.ID, Data: map[string]any{
					"organization": o, "changed": []string{"is_active"}, "actor_id": userID,
				}})
			}
		}
		c.emit(domain.Event{Type: domain.UserActivated, Subject: userID, Data: map[string]any{
			"user": user, "organization_ids": joined,
		}})
		if in.SessionHash != nil {
			expires, err = s.createSessionTx(ctx, c.tx, userID, in.SessionHash)
			return err
		}
		return nil
	})
	return user, expires, err
}

// DeclineActivation declines all of inactive user link.UserID's pending invitations
// through a link checked for link: the pending memberships go, the user stays inactive.
// Emits invitation_declined and member_removed per invitation. Returns
// domain.ErrTokenInvalid when the user is active or has no pending invitation, and when
// the user's address changed or the user was activated since the link was checked.
func (s *Store) DeclineActivation(ctx context.Context, link token.Recipient) (domain.User, error) {
	userID := link.UserID
	u, _, err := s.FindActivation(ctx, userID)
	if err != nil {
		return u, err
	}
	err = s.write(ctx, func(c *change) error {
		invs, err := collectInvitations(c.tx.Query(ctx, `SELECT `+invitationColumns+` FROM invitations i
			WHERE i.user_id = $1 AND i.status = 'pending' ORDER BY i.organization_id`, userID))
		if err != nil {
			return fmt.Errorf("find invitations: %w", err)
		}
		if len(invs) == 0 {
			return domain.ErrTokenInvalid
		}
		ids := make([]string, 0, len(invs))
		for _, inv := range invs {
			if !slices.Contains(ids, inv.OrganizationID) {
				ids = append(ids, inv.OrganizationID)
			}
		}
		if err := lockOrgsTx(ctx, c.tx, ids); err != nil {
			return err
		}
		if err := lockRecipientTx(ctx, c.tx, link, &u); err != nil {
			return err
		}
		actor := domain.Actor{UserID: userID}
		// The link dies with its use (a sign-up's own organization still waiting
		// for activation gets a new link by POST /v1/activation/resend).
		if _, err := c.tx.Exec(ctx, `UPDATE users u SET links_reset_at = `+linksResetNow+` WHERE id = $1`, userID); err != nil {
			return fmt.Errorf("reset links: %w", err)
		}
		for i := range invs {
			var status domain.InvitationStatus
			if err := c.tx.QueryRow(ctx, `SELECT status FROM invitations WHERE id = $1 FOR UPDATE`, invs[i].ID).Scan(&status); err != nil {
				return fmt.Errorf("lock invitation: %w", err)
			}
			if status != domain.StatusPending {
				continue
			}
			if err := s.endInvitationTx(ctx, c, &invs[i], domain.StatusDeclined, actor); err != nil {
				return err
			}
		}
		return nil
	})
	return u, err
}
