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

// passwordBusy is the answer when every password slot stayed taken for the limiter's
// wait: 429 rate_limited with Retry-After, rather than more 19 MiB hashes in memory.
func passwordBusy(ctx context.Context, err error) error {
	if !errors.Is(err, password.ErrBusy) {
		return err
	}
	p := newProblem(http.StatusTooManyRequests, "rate_limited", "too many password checks at once; retry in a moment")
	if info := infoFrom(ctx); info != nil {
		p.Instance = info.path
	}
	p.GetHeaders().Set("Retry-After", "1")
	return p
}

// hashPassword hashes pw within the server's bound on concurrent hashes (Config.Passwords).
func (h *handlers) hashPassword(ctx context.Context, pw string) (string, error) {
	hs, err := h.cfg.Passwords.Hash(ctx, pw)
	return hs, passwordBusy(ctx, err)
}

// verifyDummy spends a password check's time and memory (within the bound) when there is
// nothing to check, and fails.
func (h *handlers) verifyDummy(ctx context.Context, pw string) error {
	if err := h.cfg.Passwords.VerifyDummy(ctx, pw); err != nil {
		return passwordBusy(ctx, err)
	}
	return errBadCredentials
}

func (h *handlers) createSession(ctx context.Context, in *createSessionInput) (*sessionOutput, error) {
	if domain.ValidText(in.Body.Email) != "" {
		return nil, h.verifyDummy(ctx, in.Body.Password)
	}
	u, hash, err := h.store.FindUserForLogin(ctx, in.Body.Email)
	if errors.Is(err, domain.ErrNotFound) {
		return nil, h.verifyDummy(ctx, in.Body.Password) // the same time as a real check
	}
	if err != nil {
		return nil, err
	}
	if hash == "" {
		return nil, h.verifyDummy(ctx, in.Body.Password)
	}
	ok, err := h.cfg.Passwords.Verify(ctx, in.Body.Password, hash)
	if err != nil {
		return nil, passwordBusy(ctx, err)
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
