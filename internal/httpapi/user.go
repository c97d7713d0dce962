package httpapi

import (
	"context"
	"net/http"
	"strings"

	"github.com/orgs-dev/orgs/internal/domain"
	"github.com/orgs-dev/orgs/internal/postgres"
)

// checkEmail records a problem at loc when email is not a bare address.
func checkEmail(v *domain.Validator, loc, email string) {
	if msg := domain.ValidEmail(email); msg != "" {
		v.Add(loc, msg)
	}
}

// checkName records a problem at loc when name is not an acceptable name.
func checkName(v *domain.Validator, loc, name string, required bool) {
	if msg := domain.ValidName(name, required); msg != "" {
		v.Add(loc, msg)
	}
}

type upsertUserInput struct {
	Body struct {
		Email      string  `json:"email" maxLength:"254"`
		Name       *string `json:"name,omitempty" maxLength:"200"`
		ExternalID *string `json:"external_id,omitempty" maxLength:"255" doc:"The user's id in your own user system; unique"`
		IsActive   *bool   `json:"is_active,omitempty"`
	}
}

func (h *handlers) upsertUser(ctx context.Context, in *upsertUserInput) (*userOutput, error) {
	actor, err := requireService(ctx)
	if err != nil {
		return nil, err
	}
	var v domain.Validator
	checkEmail(&v, "body.email", in.Body.Email)
	if in.Body.Name != nil {
		checkName(&v, "body.name", *in.Body.Name, false)
	}
	if in.Body.ExternalID != nil {
		if strings.TrimSpace(*in.Body.ExternalID) == "" {
			v.Add("body.external_id", "must not be blank")
		}
		checkText(&v, "body.external_id", *in.Body.ExternalID)
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	u, created, err := h.store.UpsertUser(ctx, actor, postgres.UpsertUserInput{
		Email: in.Body.Email, Name: in.Body.Name, ExternalID: in.Body.ExternalID, IsActive: in.Body.IsActive,
	})
	if err != nil {
		return nil, err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	return &userOutput{Status: status, Body: u}, nil
}

type getUserInput struct {
	UserID string `path:"user_id"`
}

func (h *handlers) getUser(ctx context.Context, in *getUserInput) (*userOutput, error) {
	actor, err := requireActor(ctx)
	if err != nil {
		return nil, err
	}
	// A user sees only themself; anyone else's id is not found, like an unknown one.
	if !actor.IsSuperuser() && actor.UserID != in.UserID {
		return nil, domain.ErrNotFound
	}
	u, err := h.store.FindUserByID(ctx, in.UserID)
	if err != nil {
		return nil, err
	}
	return &userOutput{Status: http.StatusOK, Body: u}, nil
}

type listUsersInput struct {
	Email      string `query:"email" maxLength:"254"`
	ExternalID string `query:"external_id" maxLength:"255"`
	Pagination
}

type userListOutput struct {
	Body listResponse[domain.User]
}

func (h *handlers) listUsers(ctx context.Context, in *listUsersInput) (*userListOutput, error) {
	actor, err := requireActor(ctx)
	if err != nil {
		return nil, err
	}
	var v domain.Validator
	checkText(&v, "query.email", in.Email)
	checkText(&v, "query.external_id", in.ExternalID)
	if err := v.Err(); err != nil {
		return nil, err
	}
	if !actor.IsSuperuser() {
		// A user lists only themself.
		u, err := h.store.FindUserByID(ctx, actor.UserID)
		if err != nil {
			return nil, err
		}
		items := []domain.User{}
		if (in.Email == "" || strings.EqualFold(in.Email, u.Email)) &&
			(in.ExternalID == "" || (u.ExternalID != nil && *u.ExternalID == in.ExternalID)) && in.Cursor == "" {
			items = append(items, u)
		}
		return &userListOutput{Body: listResponse[domain.User]{Items: items}}, nil
	}
	p, err := h.store.FindUsers(ctx, postgres.UserFilter{
		Email: in.Email, ExternalID: in.ExternalID, After: postgres.Cursor{Time: in.After, ID: in.AfterID}, Limit: in.Limit,
	})
	if err != nil {
		return nil, err
	}
	return &userListOutput{Body: newList(p.Items, nextCursor(p.Next)).Body}, nil
}
