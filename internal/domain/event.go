package domain

// EventType is a domain event's type, published on orgs.events.<type>. The values are
// the contract's and permanent.
type EventType string

const (
	OrgCreated         EventType = "org_created"
	OrgUpdated         EventType = "org_updated"
	OrgDeleted         EventType = "org_deleted"
	OwnerChanged       EventType = "owner_changed"
	UserRegistered     EventType = "user_registered"
	UserInvited        EventType = "user_invited"
	InvitationReminded EventType = "invitation_reminded"
	InvitationAccepted EventType = "invitation_accepted"
	InvitationDeclined EventType = "invitation_declined"
	InvitationRevoked  EventType = "invitation_revoked"
	InvitationExpired  EventType = "invitation_expired"
	UserActivated      EventType = "user_activated"
	MemberAdded        EventType = "member_added"
	MemberUpdated      EventType = "member_updated"
	MemberRemoved      EventType = "member_removed"
)

// EventTypes lists every event type of the contract.
var EventTypes = []EventType{
	OrgCreated, OrgUpdated, OrgDeleted, OwnerChanged, UserRegistered, UserInvited,
	InvitationReminded, InvitationAccepted, InvitationDeclined, InvitationRevoked,
	InvitationExpired, UserActivated, MemberAdded, MemberUpdated, MemberRemoved,
}

// Event is a domain event about to be written to the outbox. Subject is the organization
// id (the user id for user_activated); Data is the event's data object and must never
// hold a token, password or hash.
type Event struct {
	Type           EventType
	Subject        string
	OrganizationID string // empty for events not about one organization
	Data           any
}
