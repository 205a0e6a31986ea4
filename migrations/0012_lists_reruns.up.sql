-- Lists and reruns (issue 13).
--
-- A job's identity, recorded so that a rerun runs the same thing:
--   * logic_hash: SHA-256 (hex) of the logic's jsonb text (jsonb prints a
--     logic in one canonical form, so equal logics hash equally). Sweep
--     members carry their batch's hash (their logic lives on the batch);
--     the list's "logic" filter uses it;
--   * logic_id: the stored logic a backtest was submitted by (logic_id), so
--     a rerun with "latest" may take that logic's current body;
--   * dataset_version: the version of the data set when the job was
--     submitted (checked by the API). An import replaces a data set's bars,
--     so an older version cannot be run again: a rerun on the same version
--     is refused once the data set moved on, unless "latest" is asked for.
--     Jobs from before this migration have none (NULL): their rerun needs
--     "latest";
--   * rerun_of: the job (batch) this one re-runs. No foreign key: retention
--     may delete the original.
-- The new columns are nullable without a default: adding them rewrites
-- nothing; the backfill of logic_hash writes every job that has a logic
-- (single backtests, details, logic executions) once.
ALTER TABLE jobs
    ADD COLUMN rerun_of uuid,
    ADD COLUMN logic_hash text,
    ADD COLUMN logic_id uuid,
    ADD COLUMN dataset_version integer;
ALTER TABLE batches
    ADD COLUMN rerun_of uuid,
    ADD COLUMN logic_hash text,
    ADD COLUMN dataset_version integer;
UPDATE batches SET logic_hash = encode(sha256(convert_to(logic::text, 'UTF8')), 'hex');
UPDATE jobs SET logic_hash = encode(sha256(convert_to(logic::text, 'UTF8')), 'hex') WHERE logic IS NOT NULL;
UPDATE jobs j SET logic_hash = b.logic_hash FROM batches b WHERE j.batch_id = b.id;

-- GET /v1/jobs pages newest first by (created_at, id), one index per filter,
-- each led by the user (tenant isolation is the index's first column). Only
-- jobs outside a sweep: members are listed by their batch (jobs_batch
-- below), so a 100,000-member sweep adds no entry to these indexes at any of
-- its members' state changes (migration 0005's reason for jobs_user_single,
-- which jobs_user_list replaces with id added for the keyset).
DROP INDEX IF EXISTS jobs_user_single;
CREATE INDEX jobs_user_list ON jobs (user_id, created_at, id) WHERE batch_id IS NULL;
CREATE INDEX jobs_user_status ON jobs (user_id, status, created_at, id) WHERE batch_id IS NULL;
CREATE INDEX jobs_user_kind ON jobs (user_id, kind, created_at, id) WHERE batch_id IS NULL;
CREATE INDEX jobs_user_symbol ON jobs (user_id, symbol, created_at, id) WHERE batch_id IS NULL;
CREATE INDEX jobs_user_logic ON jobs (user_id, logic_hash, created_at, id) WHERE batch_id IS NULL;
-- A batch's members: jobs_batch (batch_id, status) widened with the keyset's
-- columns, the same entries as before (no new index on the members' hot
-- path). A page of one status is one range of it; a page of every status is
-- a merge of the seven ranges.
DROP INDEX IF EXISTS jobs_batch;
CREATE INDEX jobs_batch ON jobs (batch_id, status, created_at, id) WHERE batch_id IS NOT NULL;
-- GET /v1/batches.
CREATE INDEX batches_user_list ON batches (user_id, created_at, id);
