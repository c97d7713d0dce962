package orgsevents

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Names on the stream.
const (
	// StreamName is the JetStream stream that holds every event.
	StreamName = "ORGS_EVENTS"
	// SubjectPrefix starts every event's subject: "orgs.events.<type>".
	SubjectPrefix = "orgs.events."
	// HeaderSeq is the NATS header that carries the event's seq, so that tools can read it
	// without parsing the body.
	HeaderSeq = "Orgs-Seq"
)

// Subject returns the NATS subject of an event type.
func Subject(typ string) string { return SubjectPrefix + typ }

// Event is a CloudEvents 1.0 event in structured JSON mode, with orgs' extension attribute
// seq. Subject is the organization id, or the user id for user_activated.
type Event struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject"`
	Time            time.Time       `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	Seq             int64           `json:"seq"`
	Data            json.RawMessage `json:"data"`
}

// Parse decodes a structured CloudEvent and checks the attributes orgs always sets.
func Parse(b []byte) (Event, error) {
	var ev Event
	if err := json.Unmarshal(b, &ev); err != nil {
		return Event{}, fmt.Errorf("parse event: %w", err)
	}
	switch {
	case ev.SpecVersion != "1.0":
		return Event{}, fmt.Errorf("parse event: specversion %q, want 1.0", ev.SpecVersion)
	case ev.ID == "" || ev.Type == "":
		return Event{}, errors.New("parse event: missing id or type")
	case len(ev.Data) == 0:
		return Event{}, fmt.Errorf("parse event %s: missing data", ev.ID)
	}
	return ev, nil
}

// Decode unmarshals the event's data into v, usually a pointer to the struct of its type
// (for example *MemberAdded for member_added).
func (e Event) Decode(v any) error {
	if err := json.Unmarshal(e.Data, v); err != nil {
		return fmt.Errorf("decode event %s data: %w", e.ID, err)
	}
	return nil
}
