DROP INDEX IF EXISTS signals_webhook_due;
ALTER TABLE signals
    DROP COLUMN IF EXISTS webhook_done_at,
    DROP COLUMN IF EXISTS webhook_due_at,
    DROP COLUMN IF EXISTS webhook_error,
    DROP COLUMN IF EXISTS webhook_http_status,
    DROP COLUMN IF EXISTS webhook_attempts,
    DROP COLUMN IF EXISTS webhook_status,
    DROP COLUMN IF EXISTS side;
ALTER TABLE schedules
    DROP COLUMN IF EXISTS webhook_secret,
    DROP COLUMN IF EXISTS webhook_url;
