package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/orgs-dev/orgs/internal/domain"
	"github.com/orgs-dev/orgs/internal/postgres"
)

// maxMetadataInput bounds the metadata a request may send, before decoding: room for
// the whitespace of a pretty-printed document that is within domain.MaxMetadataBytes once
// stored.
const maxMetadataInput = 4 * domain.MaxMetadataBytes

// checkMetadata records a problem at loc unless raw is a JSON object whose keys and
// strings can be stored (no NUL) and that is at most 16 KiB once stored (storedJSONSize:
// invalid UTF-8 becomes U+FFFD, 1e1000 a thousand digits), and returns it normalized.
func checkMetadata(v *domain.Validator, loc string, raw json.RawMessage) json.RawMessage {
	if raw == nil {
		return nil
	}
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' {
		v.Add(loc, "must be a JSON object")
		return nil
	}
	if len(raw) > maxMetadataInput {
		v.Add(loc, "must be at most 16 KiB")
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		v.Add(loc, "must be a JSON object")
		return nil
	}
	if !storableJSON(doc) || lonelySurrogate(raw) {
		v.Add(loc, "must not contain NUL characters or unpaired surrogates")
		return nil
	}
	if storedJSONSize(doc, domain.MaxMetadataBytes) > domain.MaxMetadataBytes {
		v.Add(loc, "must be at most 16 KiB once stored")
		return nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		v.Add(loc, "must be a JSON object")
		return nil
	}
	return bytes.TrimSpace(buf.Bytes())
}

// storableJSON reports whether no key or string in doc holds a NUL character.
func storableJSON(doc any) bool {
	switch d := doc.(type) {
	case string:
		return strings.IndexByte(d, 0) < 0
	case map[string]any:
		for k, x := range d {
			if strings.IndexByte(k, 0) >= 0 || !storableJSON(x) {
				return false
			}
		}
	case []any:
		for _, x := range d {
			if !storableJSON(x) {
				return false
			}
		}
	}
	return true
}

// storedJSONSize returns the length of doc (decoded with UseNumber) as Postgres prints
// it back from a jsonb column, which is what the API returns: ", " and ": " between
// members and elements, strings escaped as Postgres' escape_json does, numbers as numeric
// prints them (1.50e1 is 15.0, 1e3 is 1000). It stops counting once the size passes
// limit, so that a hostile number (1e99999) costs nothing; the result is then above limit
// but not exact.
func storedJSONSize(doc any, limit int) int {
	n := 0
	var walk func(x any)
	walk = func(x any) {
		if n > limit {
			return
		}
		switch d := x.(type) {
		case nil:
			n += len("null")
		case bool:
			if d {
				n += len("true")
			} else {
				n += len("false")
			}
		case json.Number:
			n += numericSize(string(d), limit)
		case string:
			n += quotedSize(d)
		case []any:
			n += len("[]") + max(0, len(d)-1)*len(", ")
			for _, e := range d {
				walk(e)
			}
		case map[string]any:
			n += len("{}") + max(0, len(d)-1)*len(", ")
			for k, e := range d {
				n += quotedSize(k) + len(": ")
				walk(e)
			}
		default:
			n += limit + 1 // not a type json.Decoder produces
		}
	}
	walk(doc)
	return n
}

// quotedSize is the length of s quoted by Postgres' escape_json: the quotes, two bytes for
// a quote, a backslash, \b, \f, \n, \r and \t, six (\u00XX) for the other control characters.
func quotedSize(s string) int {
	n := 2
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"', c == '\\', c == '\b', c == '\f', c == '\n', c == '\r', c == '\t':
			n += 2
		case c < 0x20:
			n += 6
		default:
			n++
		}
	}
	return n
}

