package httpapi

import (
	"context"

	"github.com/orgs-dev/orgs/internal/domain"
	"github.com/orgs-dev/orgs/internal/postgres"
)

type listInvitationsInput struct {
	OrgID  string `path:"org_id"`
	Status string `query:"status" enum:"pending,accepted,declined,revoked,expired" doc:"Only invitations with this status"`
	Pagination
}

func (h *handlers) listInvitations(ctx context.Context, in *listInvitationsInput) (*invitationListOutput, error) {
	actor, err := requireActor(ctx)
	if err != nil {
		return nil, err
	}
	p, err := h.store.FindInvitations(ctx, actor, in.OrgID, postgres.InvitationFilter{
		Status: domain.InvitationStatus(in.Status), After: postgres.Cursor{Time: in.After, ID: in.AfterID}, Limit: in.Limit,
	})
	if err != nil {
		return nil, err
	}
	return &invitationListOutput{Body: newList(p.Items, nextCursor(p.Next)).Body}, nil
}

type revokeInvitationInput struct {
	OrgID        string `path:"org_id"`
	InvitationID string `path:"invitation_id"`
}

func (h *handlers) revokeInvitation(ctx context.Context, in *revokeInvitationInput) (*struct{}, error) {
	actor, err := requireActor(ctx)
	if err != nil {
		return nil, err
	}
	return nil, h.store.RevokeInvitation(ctx, actor, in.OrgID, in.InvitationID)
}

type invitationPath struct {
	InvitationID string `path:"invitation_id"`
}

func (h *handlers) acceptInvitation(ctx context.Context, in *invitationPath) (*invitationOutput, error) {
	return h.respond(ctx, in.InvitationID, true)
}

func (h *handlers) declineInvitation(ctx context.Context, in *invitationPath) (*invitationOutput, error) {
	return h.respond(ctx, in.InvitationID, false)
}

func (h *handlers) respond(ctx context.Context, id string, accept bool) (*invitationOutput, error) {
	actor, err := requireUser(ctx)
	if err != nil {
		return nil, err
	}
	inv, err := h.store.RespondToInvitation(ctx, actor, id, accept)
	if err != nil {
		return nil, err
	}
	return &invitationOutput{Body: inv}, nil
}
