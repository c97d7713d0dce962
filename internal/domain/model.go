package domain

import (
	"encoding/json"
	"time"
)

// User is a person known to orgs: created by sign-up, invitation, or the customer's own
// user system (POST /v1/users). Emails compare case-insensitively and are stored as given.
type User struct {
	ID         string    `json:"id"`
	Email      string    `json:"email"`
	Name       string    `json:"name"`
	IsActive   bool      `json:"is_active"`
	ExternalID *string   `json:"external_id"`
	CreatedAt  time.Time `json:"created_at"`
}

// Organization is a multi-user account with exactly one owner.
type Organization struct {
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Slug      string          `json:"slug"`
	IsActive  bool            `json:"is_active"`
	OwnerID   string          `json:"owner_id"`
	Metadata  json.RawMessage `json:"metadata"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`
}

// Role is a member's place in the permission order member < admin < owner.
type Role string

const (
	RoleMember Role = "member"
	RoleAdmin  Role = "admin"
	RoleOwner  Role = "owner"
)

func (r Role) rank() int {
	switch r {
	case RoleOwner:
		return 3
	case RoleAdmin:
		return 2
	case RoleMember:
		return 1
	}
	return 0
}

// AtLeast reports whether r has at least the rights of want.
func (r Role) AtLeast(want Role) bool { return r.rank() >= want.rank() }

// Member is a user's membership of an organization. A pending member was invited and has
// not accepted yet (an inactive user's membership, or one that requires acceptance); it
// grants no rights until accepted.
type Member struct {
	OrganizationID string          `json:"organization_id"`
	User           User            `json:"user"`
	IsAdmin        bool            `json:"is_admin"`
	IsOwner        bool            `json:"is_owner"`
	Role           Role            `json:"role"`
	Status         string          `json:"status"` // active or pending
	Metadata       json.RawMessage `json:"metadata"`
	CreatedAt      time.Time       `json:"created_at"`
}

// MemberStatus values.
const (
	MemberActive  = "active"
	MemberPending = "pending"
)

// RoleOf returns the role of a membership.
func RoleOf(isAdmin, isOwner bool) Role {
	switch {
	case isOwner:
		return RoleOwner
	case isAdmin:
		return RoleAdmin
	}
	return RoleMember
}

// InvitationStatus is where an invitation is in its lifecycle.
type InvitationStatus string

const (
	StatusPending  InvitationStatus = "pending"
	StatusAccepted InvitationStatus = "accepted"
	StatusDeclined InvitationStatus = "declined"
	StatusRevoked  InvitationStatus = "revoked"
	StatusExpired  InvitationStatus = "expired"
)

// Valid reports whether s is one of the five statuses.
func (s InvitationStatus) Valid() bool {
	switch s {
	case StatusPending, StatusAccepted, StatusDeclined, StatusRevoked, StatusExpired:
		return true
	}
	return false
}

// Invitation is a first-class record of inviting an email address to an organization.
type Invitation struct {
	ID             string           `json:"id"`
	OrganizationID string           `json:"organization_id"`
	Email          string           `json:"email"`
	UserID         string           `json:"user_id"`
	InvitedBy      *string          `json:"invited_by"`
	IsAdmin        bool             `json:"is_admin"`
	Status         InvitationStatus `json:"status"`
	CreatedAt      time.Time        `json:"created_at"`
	ExpiresAt      time.Time        `json:"expires_at"`
	RemindersSent  int              `json:"reminders_sent"`
	LastSentAt     *time.Time       `json:"last_sent_at"`
	// RequireAcceptance marks an invitation of an already active user, who accepts it
	// while logged in instead of through an activation link.
	RequireAcceptance bool `json:"require_acceptance"`
}

// Session is a logged-in user's bearer token; only its hash is stored.
type Session struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}
