-- jobs is a queue table: every job leaves three dead row versions (queued,
-- running, finished), and the relay's and the reaper's index scans step over
-- the dead entries of jobs_pending and jobs_running until VACUUM removes them
-- (after a 20,000-job sweep, the next relay of a single job took 60 ms). The
-- default thresholds (20% of the table) wait for millions of dead rows once
-- the table is large; vacuum and analyze it after 1,000 changed rows plus 2%.
-- Fresh statistics also keep the planner's row estimates honest (job.c).
ALTER TABLE jobs SET (
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_insert_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.02,
    autovacuum_analyze_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.02);
