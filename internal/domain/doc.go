// Package domain holds orgs' model: users, organizations, memberships, invitations and
// domain events, the rules of django-organizations that govern them (the first member
// becomes owner and admin, the owner cannot be removed or demoted, ownership moves only
// to an active member), and one error per contract problem code. It imports only the
// standard library; the adapters (postgres, httpapi, jobs, events) depend on it.
package domain
