// Package e2e holds orgs' end-to-end tests: the api, mailer and reminder binaries built
// from cmd/ and run as processes against a real Postgres schema, an embedded JetStream
// and an SMTP sink, driven over HTTP (and, in browser_test.go, through headless
// Chromium). The package has no non-test code besides this comment.
package e2e
