package httpapi

import (
	"context"
	"time"

	"github.com/orgs-dev/orgs/internal/domain"
	"github.com/orgs-dev/orgs/internal/postgres"
	"github.com/orgs-dev/orgs/internal/token"
)

// Store is what the API reads and changes; *postgres.Store implements it.
type Store interface {
	sessionFinder
	idempotencyStore

	FindUserForLogin(ctx context.Context, email string) (domain.User, string, error)
	CreateSession(ctx context.Context, userID string, tokenHash []byte) (time.Time, error)
	DeleteSession(ctx context.Context, tokenHash []byte) error
	FindUsers(ctx context.Context, f postgres.UserFilter) (postgres.Page[domain.User], error)
	UpsertUser(ctx context.Context, actor domain.Actor, in postgres.UpsertUserInput) (domain.User, bool, error)

	SignUp(ctx context.Context, in postgres.SignUpInput) (domain.User, domain.Organization, error)
	ResendActivation(ctx context.Context, email string) error
	FindActivationRecipient(ctx context.Context, userID string) (token.Recipient, error)
	FindActivation(ctx context.Context, userID string) (domain.User, []domain.Organization, error)
	Activate(ctx context.Context, link token.Recipient, in postgres.ActivateInput) (domain.User, time.Time, error)
	DeclineActivation(ctx context.Context, link token.Recipient) (domain.User, error)

	CreateOrganization(ctx context.Context, actor domain.Actor, in postgres.CreateOrganizationInput) (domain.Organization, error)
	FindOrganization(ctx context.Context, actor domain.Actor, id string) (domain.Organization, error)
	FindOrganizations(ctx context.Context, actor domain.Actor, f postgres.OrganizationFilter) (postgres.Page[domain.Organization], error)
	UpdateOrganization(ctx context.Context, actor domain.Actor, id string, in postgres.UpdateOrganizationInput) (domain.Organization, error)
	DeleteOrganization(ctx context.Context, actor domain.Actor, id string) error
	TransferOwnership(ctx context.Context, actor domain.Actor, id, newOwnerID string) (domain.Organization, error)

	FindMembers(ctx context.Context, actor domain.Actor, orgID string, after postgres.Cursor, limit int) (postgres.Page[domain.Member], error)
	FindMember(ctx context.Context, actor domain.Actor, orgID, userID string) (domain.Member, error)
	AddMember(ctx context.Context, actor domain.Actor, orgID string, in postgres.AddMemberInput) (postgres.AddMemberResult, error)
	AddMembers(ctx context.Context, actor domain.Actor, orgID string, items []postgres.AddMemberInput) ([]postgres.BulkResult, error)
	UpdateMember(ctx context.Context, actor domain.Actor, orgID, userID string, in postgres.UpdateMemberInput) (domain.Member, error)
	RemoveMember(ctx context.Context, actor domain.Actor, orgID, userID string) error
	RemindMember(ctx context.Context, actor domain.Actor, orgID, userID string) (domain.Invitation, error)

	FindInvitations(ctx context.Context, actor domain.Actor, orgID string, f postgres.InvitationFilter) (postgres.Page[domain.Invitation], error)
	FindMyInvitations(ctx context.Context, actor domain.Actor) ([]domain.Invitation, error)
	RevokeInvitation(ctx context.Context, actor domain.Actor, orgID, id string) error
	RespondToInvitation(ctx context.Context, actor domain.Actor, id string, accept bool) (domain.Invitation, error)

	FindEvents(ctx context.Context, after int64, limit int) ([]postgres.StoredEvent, error)
}

// tokenSigner mints and verifies activation tokens; *token.Signer implements it.
type tokenSigner interface {
	Activation(r token.Recipient, expires time.Time) string
	VerifyActivation(r token.Recipient, token string, now time.Time) (time.Time, error)
}

var _ Store = (*postgres.Store)(nil)

// handlers holds the dependencies of the API's operations.
type handlers struct {
	store  Store
	signer tokenSigner
	cfg    Config
}

// nextCursor encodes a page's next cursor, "" on the last page.
func nextCursor(c *postgres.Cursor) string {
	if c == nil {
		return ""
	}
	return encodeCursor(c.Time, c.ID)
}
