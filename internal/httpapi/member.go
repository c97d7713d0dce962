package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"

	"github.com/orgs-dev/orgs/internal/domain"
	"github.com/orgs-dev/orgs/internal/jobs"
	"github.com/orgs-dev/orgs/internal/postgres"
)

type memberBody struct {
	domain.Member
	// Invitation is the invitation created for a pending member.
	Invitation *domain.Invitation `json:"invitation,omitempty"`
	// ActivationURL is the link to send yourself, with send_email: false.
	ActivationURL string `json:"activation_url,omitempty"`
}

type memberOutput struct {
	Body memberBody
}

type memberListOutput struct {
	Body listResponse[domain.Member]
}

type listMembersInput struct {
	OrgID string `path:"org_id"`
	Pagination
}

func (h *handlers) listMembers(ctx context.Context, in *listMembersInput) (*memberListOutput, error) {
	actor, err := requireActor(ctx)
	if err != nil {
		return nil, err
	}
	p, err := h.store.FindMembers(ctx, actor, in.OrgID, postgres.Cursor{Time: in.After, ID: in.AfterID}, in.Limit)
	if err != nil {
		return nil, err
	}
	return &memberListOutput{Body: newList(p.Items, nextCursor(p.Next)).Body}, nil
}

type memberPath struct {
	OrgID  string `path:"org_id"`
	UserID string `path:"user_id"`
}

func (h *handlers) getMember(ctx context.Context, in *memberPath) (*memberOutput, error) {
	actor, err := requireActor(ctx)
	if err != nil {
		return nil, err
	}
	m, err := h.store.FindMember(ctx, actor, in.OrgID, in.UserID)
	if err != nil {
		return nil, err
	}
	return &memberOutput{Body: memberBody{Member: m}}, nil
}

type addMemberInput struct {
	OrgID string `path:"org_id"`
	Body  struct {
		Email             string          `json:"email" maxLength:"254"`
		IsAdmin           bool            `json:"is_admin,omitempty"`
		RequireAcceptance bool            `json:"require_acceptance,omitempty" doc:"An existing active user gets a pending membership and an invitation to accept"`
		Message           string          `json:"message,omitempty" maxLength:"1000" doc:"Plain text shown in the email"`
		Metadata          json.RawMessage `json:"metadata,omitempty" doc:"A JSON object of at most 16 KiB"`
		SendEmail         *bool           `json:"send_email,omitempty" doc:"false (service keys only): no email; the link is returned as activation_url"`
	}
}

func (h *handlers) addMember(ctx context.Context, in *addMemberInput) (*memberOutput, error) {
	actor, err := requireActor(ctx)
	if err != nil {
		return nil, err
	}
	var v domain.Validator
	checkEmail(&v, "body.email", in.Body.Email)
	meta := checkMetadata(&v, "body.metadata", in.Body.Metadata)
	checkText(&v, "body.message", in.Body.Message)
	if err := v.Err(); err != nil {
		return nil, err
	}
	send := in.Body.SendEmail == nil || *in.Body.SendEmail
	if !send && !actor.IsService() {
		return nil, errors.Join(domain.ErrForbidden, errors.New("send_email: false needs a service key"))
	}
	res, err := h.store.AddMember(ctx, actor, in.OrgID, postgres.AddMemberInput{
		Email: in.Body.Email, IsAdmin: in.Body.IsAdmin, RequireAcceptance: in.Body.RequireAcceptance,
		Message: in.Body.Message, Metadata: meta, SendEmail: send,
	})
	if err != nil {
		return nil, err
	}
	b, err := h.memberBody(ctx, res, send)
	if err != nil {
		return nil, err
	}
	return &memberOutput{Body: b}, nil
}

// memberBody is the response of an add: the member, its invitation, and the link when
// the caller sends its own email.
func (h *handlers) memberBody(ctx context.Context, res postgres.AddMemberResult, sent bool) (memberBody, error) {
	b := memberBody{Member: res.Member, Invitation: res.Invitation}
	if inv := res.Invitation; inv != nil && !sent {
		if inv.RequireAcceptance {
			b.ActivationURL = jobs.AcceptLink(h.cfg.AcceptURL, inv.ID)
		} else {
			// The link is bound to the user's current address and activation.
			r, err := h.store.FindActivationRecipient(ctx, inv.UserID)
			if err != nil {
				return b, err
			}
			b.ActivationURL = jobs.ActivationLink(h.cfg.ActivationURL, inv.UserID, h.signer.Activation(r, inv.ExpiresAt))
		}
	}
	return b, nil
}

