DROP TRIGGER IF EXISTS batches_delete_jobs ON batches;
DROP TRIGGER IF EXISTS users_delete_jobs ON users;
DROP TRIGGER IF EXISTS jobs_parents_fixed ON jobs;
DROP TRIGGER IF EXISTS jobs_parents_check ON jobs;
DROP FUNCTION IF EXISTS sf_jobs_cascade();
DROP FUNCTION IF EXISTS sf_jobs_parents_fixed();
DROP FUNCTION IF EXISTS sf_jobs_parents_check();
DELETE FROM jobs j WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = j.user_id)
    OR (j.batch_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM batches b WHERE b.id = j.batch_id));
ALTER TABLE jobs
    ADD CONSTRAINT jobs_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    ADD CONSTRAINT jobs_batch_id_fkey FOREIGN KEY (batch_id) REFERENCES batches (id) ON DELETE CASCADE;
