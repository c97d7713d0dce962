package orgsevents

import (
	"encoding/json"
	"time"
)

// The event types. Each is published on the subject "orgs.events.<type>"; they are
// permanent names.
const (
	TypeOrgCreated         = "org_created"
	TypeOrgUpdated         = "org_updated"
	TypeOrgDeleted         = "org_deleted"
	TypeOwnerChanged       = "owner_changed"
	TypeUserRegistered     = "user_registered"
	TypeUserInvited        = "user_invited"
	TypeInvitationReminded = "invitation_reminded"
	TypeInvitationAccepted = "invitation_accepted"
	TypeInvitationDeclined = "invitation_declined"
	TypeInvitationRevoked  = "invitation_revoked"
	TypeInvitationExpired  = "invitation_expired"
	TypeUserActivated      = "user_activated"
	TypeMemberAdded        = "member_added"
	TypeMemberUpdated      = "member_updated"
	TypeMemberRemoved      = "member_removed"
)

// Types lists every event type, in the contract's order.
func Types() []string {
	return []string{
		TypeOrgCreated, TypeOrgUpdated, TypeOrgDeleted, TypeOwnerChanged,
		TypeUserRegistered, TypeUserInvited, TypeInvitationReminded,
		TypeInvitationAccepted, TypeInvitationDeclined, TypeInvitationRevoked,
		TypeInvitationExpired, TypeUserActivated,
		TypeMemberAdded, TypeMemberUpdated, TypeMemberRemoved,
	}
}

// User is the user representation inside events (as in the HTTP API). ExternalID is empty
// when the user has none.
type User struct {
	ID         string    `json:"id"`
	Email      string    `json:"email"`
	Name       string    `json:"name"`
	IsActive   bool      `json:"is_active"`
	ExternalID string    `json:"external_id"`
	CreatedAt  time.Time `json:"created_at"`
}

// Organization is the organization representation inside events (as in the HTTP API).
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

// Invitation is the invitation representation inside events (as in the HTTP API). It never
// contains the token. InvitedBy is empty when a service key without On-Behalf-Of invited;
// LastSentAt is nil when no email was sent.
type Invitation struct {
	ID             string `json:"id"`
	OrganizationID string `json:"organization_id"`
	Email          string `json:"email"`
	UserID         string `json:"user_id"`
	InvitedBy      string `json:"invited_by"`
	IsAdmin        bool   `json:"is_admin"`
	// RequireAcceptance marks an invitation of an already active user, who accepts or
	// declines it while logged in.
	RequireAcceptance bool       `json:"require_acceptance"`
	Status            string     `json:"status"`
	CreatedAt         time.Time  `json:"created_at"`
	ExpiresAt         time.Time  `json:"expires_at"`
	RemindersSent     int        `json:"reminders_sent"`
	LastSentAt        *time.Time `json:"last_sent_at"`
}

// In the data structs below ActorID is the user who made the change; it is empty when a
// service key acted without On-Behalf-Of, or the system did (expiry).

// OrgCreated is the data of org_created.
type OrgCreated struct {
	Organization Organization `json:"organization"`
	OwnerID      string       `json:"owner_id"`
	ActorID      string       `json:"actor_id"`
}

// OrgUpdated is the data of org_updated. Changed lists the changed fields by their JSON
// names (name, slug, is_active, metadata).
type OrgUpdated struct {
	Organization Organization `json:"organization"`
	Changed      []string     `json:"changed"`
	ActorID      string       `json:"actor_id"`
}

// OrgDeleted is the data of org_deleted.
type OrgDeleted struct {
	OrganizationID string `json:"organization_id"`
	Slug           string `json:"slug"`
	ActorID        string `json:"actor_id"`
}

// OwnerChanged is the data of owner_changed.
type OwnerChanged struct {
	OrganizationID string `json:"organization_id"`
	OldOwnerID     string `json:"old_owner_id"`
	NewOwnerID     string `json:"new_owner_id"`
	ActorID        string `json:"actor_id"`
}

// UserRegistered is the data of user_registered (sign-up created a user).
type UserRegistered struct {
	User           User   `json:"user"`
	OrganizationID string `json:"organization_id"`
}

// UserInvited is the data of user_invited.
type UserInvited struct {
	Invitation     Invitation `json:"invitation"`
	OrganizationID string     `json:"organization_id"`
	InvitedBy      string     `json:"invited_by"`
}

// InvitationReminded is the data of invitation_reminded.
type InvitationReminded struct {
	InvitationID   string `json:"invitation_id"`
	OrganizationID string `json:"organization_id"`
	RemindersSent  int    `json:"reminders_sent"`
}

// InvitationAccepted is the data of invitation_accepted.
type InvitationAccepted struct {
	InvitationID   string `json:"invitation_id"`
	OrganizationID string `json:"organization_id"`
	UserID         string `json:"user_id"`
}

// InvitationDeclined is the data of invitation_declined.
type InvitationDeclined InvitationAccepted

// InvitationRevoked is the data of invitation_revoked.
type InvitationRevoked InvitationAccepted

// InvitationExpired is the data of invitation_expired.
type InvitationExpired InvitationAccepted

// UserActivated is the data of user_activated; its event's subject is the user id.
type UserActivated struct {
	User            User     `json:"user"`
	OrganizationIDs []string `json:"organization_ids"`
}

// MemberAdded is the data of member_added, also for pending memberships (User.IsActive
// tells).
type MemberAdded struct {
	OrganizationID string `json:"organization_id"`
	User           User   `json:"user"`
	IsAdmin        bool   `json:"is_admin"`
	ActorID        string `json:"actor_id"`
}

// MemberUpdated is the data of member_updated.
type MemberUpdated struct {
	OrganizationID string `json:"organization_id"`
	UserID         string `json:"user_id"`
	IsAdmin        bool   `json:"is_admin"`
	ActorID        string `json:"actor_id"`
}

// MemberRemoved is the data of member_removed.
type MemberRemoved struct {
	OrganizationID string `json:"organization_id"`
	UserID         string `json:"user_id"`
	ActorID        string `json:"actor_id"`
}

// NewData returns a pointer to a zero data struct for the event type, or nil for an
// unknown type: a generic way to decode any event.
func NewData(typ string) any {
	switch typ {
	case TypeOrgCreated:
		return new(OrgCreated)
	case TypeOrgUpdated:
		return new(OrgUpdated)
	case TypeOrgDeleted:
		return new(OrgDeleted)
	case TypeOwnerChanged:
		return new(OwnerChanged)
	case TypeUserRegistered:
		return new(UserRegistered)
	case TypeUserInvited:
		return new(UserInvited)
	case TypeInvitationReminded:
		return new(InvitationReminded)
	case TypeInvitationAccepted:
		return new(InvitationAccepted)
	case TypeInvitationDeclined:
		return new(InvitationDeclined)
	case TypeInvitationRevoked:
		return new(InvitationRevoked)
	case TypeInvitationExpired:
		return new(InvitationExpired)
	case TypeUserActivated:
		return new(UserActivated)
	case TypeMemberAdded:
		return new(MemberAdded)
	case TypeMemberUpdated:
		return new(MemberUpdated)
	case TypeMemberRemoved:
		return new(MemberRemoved)
	}
	return nil
}
