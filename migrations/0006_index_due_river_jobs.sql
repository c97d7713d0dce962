-- +goose Up
-- River's scheduler looks every few seconds for scheduled and retryable jobs that are due.
-- Its own indexes lead with state and queue, so with many scheduled jobs (two reminders
-- per invitation, days ahead) it read the whole table each time; this index finds the due
-- ones directly.
CREATE INDEX river_job_due_idx ON river_job (scheduled_at) WHERE state IN ('retryable', 'scheduled');

-- +goose Down
DROP INDEX river_job_due_idx;
