DROP TRIGGER IF EXISTS jobs_delete_details ON jobs;
DROP FUNCTION IF EXISTS sf_jobs_delete_details();
DROP INDEX IF EXISTS jobs_detail_of;
ALTER TABLE jobs
    DROP CONSTRAINT IF EXISTS jobs_detail,
    DROP COLUMN IF EXISTS detail_source,
    DROP COLUMN IF EXISTS detail_of;
DROP INDEX IF EXISTS batches_details_due;
ALTER TABLE batches
    DROP COLUMN IF EXISTS details_at,
    DROP COLUMN IF EXISTS detail_top;
-- Compact rows get an empty trade list and curve (the columns were NOT NULL).
UPDATE results SET trades = '[]', equity_t = '{}', equity_v = '{}' WHERE trades IS NULL;
ALTER TABLE results
    DROP CONSTRAINT IF EXISTS results_equity_form,
    DROP COLUMN IF EXISTS params,
    ALTER COLUMN trades SET NOT NULL,
    ADD CONSTRAINT results_equity_form CHECK (
        equity IS NOT NULL
        OR (equity_t IS NOT NULL AND equity_v IS NOT NULL
            AND cardinality(equity_t) = cardinality(equity_v)));
