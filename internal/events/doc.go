// Package events publishes orgs' domain events: the CloudEvents envelope (written by hand,
// fast), the ORGS_EVENTS JetStream stream, the outbox Relay that moves committed outbox rows
// to the stream in commit order, its metrics, and schema validation of event data.
//
// Subscribers use the public package github.com/orgs-dev/orgs/orgsevents.
package events
