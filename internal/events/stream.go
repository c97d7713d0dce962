package events

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/orgs-dev/orgs/orgsevents"
)

// Names on the stream, shared with the public orgsevents package.
const (
	// StreamName is the JetStream stream of every event.
	StreamName = orgsevents.StreamName
	// HeaderSeq carries the event's seq; the relay reads it back from the stream's last
	// message to know where the stream stands.
	HeaderSeq = orgsevents.HeaderSeq
)

// Subject returns the NATS subject of an event type: "orgs.events.<type>".
func Subject(typ string) string { return orgsevents.Subject(typ) }

// StreamConfig is the operator-tunable part of the ORGS_EVENTS stream.
type StreamConfig struct {
	// Replicas is the number of copies in a NATS cluster (default 1; 3 in a cluster).
	Replicas int
	// MaxAge is how long events stay on the stream (default 7 days).
	MaxAge time.Duration
	// DuplicateWindow is how long JetStream remembers Nats-Msg-Id values to drop
	// duplicates (default 10 minutes, at most MaxAge). It must cover relay retries; the
	// relay's own order check makes it a second line of defence.
	DuplicateWindow time.Duration
}

func (c StreamConfig) withDefaults() StreamConfig {
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.MaxAge <= 0 {
		c.MaxAge = 7 * 24 * time.Hour
	}
	if c.DuplicateWindow <= 0 {
		c.DuplicateWindow = 10 * time.Minute
	}
	if c.DuplicateWindow > c.MaxAge {
		c.DuplicateWindow = c.MaxAge
	}
	return c
}

// EnsureStream creates the ORGS_EVENTS stream on "orgs.events.>", or updates its
// configuration, and returns it.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg StreamConfig) (jetstream.Stream, error) {
	cfg = cfg.withDefaults()
	s, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        StreamName,
		Description: "orgs domain events (CloudEvents 1.0, JSON)",
		Subjects:    []string{orgsevents.SubjectPrefix + ">"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      cfg.MaxAge,
		Replicas:    cfg.Replicas,
		Duplicates:  cfg.DuplicateWindow,
		// The relay reads the last message back after a failure to learn which events
		// made it; deleting messages would hide that.
		DenyDelete: true,
	})
	if err != nil {
		return nil, fmt.Errorf("ensure stream %s: %w", StreamName, err)
	}
	return s, nil
}
