DROP INDEX IF EXISTS batches_user_list;
DROP INDEX IF EXISTS jobs_batch;
CREATE INDEX jobs_batch ON jobs (batch_id, status) WHERE batch_id IS NOT NULL;
DROP INDEX IF EXISTS jobs_user_logic;
DROP INDEX IF EXISTS jobs_user_symbol;
DROP INDEX IF EXISTS jobs_user_kind;
DROP INDEX IF EXISTS jobs_user_status;
DROP INDEX IF EXISTS jobs_user_list;
CREATE INDEX jobs_user_single ON jobs (user_id, created_at) WHERE batch_id IS NULL;
ALTER TABLE batches
    DROP COLUMN IF EXISTS dataset_version,
    DROP COLUMN IF EXISTS logic_hash,
    DROP COLUMN IF EXISTS rerun_of;
ALTER TABLE jobs
    DROP COLUMN IF EXISTS dataset_version,
    DROP COLUMN IF EXISTS logic_id,
    DROP COLUMN IF EXISTS logic_hash,
    DROP COLUMN IF EXISTS rerun_of;
