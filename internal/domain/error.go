package domain

import (
	"errors"
	"strings"
	"time"
)

// One sentinel per contract problem code; httpapi maps them to statuses and codes.
var (
	ErrNotFound             = errors.New("not found")
	ErrUnauthenticated      = errors.New("unauthenticated")
	ErrForbidden            = errors.New("forbidden")
	ErrAlreadyMember        = errors.New("already a member")
	ErrOwnerCannotBeRemoved = errors.New("the owner cannot be removed")
	ErrOwnerMustBeAdmin     = errors.New("the owner must be an admin")
	ErrNotAMember           = errors.New("not a member of the organization")
	ErrMemberNotActive      = errors.New("the member has not accepted yet")
	ErrAlreadyActive        = errors.New("no pending invitation: the user is already active")
	ErrTokenInvalid         = errors.New("the link is invalid, expired or was already used")
	ErrInvitationNotPending = errors.New("the invitation is not pending")
	ErrEmailTaken           = errors.New("the email belongs to an active user")
	ErrSlugTaken            = errors.New("the slug is taken")
	ErrExternalIDTaken      = errors.New("the external id belongs to another user")
	ErrIdempotencyConflict  = errors.New("the idempotency key was used with another request")
	ErrIdempotencyKeyUsed   = errors.New("the idempotency key belongs to a completed request") // its response is replayed
	ErrRateLimited          = errors.New("too many requests")
)

// Problem is one field's problem in a ValidationError. Location is a JSON-pointer-like
// path such as "body.email" or "query.limit".
type Problem struct {
	Location string `json:"location"`
	Message  string `json:"message"`
}

// ValidationError lists field problems; httpapi renders it as 422 validation_failed.
type ValidationError struct {
	Problems []Problem
}

func (e *ValidationError) Error() string {
	msgs := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		msgs[i] = p.Location + ": " + p.Message
	}
	return "validation failed: " + strings.Join(msgs, "; ")
}

// Validator collects field problems; Err returns nil when there are none.
type Validator struct{ problems []Problem }

// Add records a problem at location.
func (v *Validator) Add(location, message string) {
	v.problems = append(v.problems, Problem{location, message})
}

// Check records a problem when ok is false.
func (v *Validator) Check(ok bool, location, message string) {
	if !ok {
		v.Add(location, message)
	}
}

// Err returns a *ValidationError listing the problems, or nil.
func (v *Validator) Err() error {
	if len(v.problems) == 0 {
		return nil
	}
	return &ValidationError{Problems: v.problems}
}

// RateLimitError is ErrRateLimited with the wait after which a retry can succeed: the
// limits on the emails that users cause (per address of no active user, per
// organization) return it.
type RateLimitError struct {
	// RetryAfter is how long until the limit lets the request through again.
	RetryAfter time.Duration
	// Limit names the limit reached: "recipient" or "organization".
	Limit string
}

func (e *RateLimitError) Error() string {
	if e.Limit == "recipient" {
		return "too many emails to this address this hour"
	}
	return "too many emails from this organization this hour"
}

// Unwrap makes errors.Is(err, ErrRateLimited) true.
func (e *RateLimitError) Unwrap() error { return ErrRateLimited }
