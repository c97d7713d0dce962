package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/orgs-dev/orgs/internal/domain"
)

// CreateOrganizationInput creates an organization. Slug is generated from Name when nil.
type CreateOrganizationInput struct {
	Name     string
	Slug     *string
	Metadata json.RawMessage
}

// CreateOrganization creates an active organization owned by the acting user, who becomes
// its first member, an admin. Emits org_created and member_added. Returns
// domain.ErrForbidden when the actor is not a user, domain.ErrSlugTaken for a given slug
// that is taken.
func (s *Store) CreateOrganization(ctx context.Context, actor domain.Actor, in CreateOrganizationInput) (domain.Organization, error) {
	if actor.UserID == "" {
		return domain.Organization{}, domain.ErrForbidden
	}
	var org domain.Organization
	err := s.write(ctx, func(c *change) error {
		owner, err := findUserByIDTx(ctx, c.tx, actor.UserID)
		if err != nil {
			return err
		}
		org, err = createOrganizationTx(ctx, c, owner, in, true, actor)
		return err
	})
	return org, err
}

// createOrganizationTx creates an organization owned by owner (an admin member) and emits
// org_created and member_added.
func createOrganizationTx(ctx context.Context, c *change, owner domain.User, in CreateOrganizationInput, active bool, actor domain.Actor) (domain.Organization, error) {
	id := newID()
	meta := in.Metadata
	if len(meta) == 0 {
		meta = json.RawMessage(`{}`)
	}
	var org domain.Organization
	insert := func(slug string) (bool, error) {
		err := scanOrg(c.tx.QueryRow(ctx, `
			INSERT INTO organizations AS o (id, name, slug, is_active, owner_id, metadata)
			VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (slug) DO NOTHING
			RETURNING `+orgColumns, id, in.Name, slug, active, owner.ID, meta), &org)
		if errors.Is(err, pgx.ErrNoRows) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("create organization: %w", err)
		}
		return true, nil
	}
	if in.Slug != nil {
		ok, err := insert(*in.Slug)
		if err != nil {
			return org, err
		}
		if !ok {
			return org, domain.ErrSlugTaken
		}
	} else {
		base := domain.Slugify(in.Name)
		// Creators of the same name queue here (until commit), so each sees the slugs
		// the previous ones took instead of racing for the same number.
		if _, err := c.tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('orgs_slug:' || $1))`, base); err != nil {
			return org, fmt.Errorf("lock slug %q: %w", base, err)
		}
		for attempt := 0; ; attempt++ {
			n, err := freeSlugNumber(ctx, c.tx, base)
			if err != nil {
				return org, err
			}
			ok, err := insert(domain.SlugCandidate(base, n))
			if err != nil {
				return org, err
			}
			if ok {
				break
			}
			if attempt > 20 { // only explicit slugs racing with generated ones get here
				return org, fmt.Errorf("create organization: no free slug for %q", base)
			}
		}
	}
	var m domain.Member
	if err := scanMembership(c.tx.QueryRow(ctx, `
		INSERT INTO memberships AS m (organization_id, user_id, is_admin, pending)
		VALUES ($1, $2, true, false)
		RETURNING `+membershipColumns, org.ID, owner.ID), &m); err != nil {
		return org, fmt.Errorf("create owner membership: %w", err)
	}
	m.User = owner
	m.IsOwner = true
	m.Role = domain.RoleOwner
	c.emit(domain.Event{Type: domain.OrgCreated, Subject: org.ID, OrganizationID: org.ID, Data: map[string]any{
		"organization": org, "owner_id": owner.ID, "actor_id": actorRef(actor),
	}})
	c.emit(memberAddedEvent(org.ID, owner, true, actor))
	return org, nil
}

// freeSlugNumber returns the smallest n ≥ 1 such that SlugCandidate(base, n) is free.
func freeSlugNumber(ctx context.Context, tx pgx.Tx, base string) (int, error) {
	rows, err := tx.Query(ctx, `SELECT slug FROM organizations WHERE slug = $1 OR slug LIKE $2`,
		base, strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(base)+"-%")
	if err != nil {
		return 0, fmt.Errorf("find slugs: %w", err)
	}
	taken := map[int]bool{}
	slugs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, fmt.Errorf("find slugs: %w", err)
	}
	for _, s := range slugs {
		if s == base {
			taken[1] = true
		} else if n, err := strconv.Atoi(s[len(base)+1:]); err == nil && n >= 2 {
			taken[n] = true
		}
	}
	n := 1
	for taken[n] {
		n++
	}
	return n, nil
}

// FindOrganization returns organization id to a member (or a superuser). Returns
// domain.ErrNotFound for anyone else.
func (s *Store) FindOrganization(ctx context.Context, actor domain.Actor, id string) (domain.Organization, error) {
	if !validUUID(id) {
		return domain.Organization{}, domain.ErrNotFound
	}
	var (
		org    domain.Organization
		member bool
	)
	err := scanOrg(s.pool.QueryRow(ctx, `
		SELECT `+orgColumns+`, EXISTS (SELECT 1 FROM memberships m WHERE m.organization_id = o.id AND m.user_id = $2 AND NOT m.pending)
		FROM organizations o WHERE o.id = $1`, id, nullUUID(actor.UserID)), &org, &member)
	if err != nil {
		return org, translate(fmt.Errorf("find organization %s: %w", id, err))
	}
	if !member && !actor.IsSuperuser() {
		return domain.Organization{}, domain.ErrNotFound
	}
	return org, nil
}

// OrganizationFilter selects organizations for FindOrganizations.
type OrganizationFilter struct {
	IncludeInactive bool
	After           Cursor
	Limit           int
}

// FindOrganizations returns the actor's organizations (active memberships), or every
// organization for a superuser; inactive ones only with IncludeInactive.
func (s *Store) FindOrganizations(ctx context.Context, actor domain.Actor, f OrganizationFilter) (Page[domain.Organization], error) {
	var (
		rows pgx.Rows
		err  error
	)
	if actor.IsSuperuser() {
		rows, err = s.pool.Query(ctx, `
			SELECT `+orgColumns+` FROM organizations o
			WHERE (o.is_active OR $1) AND (o.created_at, o.id) > ($2, $3::uuid)
			ORDER BY o.created_at, o.id LIMIT $4`, f.IncludeInactive, f.After.Time, f.After.uuid(), f.Limit+1)
	} else {
		rows, err = s.pool.Query(ctx, `
			SELECT `+orgColumns+` FROM memberships m JOIN organizations o ON o.id = m.organization_id
			WHERE m.user_id = $5 AND NOT m.pending
			  AND (o.is_active OR $1) AND (o.created_at, o.id) > ($2, $3::uuid)
			ORDER BY o.created_at, o.id LIMIT $4`, f.IncludeInactive, f.After.Time, f.After.uuid(), f.Limit+1, nullUUID(actor.UserID))
	}
	if err != nil {
		return Page[domain.Organization]{}, fmt.Errorf("find organizations: %w", err)
	}
	orgs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.Organization, error) {
		var o domain.Organization
		return o, scanOrg(r, &o)
	})
	if err != nil {
		return Page[domain.Organization]{}, fmt.Errorf("find organizations: %w", err)
	}
	return page(orgs, f.Limit, func(o domain.Organization) Cursor { return Cursor{o.CreatedAt, o.ID} }), nil
}

// UpdateOrganizationInput changes an organization; nil fields are left alone.
type UpdateOrganizationInput struct {
	Name     *string
	Slug     *string
	IsActive *bool
	Metadata json.RawMessage
}

// UpdateOrganization changes organization id (admins). The slug is kept on rename unless
// given. Emits org_updated with the changed fields when anything changed. Returns
// domain.ErrNotFound, domain.ErrForbidden, domain.ErrSlugTaken.
func (s *Store) UpdateOrganization(ctx context.Context, actor domain.Actor, id string, in UpdateOrganizationInput) (domain.Organization, error) {
	var org domain.Organization
	err := s.write(ctx, func(c *change) error {
		l, err := lockOrg(ctx, c.tx, actor, id, domain.RoleAdmin)
		if err != nil {
			return err
		}
		org = l.org
		var changed []string
		if in.Name != nil && *in.Name != org.Name {
			changed = append(changed, "name")
		}
		if in.Slug != nil && *in.Slug != org.Slug {
			changed = append(changed, "slug")
		}
		if in.IsActive != nil && *in.IsActive != org.IsActive {
			changed = append(changed, "is_active")
		}
		if in.Metadata != nil && !jsonEqual(in.Metadata, org.Metadata) {
			changed = append(changed, "metadata")
		}
		if len(changed) == 0 {
			return nil
		}
		var meta any
		if in.Metadata != nil {
			meta = in.Metadata
		}
		err = scanOrg(c.tx.QueryRow(ctx, `
			UPDATE organizations AS o SET
				name = coalesce($2, o.name), slug = coalesce($3, o.slug),
				is_active = coalesce($4, o.is_active), metadata = coalesce($5::jsonb, o.metadata),
				updated_at = now()
			WHERE o.id = $1
			RETURNING `+orgColumns, id, in.Name, in.Slug, in.IsActive, meta), &org)
		if err != nil {
			return fmt.Errorf("update organization %s: %w", id, err)
		}
		c.emit(domain.Event{Type: domain.OrgUpdated, Subject: org.ID, OrganizationID: org.ID, Data: map[string]any{
			"organization": org, "changed": changed, "actor_id": actorRef(actor),
		}})
		return nil
	})
	return org, err
}

// DeleteOrganization deletes organization id (its owner only): its memberships, owner and
// invitations go, users stay. Emits member_removed for each membership, then org_deleted.
func (s *Store) DeleteOrganization(ctx context.Context, actor domain.Actor, id string) error {
	return s.write(ctx, func(c *change) error {
		l, err := lockOrg(ctx, c.tx, actor, id, domain.RoleOwner)
		if err != nil {
			return err
		}
		rows, err := c.tx.Query(ctx, `DELETE FROM memberships WHERE organization_id = $1 RETURNING user_id`, id)
		if err != nil {
			return fmt.Errorf("delete memberships: %w", err)
		}
		members, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("delete memberships: %w", err)
		}
		if _, err := c.tx.Exec(ctx, `DELETE FROM organizations WHERE id = $1`, id); err != nil {
			return fmt.Errorf("delete organization %s: %w", id, err)
		}
		for _, userID := range members {
			c.emit(memberRemovedEvent(id, userID, actor))
		}
		c.emit(domain.Event{Type: domain.OrgDeleted, Subject: id, OrganizationID: id, Data: map[string]any{
			"organization_id": id, "slug": l.org.Slug, "actor_id": actorRef(actor),
		}})
		return nil
	})
}

// TransferOwnership makes newOwnerID, an active member, the owner (and an admin) of
// organization id; the old owner stays an admin member. Only the owner may do it. Emits
// owner_changed, and member_updated when the new owner was not an admin. Returns
// domain.ErrNotAMember, domain.ErrMemberNotActive, domain.ErrForbidden, domain.ErrNotFound.
func (s *Store) TransferOwnership(ctx context.Context, actor domain.Actor, id, newOwnerID string) (domain.Organization, error) {
	var org domain.Organization
	err := s.write(ctx, func(c *change) error {
		l, err := lockOrg(ctx, c.tx, actor, id, domain.RoleOwner)
		if err != nil {
			return err
		}
		org = l.org
		var isAdmin, pending, active bool
		member := validUUID(newOwnerID)
		if member {
			err = c.tx.QueryRow(ctx, `
				SELECT m.is_admin, m.pending, u.is_active FROM memberships m JOIN users u ON u.id = m.user_id
				WHERE m.organization_id = $1 AND m.user_id = $2 FOR UPDATE OF m`, id, newOwnerID).Scan(&isAdmin, &pending, &active)
			if errors.Is(err, pgx.ErrNoRows) {
				member = false
			} else if err != nil {
				return fmt.Errorf("find new owner: %w", err)
			}
		}
		if err := domain.CheckNewOwner(member, pending, active); err != nil {
			return err
		}
		if newOwnerID == org.OwnerID {
			return nil
		}
		oldOwner := org.OwnerID
		if !isAdmin {
			if _, err := c.tx.Exec(ctx, `UPDATE memberships SET is_admin = true WHERE organization_id = $1 AND user_id = $2`, id, newOwnerID); err != nil {
				return fmt.Errorf("make new owner admin: %w", err)
			}
		}
		if err := scanOrg(c.tx.QueryRow(ctx, `
			UPDATE organizations AS o SET owner_id = $2, updated_at = now() WHERE o.id = $1
			RETURNING `+orgColumns, id, newOwnerID), &org); err != nil {
			return fmt.Errorf("transfer ownership: %w", err)
		}
		if !isAdmin {
			c.emit(domain.Event{Type: domain.MemberUpdated, Subject: id, OrganizationID: id, Data: map[string]any{
				"organization_id": id, "user_id": newOwnerID, "is_admin": true, "actor_id": actorRef(actor),
			}})
		}
		c.emit(domain.Event{Type: domain.OwnerChanged, Subject: id, OrganizationID: id, Data: map[string]any{
			"organization_id": id, "old_owner_id": oldOwner, "new_owner_id": newOwnerID, "actor_id": actorRef(actor),
		}})
		return nil
	})
	return org, err
}

// jsonEqual reports whether two JSON documents are equal as values.
func jsonEqual(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}

// findUserByIDTx returns user id inside a transaction, or domain.ErrNotFound.
func findUserByIDTx(ctx context.Context, tx pgx.Tx, id string) (domain.User, error) {
	var u domain.User
	if err := scanUser(tx.QueryRow(ctx, `SELECT `+userColumns+` FROM users u WHERE u.id = $1`, id), &u); err != nil {
		return u, translate(fmt.Errorf("find user %s: %w", id, err))
	}
	return u, nil
}
