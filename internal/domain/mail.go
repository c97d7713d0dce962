package domain

// InvitationEmail is what the mailer needs to write an invitation or reminder email.
type InvitationEmail struct {
	Invitation   Invitation
	Organization Organization
	User         User  // the invitee
	Inviter      *User // nil when a service invited or the inviter is gone
	Message      string
}

// ActivationEmail is what the mailer needs to write an activation email: the inactive
// user and the organizations they would join.
type ActivationEmail struct {
	User          User
	Organizations []Organization
}

// NotificationEmail is what the mailer needs to tell a user they were added.
type NotificationEmail struct {
	Organization Organization
	User         User
	Actor        *User
}
