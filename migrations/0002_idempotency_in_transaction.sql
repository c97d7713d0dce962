-- +goose Up
-- Idempotency keys are now claimed and completed inside the change's own transaction, so
-- a committed row always holds its response (status 0 exists only inside that
-- transaction). Rows that an older version left in progress can never complete: a retry
-- now does the work.
DELETE FROM idempotency_keys WHERE status = 0;

-- +goose Down
SELECT 1;
