package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// StoredEvent is an outbox row that the relay has sequenced.
type StoredEvent struct {
	Seq     int64
	ID      string
	Type    string
	Subject string
	Data    json.RawMessage
	Time    time.Time
}

// FindEvents returns up to limit sequenced events with seq > after, in seq order: the
// replay of the event stream.
func (s *Store) FindEvents(ctx context.Context, after int64, limit int) ([]StoredEvent, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT seq, id, type, subject, data, occurred_at FROM outbox
		WHERE seq > $1 ORDER BY seq LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("find events: %w", err)
	}
	evs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (StoredEvent, error) {
		var e StoredEvent
		return e, r.Scan(&e.Seq, &e.ID, &e.Type, &e.Subject, &e.Data, &e.Time)
	})
	if err != nil {
		return nil, fmt.Errorf("find events: %w", err)
	}
	if evs == nil {
		evs = []StoredEvent{}
	}
	return evs, nil
}
