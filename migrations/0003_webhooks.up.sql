-- Webhooks of live schedules: a schedule may name a URL that every signal of
-- its logic executions is POSTed to, signed with HMAC-SHA256 under its secret.
-- The signal row doubles as the delivery's outbox: webhook_status 'pending'
-- rows are (re)delivered by workers (at least once; receivers dedupe by
-- job_id), webhook_due_at is the time the next attempt may start (a lease
-- while a worker is delivering).
ALTER TABLE schedules
    ADD COLUMN webhook_url    text,             -- NULL = no webhook
    ADD COLUMN webhook_secret text;             -- HMAC key; NULL = unsigned

ALTER TABLE signals
    ADD COLUMN side                text CHECK (side IN ('long', 'short')), -- NULL when flat
    ADD COLUMN webhook_status      text CHECK (webhook_status IN ('pending', 'delivered', 'failed')),
    ADD COLUMN webhook_attempts    integer NOT NULL DEFAULT 0,
    ADD COLUMN webhook_http_status integer,     -- last HTTP status received
    ADD COLUMN webhook_error       text,        -- why the last delivery failed
    ADD COLUMN webhook_due_at      timestamptz,
    ADD COLUMN webhook_done_at     timestamptz;
CREATE INDEX signals_webhook_due ON signals (webhook_due_at) WHERE webhook_status = 'pending';
