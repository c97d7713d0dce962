-- +goose Up
-- activated_at is when the user was last activated (null: never). Activation links are
-- bound to it (and to the address), so a link dies for good when its user is activated,
-- even if the user is deactivated later.
ALTER TABLE users ADD COLUMN activated_at timestamptz;
UPDATE users SET activated_at = updated_at WHERE is_active;

-- +goose Down
ALTER TABLE users DROP COLUMN activated_at;
