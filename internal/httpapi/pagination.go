package httpapi

import (
	"encoding/base64"
	"errors"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"
)

// Page sizes of the contract.
const (
	defaultLimit = 50
	maxLimit     = 200
)

// Pagination holds a list's query parameters; embed it in an operation's input:
//
//	type listMembersInput struct {
//		OrgID string `path:"org_id"`
//		Pagination
//	}
//
// huma checks limit (1 to 200, else 422 at query.limit) and Resolve checks the cursor
// (422 at query.cursor), so a handler gets valid values: Limit, and After (zero at the
// start) with AfterID.
type Pagination struct {
	Limit  int    `query:"limit" default:"50" minimum:"1" maximum:"200" doc:"Page size"`
	Cursor string `query:"cursor" maxLength:"200" doc:"Opaque cursor from the previous page's next_cursor"`

	// After and AfterID are the decoded cursor.
	After   time.Time `json:"-"`
	AfterID string    `json:"-"`
}

// Resolve implements huma.Resolver: it decodes the cursor.
func (p *Pagination) Resolve(huma.Context) []error {
	if p.Limit == 0 {
		p.Limit = defaultLimit
	}
	if p.Cursor == "" {
		return nil
	}
	t, id, err := decodeCursor(p.Cursor)
	if err != nil {
		return []error{&huma.ErrorDetail{Location: "query.cursor", Message: "is not a cursor from this API"}}
	}
	p.After, p.AfterID = t, id
	return nil
}

var errBadCursor = errors.New("malformed cursor")

// encodeCursor returns the opaque cursor of the keyset position (t, id): base64url of
// "RFC 3339 time with nanoseconds,id".
func encodeCursor(t time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(t.UTC().Format(time.RFC3339Nano) + "," + id))
}

// decodeCursor reverses encodeCursor. Returns an error for anything encodeCursor did not
// make, including an id that is not a UUID (it goes into a SQL query).
func decodeCursor(s string) (time.Time, string, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return time.Time{}, "", errBadCursor
	}
	ts, id, ok := strings.Cut(string(b), ",")
	if !ok {
		return time.Time{}, "", errBadCursor
	}
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return time.Time{}, "", errBadCursor
	}
	if _, err := uuid.Parse(id); err != nil || len(id) != 36 {
		return time.Time{}, "", errBadCursor
	}
	return t.UTC(), id, nil
}

// listResponse is the body of every list: {"items": [...], "next_cursor": "..."|null}.
type listResponse[T any] struct {
	Items      []T     `json:"items" nullable:"false"`
	NextCursor *string `json:"next_cursor" doc:"Cursor of the next page; null on the last page"`
}

// listOutput is a list operation's output.
type listOutput[T any] struct {
	Body listResponse[T]
}

// newList returns a page of items; next is the cursor of the next page, "" on the last.
// items is never rendered as null.
func newList[T any](items []T, next string) *listOutput[T] {
	if items == nil {
		items = []T{}
	}
	out := &listOutput[T]{Body: listResponse[T]{Items: items}}
	if next != "" {
		out.Body.NextCursor = &next
	}
	return out
}
