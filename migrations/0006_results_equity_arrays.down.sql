DROP TRIGGER IF EXISTS jobs_delete_results ON jobs;
DROP FUNCTION IF EXISTS sf_results_cascade();
DELETE FROM results r WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = r.job_id);
ALTER TABLE results ADD CONSTRAINT results_job_id_fkey
    FOREIGN KEY (job_id) REFERENCES jobs (id) ON DELETE CASCADE;
DROP FUNCTION IF EXISTS sf_equity_points(json, bigint[], float8[]);
UPDATE results SET equity = json_build_object('t', to_json(equity_t), 'v', to_json(equity_v))
    WHERE equity IS NULL;
ALTER TABLE results
    DROP CONSTRAINT IF EXISTS results_equity_form,
    DROP COLUMN IF EXISTS equity_t,
    DROP COLUMN IF EXISTS equity_v,
    ALTER COLUMN equity SET NOT NULL;
