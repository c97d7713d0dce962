package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"

	"github.com/google/uuid"

	"github.com/orgs-dev/orgs/internal/domain"
	"github.com/orgs-dev/orgs/internal/postgres"
)

// checkMetadata records a problem at loc unless raw is a JSON object of at most 16 KiB
// whose keys and strings can be stored (no NUL), and returns it normalized: escapes that
// Postgres' jsonb refuses (a lone surrogate like \ud800) become U+FFFD.
func checkMetadata(v *domain.Validator, loc string, raw json.RawMessage) json.RawMessage {
	if raw == nil {
		return nil
	}
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' {
		v.Add(loc, "must be a JSON object")
		return nil
	}
	if len(raw) > domain.MaxMetadataBytes {
		v.Add(loc, "must be at most 16 KiB")
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		v.Add(loc, "must be a JSON object")
		return nil
	}
	if !storableJSON(doc) || lonelySurrogate(raw) {
		v.Add(loc, "must not contain NUL characters or unpaired surrogates")
		return nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		v.Add(loc, "must be a JSON object")
		return nil
	}
	return bytes.TrimSpace(buf.Bytes())
}

// storableJSON reports whether no key or string in doc holds a NUL character.
func storableJSON(doc any) bool {
	switch d := doc.(type) {
	case string:
		return strings.IndexByte(d, 0) < 0
	case map[string]any:
		for k, x := range d {
			if strings.IndexByte(k, 0) >= 0 || !storableJSON(x) {
				return false
			}
		}
	case []any:
		for _, x := range d {
			if !storableJSON(x) {
				return false
			}
		}
	}
	return true
}

// lonelySurrogate reports whether raw JSON holds a \uD800-\uDFFF escape that is not a
// high surrogate followed by a low one: Go would decode it to U+FFFD, Postgres refuses it,
// and the caller's data would change silently.
func lonelySurrogate(raw []byte) bool {
	hexAt := func(i int) (int, bool) {
		if i+6 > len(raw) || raw[i] != '\\' || raw[i+1] != 'u' {
			return 0, false
		}
		n := 0
		for _, c := range raw[i+2 : i+6] {
			switch {
			case c >= '0' && c <= '9':
				n = n*16 + int(c-'0')
			case c >= 'a' && c <= 'f':
				n = n*16 + int(c-'a'+10)
			case c >= 'A' && c <= 'F':
				n = n*16 + int(c-'A'+10)
			default:
				return 0, false
			}
		}
		return n, true
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		if i+1 < len(raw) && raw[i+1] == '\\' {
			i++ // an escaped backslash
			continue
		}
		n, ok := hexAt(i)
		if !ok {
			continue
		}
		switch {
		case n >= 0xD800 && n <= 0xDBFF:
			low, ok := hexAt(i + 6)
			if !ok || low < 0xDC00 || low > 0xDFFF {
				return true
			}
			i += 11
		case n >= 0xDC00 && n <= 0xDFFF:
			return true
		default:
			i += 5
		}
	}
	return false
}

// checkText records a problem at loc when s cannot be stored as text.
func checkText(v *domain.Validator, loc, s string) {
	if msg := domain.ValidText(s); msg != "" {
		v.Add(loc, msg)
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
	meta := checkMetadata(&v, "body.metadata", in.Body.Metadata)
	if err := v.Err(); err != nil {
		return nil, err
	}
	org, err := h.store.CreateOrganization(ctx, actor, postgres.CreateOrganizationInput{
		Name: in.Body.Name, Slug: in.Body.Slug, Metadata: meta,
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
	meta := checkMetadata(&v, "body.metadata", in.Body.Metadata)
	if err := v.Err(); err != nil {
		return nil, err
	}
	org, err := h.store.UpdateOrganization(ctx, actor, in.OrgID, postgres.UpdateOrganizationInput{
		Name: in.Body.Name, Slug: in.Body.Slug, IsActive: in.Body.IsActive, Metadata: meta,
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
		UserID string `json:"user_id" maxLength:"36" format:"uuid" doc:"An active member, who becomes owner and admin"`
	}
}

func (h *handlers) transferOwnership(ctx context.Context, in *transferOwnershipInput) (*organizationOutput, error) {
	actor, err := requireActor(ctx)
	if err != nil {
		return nil, err
	}
	// A malformed id is the caller's mistake, not an unknown member (409 not_a_member).
	if _, err := uuid.Parse(in.Body.UserID); err != nil || len(in.Body.UserID) != 36 {
		var v domain.Validator
		v.Add("body.user_id", "must be a user id (a UUID)")
		return nil, v.Err()
	}
	org, err := h.store.TransferOwnership(ctx, actor, in.OrgID, in.Body.UserID)
	if err != nil {
		return nil, err
	}
	return &organizationOutput{Body: org}, nil
}
