package httpapi

import (
	"context"
	"encoding/json"

	"github.com/orgs-dev/orgs/internal/events"
)

type listEventsInput struct {
	After int64 `query:"after" minimum:"0" doc:"Return events with seq greater than this"`
	Limit int   `query:"limit" default:"50" minimum:"1" maximum:"200"`
}

type listEventsOutput struct {
	Body struct {
		Items     []json.RawMessage `json:"items" doc:"CloudEvents 1.0 structured JSON, in seq order" nullable:"false"`
		NextAfter int64             `json:"next_after" doc:"Pass as after to continue"`
	}
}

func (h *handlers) listEvents(ctx context.Context, in *listEventsInput) (*listEventsOutput, error) {
	if _, err := requireService(ctx); err != nil {
		return nil, err
	}
	if in.Limit == 0 {
		in.Limit = defaultLimit
	}
	evs, err := h.store.FindEvents(ctx, in.After, in.Limit)
	if err != nil {
		return nil, err
	}
	out := &listEventsOutput{}
	out.Body.Items = make([]json.RawMessage, len(evs))
	out.Body.NextAfter = in.After
	for i, e := range evs {
		out.Body.Items[i] = events.Marshal(events.Envelope{
			ID: e.ID, Source: h.cfg.EventSource, Type: e.Type, Subject: e.Subject, Time: e.Time, Seq: e.Seq, Data: e.Data,
		})
		out.Body.NextAfter = e.Seq
	}
	return out, nil
}
