package httpapi

import (
	"context"
	"encoding/json"
	"time"

	"github.com/orgs-dev/orgs/internal/domain"
)

// A sign-up may reuse an existing inactive user: someone invited to an organization, with
// the name an admin or the customer's system gave them. Anyone may sign up with any
// address, so the answer to a caller without a service key holds nothing of that user: no
// id (also the organization's owner_id), no stored name, email spelling, external_id or
// creation time; only what the caller sent and the new organization. The answer is then
// the same for a new and for an invited address, and tells no one who was invited. The
// person at the address gets their id with the activation link (and in the activation's
// answer); a service key, which may read every user anyway, sees the full representation.

// signupUser is the user of a sign-up's answer; id, external_id and created_at are given
// to a service key only.
type signupUser struct {
	ID         string     `json:"id,omitempty" format:"uuid" doc:"Only for a service key"`
	Email      string     `json:"email"`
	Name       string     `json:"name"`
	IsActive   bool       `json:"is_active"`
	ExternalID *string    `json:"external_id,omitempty" doc:"Only for a service key"`
	CreatedAt  *time.Time `json:"created_at,omitempty" doc:"Only for a service key"`
}

// signupOrganization is the organization of a sign-up's answer; owner_id is given to a
// service key only.
type signupOrganization struct {
	ID        string          `json:"id" format:"uuid"`
	Name      string          `json:"name"`
	Slug      string          `json:"slug"`
	IsActive  bool            `json:"is_active"`
	OwnerID   string          `json:"owner_id,omitempty" format:"uuid" doc:"Only for a service key"`
	Metadata  json.RawMessage `json:"metadata"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`
}

type signupOutput struct {
	Body struct {
		User         signupUser         `json:"user"`
		Organization signupOrganization `json:"organization"`
	}
}

// signupAnswer is the answer to sign-up in: all of u and org for a service key, else only
// what the caller sent and the new organization without its owner.
func signupAnswer(ctx context.Context, in signupBody, u domain.User, org domain.Organization) *signupOutput {
	out := &signupOutput{}
	out.Body.Organization = signupOrganization{
		ID: org.ID, Name: org.Name, Slug: org.Slug, IsActive: org.IsActive, Metadata: org.Metadata,
		CreatedAt: org.CreatedAt, UpdatedAt: org.UpdatedAt,
	}
	if actorFrom(ctx).IsService() {
		created := u.CreatedAt
		out.Body.User = signupUser{ID: u.ID, Email: u.Email, Name: u.Name, IsActive: u.IsActive, ExternalID: u.ExternalID, CreatedAt: &created}
		out.Body.Organization.OwnerID = org.OwnerID
		return out
	}
	out.Body.User = signupUser{Email: in.Email, Name: in.Name, IsActive: false}
	return out
}