// numericSize is the length of the JSON number lit as Postgres' numeric prints it: no
// exponent, the integer digits without leading zeros (at least "0"), and as many
// decimals as lit's fraction has digits minus its exponent. A size above limit is
// returned as limit+1.
func numericSize(lit string, limit int) int {
	neg := strings.HasPrefix(lit, "-")
	lit = strings.TrimPrefix(lit, "-")
	mant, exp := lit, 0
	if i := strings.IndexAny(lit, "eE"); i >= 0 {
		mant = lit[:i]
		e, err := strconv.Atoi(strings.TrimPrefix(lit[i+1:], "+"))
		if err != nil || e > limit || e < -limit {
			return limit + 1
		}
		exp = e
	}
	intPart, frac, _ := strings.Cut(mant, ".")
	digits := strings.TrimLeft(intPart+frac, "0")
	point := len(intPart) + exp - (len(intPart) + len(frac) - len(digits)) // decimal point, counted in digits
	scale := max(0, len(frac)-exp)
	n := 1
	if digits != "" && point > 1 {
		n = point
	}
	if digits != "" && neg {
		n++ // -0 prints as 0
	}
	if scale > 0 {
		n += 1 + scale
	}
	return min(n, limit+1)
}

// lonelySurrogate reports whether raw JSON holds a \uD800-\uDFFF escape that is not a
// high surrogate followed by a low one: Go would decode it to U+FFFD, Postgres refuses it,
// and the caller's data would change silently.
func lonelySurrogate(raw []byte) bool {
	hexAt := func(i int) (int, bool) {
		if i+6 > len(raw) || raw[i] != '\\' || raw[i+1] != 'u' {
			return 0, false
		}
		n := 0
		for _, c := range raw[i+2 : i+6] {
			switch {
			case c >= '0' && c <= '9':
				n = n*16 + int(c-'0')
			case c >= 'a' && c <= 'f':
				n = n*16 + int(c-'a'+10)
			case c >= 'A' && c <= 'F':
				n = n*16 + int(c-'A'+10)
			default:
				return 0, false
			}
		}
		return n, true
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		if i+1 < len(raw) && raw[i+1] == '\\' {
			i++ // an escaped backslash
			continue
		}
		n, ok := hexAt(i)
		if !ok {
			continue
		}
		switch {
		case n >= 0xD800 && n <= 0xDBFF:
			low, ok := hexAt(i + 6)
			if !ok || low < 0xDC00 || low > 0xDFFF {
				return true
			}
			i += 11
		case n >= 0xDC00 && n <= 0xDFFF:
			return true
		default:
			i += 5
		}
	}
	return false
}

// checkText records a problem at loc when s cannot be stored as text.
func checkText(v *domain.Validator, loc, s string) {
	if msg := domain.ValidText(s); msg != "" {
		v.Add(loc, msg)
	}
}

// checkSlug records a problem at loc when slug is given and invalid.
func checkSlug(v *domain.Validator, loc string, slug *string) {
	if slug == nil {
		return
	}
	if msg := domain.ValidSlug(*slug); msg != "" {
		v.Add(loc, msg)
	}
}

type organizationOutput struct {
	Body domain.Organization
}

type createOrganizationInput struct {
	Body struct {
		Name     string          `json:"name" maxLength:"200"`
		Slug     *string         `json:"slug,omitempty" maxLength:"100" doc:"Generated from the name when left out"`
		Metadata json.RawMessage `json:"metadata,omitempty" doc:"A JSON object of at most 16 KiB"`
	}
}

func (h *handlers) createOrganization(ctx context.Context, in *createOrganizationInput) (*organizationOutput, error) {
	actor, err := requireUser(ctx)
	if err != nil {
		return nil, err
	}
	var v domain.Validator
	checkName(&v, "body.name", in.Body.Name, true)
	checkSlug(&v, "body.slug", in.Body.Slug)
	meta := checkMetadata(&v, "body.metadata", in.Body.Metadata)
	if err := v.Err(); err != nil {
		return nil, err
	}
	org, err := h.store.CreateOrganization(ctx, actor, postgres.CreateOrganizationInput{
		Name: in.Body.Name, Slug: in.Body.Slug, Metadata: meta,
	})
	if err != nil {
		return nil, err
	}
	return &organizationOutput{Body: org}, nil
}

