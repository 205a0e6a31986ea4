DROP INDEX IF EXISTS jobs_user_single;
CREATE INDEX jobs_user_created ON jobs (user_id, created_at);
DROP INDEX IF EXISTS jobs_idempotency;
ALTER TABLE jobs ADD CONSTRAINT jobs_user_id_idempotency_key_key UNIQUE (user_id, idempotency_key);
