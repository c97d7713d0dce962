-- +goose Up
-- The organizations a sign-up's user joins on activation are the inactive ones they own:
-- found by this index, not by a scan of every organization (see joinableOrgs).
CREATE INDEX organizations_inactive_owner_idx ON organizations (owner_id) WHERE NOT is_active;

-- +goose Down
DROP INDEX organizations_inactive_owner_idx;