type bulkItem struct {
	Email    string          `json:"email" maxLength:"254"`
	IsAdmin  bool            `json:"is_admin,omitempty"`
	Metadata json.RawMessage `json:"metadata,omitempty"`
}

type addMembersInput struct {
	OrgID string `path:"org_id"`
	Body  struct {
		Members []bulkItem `json:"members" minItems:"1" maxItems:"100"`
		Message string     `json:"message,omitempty" maxLength:"1000"`
	}
}

type bulkResult struct {
	Email  string      `json:"email"`
	Status string      `json:"status" enum:"added,invited,failed"`
	Member *memberBody `json:"member,omitempty"`
	Error  *Problem    `json:"error,omitempty"`
}

type addMembersOutput struct {
	Body struct {
		Results []bulkResult `json:"results"`
	}
}

func (h *handlers) addMembers(ctx context.Context, in *addMembersInput) (*addMembersOutput, error) {
	actor, err := requireActor(ctx)
	if err != nil {
		return nil, err
	}
	var mv domain.Validator
	checkText(&mv, "body.message", in.Body.Message)
	if err := mv.Err(); err != nil {
		return nil, err
	}
	out := &addMembersOutput{}
	out.Body.Results = make([]bulkResult, len(in.Body.Members))
	// Items that fail validation are answered here; the others go to the store together.
	var (
		items []postgres.AddMemberInput
		index []int
	)
	for i, m := range in.Body.Members {
		out.Body.Results[i].Email = m.Email
		var v domain.Validator
		loc := "body.members[" + strconv.Itoa(i) + "]"
		checkEmail(&v, loc+".email", m.Email)
		meta := checkMetadata(&v, loc+".metadata", m.Metadata)
		if err := v.Err(); err != nil {
			out.Body.Results[i].Status = "failed"
			out.Body.Results[i].Error = problemFor(ctx, err)
			continue
		}
		items = append(items, postgres.AddMemberInput{
			Email: m.Email, IsAdmin: m.IsAdmin, Metadata: meta, Message: in.Body.Message, SendEmail: true,
		})
		index = append(index, i)
	}
	// The store checks the caller's permission even when no item is left: an outsider
	// gets 404 and a member without the right 403, never the items' problems.
	results, err := h.store.AddMembers(ctx, actor, in.OrgID, items)
	if err != nil {
		return nil, err
	}
	for j, r := range results {
		res := &out.Body.Results[index[j]]
		if r.Err != nil {
			res.Status = "failed"
			res.Error = problemFor(ctx, r.Err)
			continue
		}
		res.Status = r.Status
		b, err := h.memberBody(ctx, r.AddMemberResult, true)
		if err != nil {
			return nil, err
		}
		res.Member = &b
	}
	return out, nil
}

type updateMemberInput struct {
	OrgID  string `path:"org_id"`
	UserID string `path:"user_id"`
	Body   struct {
		IsAdmin  *bool           `json:"is_admin,omitempty"`
		Metadata json.RawMessage `json:"metadata,omitempty" doc:"Replaces the metadata; a JSON object of at most 16 KiB"`
	}
}

func (h *handlers) updateMember(ctx context.Context, in *updateMemberInput) (*memberOutput, error) {
	actor, err := requireActor(ctx)
	if err != nil {
		return nil, err
	}
	var v domain.Validator
	meta := checkMetadata(&v, "body.metadata", in.Body.Metadata)
	if err := v.Err(); err != nil {
		return nil, err
	}
	m, err := h.store.UpdateMember(ctx, actor, in.OrgID, in.UserID, postgres.UpdateMemberInput{IsAdmin: in.Body.IsAdmin, Metadata: meta})
	if err != nil {
		return nil, err
	}
	return &memberOutput{Body: memberBody{Member: m}}, nil
}

func (h *handlers) removeMember(ctx context.Context, in *memberPath) (*struct{}, error) {
	actor, err := requireActor(ctx)
	if err != nil {
		return nil, err
	}
	return nil, h.store.RemoveMember(ctx, actor, in.OrgID, in.UserID)
}

type invitationOutput struct {
	Body domain.Invitation
}

func (h *handlers) remindMember(ctx context.Context, in *memberPath) (*invitationOutput, error) {
	actor, err := requireActor(ctx)
	if err != nil {
		return nil, err
	}
	inv, err := h.store.RemindMember(ctx, actor, in.OrgID, in.UserID)
	if err != nil {
		return nil, err
	}
	return &invitationOutput{Body: inv}, nil
}
