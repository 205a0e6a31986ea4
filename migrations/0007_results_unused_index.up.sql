-- results (created_at) was never read: retention deletes jobs, and their
-- results go by job_id (migration 0006's trigger). One index entry fewer per
-- completion.
DROP INDEX IF EXISTS results_created;
