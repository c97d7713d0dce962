package httpapi

import (
	"context"
	"time"

	"github.com/orgs-dev/orgs/internal/domain"
	"github.com/orgs-dev/orgs/internal/postgres"
	"github.com/orgs-dev/orgs/internal/token"
)

type signupInput struct {
	Body signupBody
}

type signupBody struct {
	Email            string  `json:"email" maxLength:"254"`
	Name             string  `json:"name" maxLength:"200"`
	OrganizationName string  `json:"organization_name" maxLength:"200"`
	OrganizationSlug *string `json:"organization_slug,omitempty" maxLength:"100"`
}

// validate checks a sign-up's fields; the JSON API and the sign-up page share it.
func (b signupBody) validate() error {
	var v domain.Validator
	checkEmail(&v, "body.email", b.Email)
	checkName(&v, "body.name", b.Name, true)
	checkName(&v, "body.organization_name", b.OrganizationName, true)
	checkSlug(&v, "body.organization_slug", b.OrganizationSlug)
	return v.Err()
}

func (h *handlers) signup(ctx context.Context, in *signupInput) (*signupOutput, error) {
	if err := in.Body.validate(); err != nil {
		return nil, err
	}
	u, org, err := h.store.SignUp(ctx, postgres.SignUpInput{
		Email: in.Body.Email, Name: in.Body.Name, OrganizationName: in.Body.OrganizationName, OrganizationSlug: in.Body.OrganizationSlug,
	})
	if err != nil {
		return nil, err
	}
	return signupAnswer(ctx, in.Body, u, org), nil
}

type resendInput struct {
	Body struct {
		Email string `json:"email" maxLength:"254"`
	}
}

func (h *handlers) resendActivation(ctx context.Context, in *resendInput) (*struct{}, error) {
	var v domain.Validator
	checkEmail(&v, "body.email", in.Body.Email)
	if err := v.Err(); err != nil {
		return nil, err
	}
	// Always 202, whether or not the email belongs to anyone.
	return nil, h.store.ResendActivation(ctx, in.Body.Email)
}

type activationPath struct {
	UserID string `path:"user_id"`
	Token  string `path:"token" maxLength:"200"`
}

// verify checks an activation link's signature and expiry against what it must be bound
// to, the user's current address and last activation, and returns that recipient
// (domain.ErrTokenInvalid).
func (h *handlers) verify(ctx context.Context, userID, tok string) (token.Recipient, error) {
	r, err := h.store.FindActivationRecipient(ctx, userID)
	if err != nil {
		return r, err
	}
	_, err = h.signer.VerifyActivation(r, tok, time.Now())
	return r, err
}

type activationOutput struct {
	CacheControl string `header:"Cache-Control"`
	Body         struct {
		User          domain.User           `json:"user"`
		Organizations []domain.Organization `json:"organizations" doc:"The organizations the user joins by activating"`
	}
}

func (h *handlers) getActivation(ctx context.Context, in *activationPath) (*activationOutput, error) {
	if _, err := h.verify(ctx, in.UserID, in.Token); err != nil {
		return nil, err
	}
	u, orgs, err := h.store.FindActivation(ctx, in.UserID)
	if err != nil {
		return nil, err
	}
	out := &activationOutput{CacheControl: "no-store"}
	out.Body.User, out.Body.Organizations = u, orgs
	return out, nil
}

type activateInput struct {
	// The path fields are repeated: huma does not read an unexported embedded struct.
	UserID string `path:"user_id"`
	Token  string `path:"token" maxLength:"200"`
	Body   struct {
		Password *string `json:"password,omitempty" maxLength:"256" doc:"8 to 256 characters, not one of the most common passwords; a service key may leave it out"`
		Name     *string `json:"name,omitempty" maxLength:"200"`
	}
}

type activateOutput struct {
	CacheControl string `header:"Cache-Control"`
	Body         struct {
		User    domain.User    `json:"user"`
		Session domain.Session `json:"session"`
	}
}

// activateUser verifies the link and activates; the JSON API and the activation page
// share it. password nil is allowed for a service key only.
func (h *handlers) activateUser(ctx context.Context, userID, tok string, pw, name *string) (domain.User, domain.Session, error) {
	var v domain.Validator
	switch {
	case pw == nil && !actorFrom(ctx).IsService():
		v.Add("body.password", "is required")
	case pw != nil && domain.ValidPassword(*pw) != "":
		v.Add("body.password", domain.ValidPassword(*pw))
	}
	if name != nil {
		checkName(&v, "body.name", *name, false)
	}
	link, err := h.verify(ctx, userID, tok)
	if err != nil {
		return domain.User{}, domain.Session{}, err
	}
	if err := v.Err(); err != nil {
		return domain.User{}, domain.Session{}, err
	}
	// Check the link still leads somewhere before spending the password hash's time.
	if _, _, err := h.store.FindActivation(ctx, userID); err != nil {
		return domain.User{}, domain.Session{}, err
	}
	var hash *string
	if pw != nil {
		hs, err := h.hashPassword(ctx, *pw)
		if err != nil {
			return domain.User{}, domain.Session{}, err
		}
		hash = &hs
	}
	tok, tokHash := token.NewSession()
	u, expires, err := h.store.Activate(ctx, link, postgres.ActivateInput{PasswordHash: hash, Name: name, SessionHash: tokHash})
	if err != nil {
		return domain.User{}, domain.Session{}, err
	}
	return u, domain.Session{Token: tok, ExpiresAt: expires}, nil
}

func (h *handlers) activate(ctx context.Context, in *activateInput) (*activateOutput, error) {
	u, s, err := h.activateUser(ctx, in.UserID, in.Token, in.Body.Password, in.Body.Name)
	if err != nil {
		return nil, err
	}
	out := &activateOutput{CacheControl: "no-store"}
	out.Body.User, out.Body.Session = u, s
	return out, nil
}

type declineActivationOutput struct {
	Body struct {
		User domain.User `json:"user"`
	}
}

func (h *handlers) declineActivation(ctx context.Context, in *activationPath) (*declineActivationOutput, error) {
	link, err := h.verify(ctx, in.UserID, in.Token)
	if err != nil {
		return nil, err
	}
	u, err := h.store.DeclineActivation(ctx, link)
	if err != nil {
		return nil, err
	}
	out := &declineActivationOutput{}
	out.Body.User = u
	return out, nil
}
