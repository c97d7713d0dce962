package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/orgs-dev/orgs/internal/domain"
)

// FindInvitationEmail returns invitation id with its organization, invitee and inviter.
// Returns domain.ErrNotFound when it is gone (its organization was deleted).
func (s *Store) FindInvitationEmail(ctx context.Context, id string) (domain.InvitationEmail, error) {
	var e domain.InvitationEmail
	u := &e.User
	err := scanInvitation(s.pool.QueryRow(ctx, `
		SELECT `+invitationColumns+`, i.message, `+orgColumns+`, `+userColumns+`
		FROM invitations i JOIN organizations o ON o.id = i.organization_id JOIN users u ON u.id = i.user_id
		WHERE i.id = $1`, id), &e.Invitation, &e.Message,
		&e.Organization.ID, &e.Organization.Name, &e.Organization.Slug, &e.Organization.IsActive, &e.Organization.OwnerID,
		&e.Organization.Metadata, &e.Organization.CreatedAt, &e.Organization.UpdatedAt,
		&u.ID, &u.Email, &u.Name, &u.IsActive, &u.ExternalID, &u.CreatedAt)
	if err != nil {
		return e, translate(fmt.Errorf("find invitation %s: %w", id, err))
	}
	if e.Invitation.InvitedBy != nil {
		inviter, err := s.FindUserByID(ctx, *e.Invitation.InvitedBy)
		if err != nil && !errors.Is(err, domain.ErrNotFound) {
			return e, err
		}
		if err == nil {
			e.Inviter = &inviter
		}
	}
	return e, nil
}

// FindActivationEmail returns inactive user userID and the organizations they would join.
// Returns domain.ErrTokenInvalid when there is nothing to activate any more.
func (s *Store) FindActivationEmail(ctx context.Context, userID string) (domain.ActivationEmail, error) {
	u, orgs, err := s.FindActivation(ctx, userID)
	return domain.ActivationEmail{User: u, Organizations: orgs}, err
}

// FindNotificationEmail returns userID's membership of orgID for the notification email.
// Returns domain.ErrNotFound when the membership is gone.
func (s *Store) FindNotificationEmail(ctx context.Context, orgID, userID, actorID string) (domain.NotificationEmail, error) {
	var e domain.NotificationEmail
	u := &e.User
	err := scanOrg(s.pool.QueryRow(ctx, `
		SELECT `+orgColumns+`, `+userColumns+`
		FROM memberships m JOIN organizations o ON o.id = m.organization_id JOIN users u ON u.id = m.user_id
		WHERE m.organization_id = $1 AND m.user_id = $2`, orgID, userID), &e.Organization,
		&u.ID, &u.Email, &u.Name, &u.IsActive, &u.ExternalID, &u.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return e, domain.ErrNotFound
	}
	if err != nil {
		return e, fmt.Errorf("find notification: %w", err)
	}
	if actorID != "" {
		a, err := s.FindUserByID(ctx, actorID)
		if err == nil {
			e.Actor = &a
		} else if !errors.Is(err, domain.ErrNotFound) {
			return e, err
		}
	}
	return e, nil
}
