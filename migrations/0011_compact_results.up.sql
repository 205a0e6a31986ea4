-- Compact sweep results. A sweep member stores its metrics and its
-- combination's parameters (results.params) and no trades or equity curve:
-- a few hundred bytes a row where its trade list was about 0.9 MB. Single
-- backtests store everything, as before.
--
-- A member's trades and curve are computed again when they are wanted: the
-- engine is deterministic, so a single backtest of the member's logic (the
-- batch's logic with the member's combination applied) over the same bars
-- gives them bit for bit. That backtest is the member's "detail" job
-- (jobs.detail_of = the member, at most one per member): sf-scheduler
-- enqueues one for each of the best batches.detail_top members once a sweep
-- has finished (detail_source 'top'; batches.details_at records that it was
-- done), and sf-api enqueues one when a member's result is asked for and it
-- has none ('request'). A detail job is an ordinary high-priority backtest
-- with its own results row; sf-api serves it as the member's result.
--
-- The new CHECK constraints hold for every row already there (the old
-- equity form implies the new one; the new columns are NULL), so they are
-- added NOT VALID: no scan of results or jobs under the migration's lock.
ALTER TABLE results
    ALTER COLUMN trades DROP NOT NULL,
    ADD COLUMN params jsonb,                    -- a sweep member's {"path": value}; NULL otherwise
    DROP CONSTRAINT results_equity_form,
    ADD CONSTRAINT results_equity_form CHECK (CASE WHEN trades IS NULL
        THEN equity IS NULL AND equity_t IS NULL AND equity_v IS NULL
        ELSE equity IS NOT NULL OR (equity_t IS NOT NULL AND equity_v IS NOT NULL
             AND cardinality(equity_t) = cardinality(equity_v)) END) NOT VALID;

ALTER TABLE batches
    ADD COLUMN detail_top integer NOT NULL DEFAULT 10 CHECK (detail_top BETWEEN 0 AND 100),
    ADD COLUMN details_at timestamptz;          -- the best members' details were enqueued; NULL = not yet
-- Sweeps from before stored every member's trades: nothing to enqueue.
UPDATE batches SET details_at = created_at;
CREATE INDEX batches_details_due ON batches (created_at) WHERE details_at IS NULL;

ALTER TABLE jobs
    ADD COLUMN detail_of uuid,                  -- the sweep member whose trades this backtest gives
    ADD COLUMN detail_source text CHECK (detail_source IN ('top', 'request')),
    ADD CONSTRAINT jobs_detail CHECK ((detail_of IS NULL) = (detail_source IS NULL)
                                      AND (detail_of IS NULL OR batch_id IS NULL)) NOT VALID;
CREATE UNIQUE INDEX jobs_detail_of ON jobs (detail_of) WHERE detail_of IS NOT NULL;
-- A member's detail goes with the member (retention, a deleted batch or user).
-- Only members have details: a statement that deletes none (the detail jobs'
-- own deletion among them) issues no DELETE, so the trigger does not recurse.
CREATE FUNCTION sf_jobs_delete_details() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM gone WHERE batch_id IS NOT NULL) THEN
        DELETE FROM jobs j USING gone g WHERE j.detail_of = g.id AND g.batch_id IS NOT NULL;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_delete_details AFTER DELETE ON jobs
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION sf_jobs_delete_details();
