-- +goose Up
CREATE TABLE users (
	id            uuid PRIMARY KEY,
	email         text NOT NULL,
	name          text NOT NULL DEFAULT '',
	is_active     boolean NOT NULL DEFAULT false,
	external_id   text,
	password_hash text,
	created_at    timestamptz NOT NULL DEFAULT now(),
	updated_at    timestamptz NOT NULL DEFAULT now()
);
-- Emails are compared case-insensitively and stored as given.
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE UNIQUE INDEX users_external_id_key ON users (external_id) WHERE external_id IS NOT NULL;
CREATE INDEX users_created_at_idx ON users (created_at, id);

CREATE TABLE organizations (
	id         uuid PRIMARY KEY,
	name       text NOT NULL,
	slug       text NOT NULL,
	is_active  boolean NOT NULL DEFAULT true,
	-- Exactly one owner per organization: owner_id is NOT NULL and, through the deferred
	-- composite foreign key below, always a membership of this same organization.
	owner_id   uuid NOT NULL,
	metadata   jsonb NOT NULL DEFAULT '{}',
	created_at timestamptz NOT NULL DEFAULT now(),
	updated_at timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT organizations_slug_key UNIQUE (slug)
);
CREATE INDEX organizations_created_at_idx ON organizations (created_at, id);
-- Slug generation looks up "base" and "base-N" by prefix.
CREATE INDEX organizations_slug_pattern_idx ON organizations (slug text_pattern_ops);

CREATE TABLE memberships (
	organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
	user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	is_admin        boolean NOT NULL DEFAULT false,
	-- pending: invited and not yet accepted (an inactive user's, or require_acceptance).
	pending         boolean NOT NULL DEFAULT false,
	metadata        jsonb NOT NULL DEFAULT '{}',
	created_at      timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (organization_id, user_id)
);
CREATE INDEX memberships_user_id_idx ON memberships (user_id, organization_id);
CREATE INDEX memberships_org_created_idx ON memberships (organization_id, created_at, user_id);

ALTER TABLE organizations
	ADD CONSTRAINT organizations_owner_membership_fkey
	FOREIGN KEY (id, owner_id) REFERENCES memberships (organization_id, user_id)
	DEFERRABLE INITIALLY DEFERRED;

CREATE TABLE invitations (
	id              uuid PRIMARY KEY,
	organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
	email           text NOT NULL,
	user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	invited_by      uuid REFERENCES users (id) ON DELETE SET NULL,
	is_admin        boolean NOT NULL DEFAULT false,
	status          text NOT NULL DEFAULT 'pending'
		CHECK (status IN ('pending', 'accepted', 'declined', 'revoked', 'expired')),
	-- require_acceptance: sent to an already active user, who accepts while logged in.
	require_acceptance boolean NOT NULL DEFAULT false,
	message         text NOT NULL DEFAULT '',
	metadata        jsonb NOT NULL DEFAULT '{}',
	created_at      timestamptz NOT NULL DEFAULT now(),
	expires_at      timestamptz NOT NULL,
	reminders_sent  integer NOT NULL DEFAULT 0,
	-- the last scheduled reminder (1, 2, ... of ORGS_REMINDER_SCHEDULE) sent; manual
	-- reminders count in reminders_sent only, so they do not shift the schedule.
	scheduled_reminders integer NOT NULL DEFAULT 0,
	last_sent_at    timestamptz,
	responded_at    timestamptz
);
-- At most one pending invitation per (organization, email).
CREATE UNIQUE INDEX invitations_pending_key ON invitations (organization_id, lower(email)) WHERE status = 'pending';
CREATE INDEX invitations_user_pending_idx ON invitations (user_id) WHERE status = 'pending';
CREATE INDEX invitations_org_created_idx ON invitations (organization_id, created_at, id);
CREATE INDEX invitations_pending_expiry_idx ON invitations (expires_at) WHERE status = 'pending';

CREATE TABLE sessions (
	token_hash bytea PRIMARY KEY,
	user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	created_at timestamptz NOT NULL DEFAULT now(),
	expires_at timestamptz NOT NULL
);
CREATE INDEX sessions_user_id_idx ON sessions (user_id);
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);

-- Idempotency-Key records: scope is a hash of the caller's credential, method and path.
CREATE TABLE idempotency_keys (
	scope        bytea NOT NULL,
	key          text NOT NULL,
	request_hash bytea NOT NULL,
	status       integer NOT NULL DEFAULT 0, -- 0 while the first request is in progress
	content_type text NOT NULL DEFAULT '',
	body         bytea,
	created_at   timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);

-- The transactional outbox. Rows are written by the transaction that makes the change
-- (xid = that transaction's id, pos = order within it); the relay reads only rows whose
-- transaction no open transaction can precede, assigns seq in (xid, pos) order, publishes,
-- then sets published_at.
CREATE TABLE outbox (
	id              uuid PRIMARY KEY,
	xid             xid8 NOT NULL DEFAULT pg_current_xact_id(),
	pos             bigserial NOT NULL,
	seq             bigint UNIQUE,
	type            text NOT NULL,
	subject         text NOT NULL,
	organization_id uuid,
	data            jsonb NOT NULL,
	occurred_at     timestamptz NOT NULL DEFAULT now(),
	published_at    timestamptz
);
CREATE INDEX outbox_unsequenced_idx ON outbox (xid, pos) WHERE seq IS NULL;
CREATE INDEX outbox_unpublished_idx ON outbox (seq) WHERE seq IS NOT NULL AND published_at IS NULL;
CREATE INDEX outbox_published_at_idx ON outbox (published_at) WHERE published_at IS NOT NULL;

-- Emails accepted by the SMTP server, recorded in the transaction that completes the job,
-- so that a retried job never sends again what was already accepted.
CREATE TABLE mail_deliveries (
	job_id       bigint PRIMARY KEY,
	kind         text NOT NULL,
	recipient_id uuid,
	delivered_at timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE mail_deliveries;
DROP TABLE outbox;
DROP TABLE idempotency_keys;
DROP TABLE sessions;
DROP TABLE invitations;
ALTER TABLE organizations DROP CONSTRAINT organizations_owner_membership_fkey;
DROP TABLE memberships;
DROP TABLE organizations;
DROP TABLE users;
