package httpapi

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/orgs-dev/orgs/internal/domain"
	"github.com/orgs-dev/orgs/internal/password"
	"github.com/orgs-dev/orgs/internal/token"
)

type createSessionInput struct {
	Body struct {
		Email    string `json:"email" maxLength:"254" doc:"The user's email address"`
		Password string `json:"password" maxLength:"1024"`
	}
}

type sessionBody struct {
	Token     string      `json:"token" doc:"Bearer token; keep it secret"`
	ExpiresAt time.Time   `json:"expires_at"`
	User      domain.User `json:"user"`
}

type sessionOutput struct {
	CacheControl string `header:"Cache-Control"`
	Body         sessionBody
}

// errBadCredentials is the one answer for an unknown email, a wrong password and an
// inactive user, so that the endpoint does not reveal which accounts exist.
var errBadCredentials = errors.Join(domain.ErrUnauthenticated, errors.New("wrong email or password"))

func (h *handlers) createSession(ctx context.Context, in *createSessionInput) (*sessionOutput, error) {
	if domain.ValidText(in.Body.Email) != "" {
		password.VerifyDummy(in.Body.Password)
		return nil, errBadCredentials
	}
	u, hash, err := h.store.FindUserForLogin(ctx, in.Body.Email)
	if errors.Is(err, domain.ErrNotFound) {
		password.VerifyDummy(in.Body.Password) // the same time as a real check
		return nil, errBadCredentials
	}
	if err != nil {
		return nil, err
	}
	if hash == "" {
		password.VerifyDummy(in.Body.Password)
		return nil, errBadCredentials
	}
	ok, err := password.Verify(in.Body.Password, hash)
	if err != nil {
		return nil, err
	}
	if !ok || !u.IsActive {
		return nil, errBadCredentials
	}
	tok, tokHash := token.NewSession()
	expires, err := h.store.CreateSession(ctx, u.ID, tokHash)
	if err != nil {
		return nil, err
	}
	return &sessionOutput{CacheControl: "no-store", Body: sessionBody{Token: tok, ExpiresAt: expires, User: u}}, nil
}

type emptyInput struct{}

func (h *handlers) deleteSession(ctx context.Context, _ *emptyInput) (*struct{}, error) {
	actor, err := requireActor(ctx)
	if err != nil {
		return nil, err
	}
	if actor.SessionID == nil {
		return nil, errors.Join(domain.ErrForbidden, errors.New("only a user session can log out"))
	}
	return nil, h.store.DeleteSession(ctx, actor.SessionID)
}

type userOutput struct {
	Status int `json:"-"`
	Body   domain.User
}

func (h *handlers) getMe(ctx context.Context, _ *emptyInput) (*userOutput, error) {
	actor, err := requireUser(ctx)
	if err != nil {
		return nil, err
	}
	u, err := h.store.FindUserByID(ctx, actor.UserID)
	if err != nil {
		return nil, err
	}
	return &userOutput{Status: http.StatusOK, Body: u}, nil
}

type invitationListOutput struct {
	Body listResponse[domain.Invitation]
}

func (h *handlers) listMyInvitations(ctx context.Context, _ *emptyInput) (*invitationListOutput, error) {
	actor, err := requireUser(ctx)
	if err != nil {
		return nil, err
	}
	invs, err := h.store.FindMyInvitations(ctx, actor)
	if err != nil {
		return nil, err
	}
	return &invitationListOutput{Body: listResponse[domain.Invitation]{Items: invs}}, nil
}
