-- +goose Up
-- Counters of the emails that users cause, per limit and hour window: scope is
-- 'recipient' (key: the lower-cased address of a user who is not active) or
-- 'organization' (key: the organization's id). The transaction that enqueues an email
-- adds to its counters (INSERT ... ON CONFLICT DO UPDATE, which serializes concurrent
-- writers on the row), so a limit holds exactly; windows that have ended are pruned.
CREATE TABLE mail_limits (
	scope        text NOT NULL,
	key          text NOT NULL,
	window_start timestamptz NOT NULL,
	count        integer NOT NULL,
	PRIMARY KEY (scope, key, window_start)
);
CREATE INDEX mail_limits_window_start_idx ON mail_limits (window_start);

-- +goose Down
DROP TABLE mail_limits;
