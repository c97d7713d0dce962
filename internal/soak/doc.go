// Package soak holds orgs' fault soak: the api (two replicas), mailer and reminder built
// from cmd/ and a NATS JetStream server built from its Go module, each run as an OS
// process against a real Postgres schema and an SMTP sink, driven over HTTP at a fixed
// rate by clients that retry as real ones do, while a chaos loop SIGKILLs the processes,
// restarts NATS and terminates their Postgres connections. Afterwards it checks that
// nothing acknowledged was lost, nothing was made twice and every organization's events
// are in commit order, and prints a table of what happened.
//
// TestSoak runs for SOAK_DURATION (45s by default, inside make test; make soak runs 10m).
// TestSIGKILLBurst is the 200-invitation burst of issue 8. The package has no non-test
// code besides this comment.
package soak
