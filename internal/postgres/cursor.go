package postgres

import (
	"time"
)

// Cursor is a keyset position in a list ordered by (created_at, id).
type Cursor struct {
	Time time.Time
	ID   string
}

// uuid returns the cursor's id, or the nil UUID at the start of a list.
func (c Cursor) uuid() string {
	if c.ID == "" || !validUUID(c.ID) {
		return "00000000-0000-0000-0000-000000000000"
	}
	return c.ID
}

// Page is one page of a list; Next is nil on the last page.
type Page[T any] struct {
	Items []T
	Next  *Cursor
}

// page trims items fetched with limit+1 to limit and sets the next cursor when there was
// one more.
func page[T any](items []T, limit int, key func(T) Cursor) Page[T] {
	p := Page[T]{Items: items}
	if p.Items == nil {
		p.Items = []T{}
	}
	if len(items) > limit {
		p.Items = items[:limit]
		next := key(items[limit-1])
		p.Next = &next
	}
	return p
}
