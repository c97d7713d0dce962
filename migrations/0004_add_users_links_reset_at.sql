-- +goose Up
-- links_reset_at is when the user's activation links were last reset (null: never): on
-- every activation, and when the user declines by link. Activation links are bound to it
-- (and to the address), so a link dies for good when its user is activated, even if the
-- user is deactivated later, and when it was used to decline.
ALTER TABLE users ADD COLUMN links_reset_at timestamptz;
UPDATE users SET links_reset_at = updated_at WHERE is_active;

-- +goose Down
ALTER TABLE users DROP COLUMN links_reset_at;
