package domain

// Actor is who makes a request: a user through a session, a service key, or a service key
// acting on behalf of a user (then it has exactly that user's rights).
type Actor struct {
	// UserID is the acting user; empty for a service key acting as itself.
	UserID string
	// Service names the API key used, if any ("billing" for ORGS_API_KEYS=billing:...).
	Service string
	// SessionID identifies the session (hash) a user authenticated with, for logout.
	SessionID []byte
}

// IsSuperuser reports whether the actor passes every permission check: a service key
// not acting on behalf of a user, like django's is_superuser.
func (a Actor) IsSuperuser() bool { return a.Service != "" && a.UserID == "" }

// IsService reports whether the request came with a service key (acting as itself or on
// behalf of a user).
func (a Actor) IsService() bool { return a.Service != "" }

// IsAnonymous reports whether the request carried no credential.
func (a Actor) IsAnonymous() bool { return a.Service == "" && a.UserID == "" }

// ActorID is the user id recorded as actor_id in events; empty (JSON null) for a service.
func (a Actor) ActorID() string { return a.UserID }