type orgPath struct {
	OrgID string `path:"org_id"`
}

func (h *handlers) getOrganization(ctx context.Context, in *orgPath) (*organizationOutput, error) {
	actor, err := requireActor(ctx)
	if err != nil {
		return nil, err
	}
	org, err := h.store.FindOrganization(ctx, actor, in.OrgID)
	if err != nil {
		return nil, err
	}
	return &organizationOutput{Body: org}, nil
}

type listOrganizationsInput struct {
	IncludeInactive bool `query:"include_inactive" doc:"Also list inactive organizations"`
	Pagination
}

type organizationListOutput struct {
	Body listResponse[domain.Organization]
}

func (h *handlers) listOrganizations(ctx context.Context, in *listOrganizationsInput) (*organizationListOutput, error) {
	actor, err := requireActor(ctx)
	if err != nil {
		return nil, err
	}
	p, err := h.store.FindOrganizations(ctx, actor, postgres.OrganizationFilter{
		IncludeInactive: in.IncludeInactive, After: postgres.Cursor{Time: in.After, ID: in.AfterID}, Limit: in.Limit,
	})
	if err != nil {
		return nil, err
	}
	return &organizationListOutput{Body: newList(p.Items, nextCursor(p.Next)).Body}, nil
}

type updateOrganizationInput struct {
	OrgID string `path:"org_id"`
	Body  struct {
		Name     *string         `json:"name,omitempty" maxLength:"200"`
		Slug     *string         `json:"slug,omitempty" maxLength:"100"`
		IsActive *bool           `json:"is_active,omitempty"`
		Metadata json.RawMessage `json:"metadata,omitempty" doc:"Replaces the metadata; a JSON object of at most 16 KiB"`
	}
}

func (h *handlers) updateOrganization(ctx context.Context, in *updateOrganizationInput) (*organizationOutput, error) {
	actor, err := requireActor(ctx)
	if err != nil {
		return nil, err
	}
	var v domain.Validator
	if in.Body.Name != nil {
		checkName(&v, "body.name", *in.Body.Name, true)
	}
	checkSlug(&v, "body.slug", in.Body.Slug)
	meta := checkMetadata(&v, "body.metadata", in.Body.Metadata)
	if err := v.Err(); err != nil {
		return nil, err
	}
	org, err := h.store.UpdateOrganization(ctx, actor, in.OrgID, postgres.UpdateOrganizationInput{
		Name: in.Body.Name, Slug: in.Body.Slug, IsActive: in.Body.IsActive, Metadata: meta,
	})
	if err != nil {
		return nil, err
	}
	return &organizationOutput{Body: org}, nil
}

func (h *handlers) deleteOrganization(ctx context.Context, in *orgPath) (*struct{}, error) {
	actor, err := requireActor(ctx)
	if err != nil {
		return nil, err
	}
	return nil, h.store.DeleteOrganization(ctx, actor, in.OrgID)
}

type transferOwnershipInput struct {
	OrgID string `path:"org_id"`
	Body  struct {
		UserID string `json:"user_id" maxLength:"36" format:"uuid" doc:"An active member, who becomes owner and admin"`
	}
}

func (h *handlers) transferOwnership(ctx context.Context, in *transferOwnershipInput) (*organizationOutput, error) {
	actor, err := requireActor(ctx)
	if err != nil {
		return nil, err
	}
	// A malformed id is the caller's mistake, not an unknown member (409 not_a_member).
	if _, err := uuid.Parse(in.Body.UserID); err != nil || len(in.Body.UserID) != 36 {
		var v domain.Validator
		v.Add("body.user_id", "must be a user id (a UUID)")
		return nil, v.Err()
	}
	org, err := h.store.TransferOwnership(ctx, actor, in.OrgID, in.Body.UserID)
	if err != nil {
		return nil, err
	}
	return &organizationOutput{Body: org}, nil
}
