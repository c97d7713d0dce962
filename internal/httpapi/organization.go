package httpapi

import (
	"bytes"
	"context"
	"encoding/json"

	"github.com/orgs-dev/orgs/internal/domain"
	"github.com/orgs-dev/orgs/internal/postgres"
)

// checkMetadata records a problem at loc unless raw is a JSON object of at most 16 KiB.
func checkMetadata(v *domain.Validator, loc string, raw json.RawMessage) {
	if raw == nil {
		return
	}
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' {
		v.Add(loc, "must be a JSON object")
		return
	}
	if len(raw) > domain.MaxMetadataBytes {
		v.Add(loc, "must be at most 16 KiB")
	}
}

// checkSlug records a problem at loc when slug is given and invalid.
func checkSlug(v *domain.Validator, loc string, slug *string) {
	if slug == nil {
		return
	}
	if msg := domain.ValidSlug(*slug); msg != "" {
		v.Add(loc, msg)
	}
}

type organizationOutput struct {
	Body domain.Organization
}

type createOrganizationInput struct {
	Body struct {
		Name     string          `json:"name" maxLength:"200"`
		Slug     *string         `json:"slug,omitempty" maxLength:"100" doc:"Generated from the name when left out"`
		Metadata json.RawMessage `json:"metadata,omitempty" doc:"A JSON object of at most 16 KiB"`
	}
}

func (h *handlers) createOrganization(ctx context.Context, in *createOrganizationInput) (*organizationOutput, error) {
	actor, err := requireUser(ctx)
	if err != nil {
		return nil, err
	}
	var v domain.Validator
	checkName(&v, "body.name", in.Body.Name, true)
	checkSlug(&v, "body.slug", in.Body.Slug)
	checkMetadata(&v, "body.metadata", in.Body.Metadata)
	if err := v.Err(); err != nil {
		return nil, err
	}
	org, err := h.store.CreateOrganization(ctx, actor, postgres.CreateOrganizationInput{
		Name: in.Body.Name, Slug: in.Body.Slug, Metadata: in.Body.Metadata,
	})
	if err != nil {
		return nil, err
	}
	return &organizationOutput{Body: org}, nil
}

type orgPath struct {
	OrgID string `path:"org_id"`
}

func (h *handlers) getOrganization(ctx context.Context, in *orgPath) (*organizationOutput, error) {
	actor, err := requireActor(ctx)
	if err != nil {
		return nil, err
	}
	org, err := h.store.FindOrganization(ctx, actor, in.OrgID)
	if err != nil {
		return nil, err
	}
	return &organizationOutput{Body: org}, nil
}

type listOrganizationsInput struct {
	IncludeInactive bool `query:"include_inactive" doc:"Also list inactive organizations"`
	Pagination
}

type organizationListOutput struct {
	Body listResponse[domain.Organization]
}

func (h *handlers) listOrganizations(ctx context.Context, in *listOrganizationsInput) (*organizationListOutput, error) {
	actor, err := requireActor(ctx)
	if err != nil {
		return nil, err
	}
	p, err := h.store.FindOrganizations(ctx, actor, postgres.OrganizationFilter{
		IncludeInactive: in.IncludeInactive, After: postgres.Cursor{Time: in.After, ID: in.AfterID}, Limit: in.Limit,
	})
	if err != nil {
		return nil, err
	}
	return &organizationListOutput{Body: newList(p.Items, nextCursor(p.Next)).Body}, nil
}

type updateOrganizationInput struct {
	OrgID string `path:"org_id"`
	Body  struct {
		Name     *string         `json:"name,omitempty" maxLength:"200"`
		Slug     *string         `json:"slug,omitempty" maxLength:"100"`
		IsActive *bool           `json:"is_active,omitempty"`
		Metadata json.RawMessage `json:"metadata,omitempty" doc:"Replaces the metadata; a JSON object of at most 16 KiB"`
	}
}

func (h *handlers) updateOrganization(ctx context.Context, in *updateOrganizationInput) (*organizationOutput, error) {
	actor, err := requireActor(ctx)
	if err != nil {
		return nil, err
	}
	var v domain.Validator
	if in.Body.Name != nil {
		checkName(&v, "body.name", *in.Body.Name, true)
	}
	checkSlug(&v, "body.slug", in.Body.Slug)
	checkMetadata(&v, "body.metadata", in.Body.Metadata)
	if err := v.Err(); err != nil {
		return nil, err
	}
	org, err := h.store.UpdateOrganization(ctx, actor, in.OrgID, postgres.UpdateOrganizationInput{
		Name: in.Body.Name, Slug: in.Body.Slug, IsActive: in.Body.IsActive, Metadata: in.Body.Metadata,
	})
	if err != nil {
		return nil, err
	}
	return &organizationOutput{Body: org}, nil
}

func (h *handlers) deleteOrganization(ctx context.Context, in *orgPath) (*struct{}, error) {
	actor, err := requireActor(ctx)
	if err != nil {
		return nil, err
	}
	return nil, h.store.DeleteOrganization(ctx, actor, in.OrgID)
}

type transferOwnershipInput struct {
	OrgID string `path:"org_id"`
	Body  struct {
		UserID string `json:"user_id" maxLength:"36" doc:"An active member, who becomes owner and admin"`
	}
}

func (h *handlers) transferOwnership(ctx context.Context, in *transferOwnershipInput) (*organizationOutput, error) {
	actor, err := requireActor(ctx)
	if err != nil {
		return nil, err
	}
	org, err := h.store.TransferOwnership(ctx, actor, in.OrgID, in.Body.UserID)
	if err != nil {
		return nil, err
	}
	return &organizationOutput{Body: org}, nil
}
