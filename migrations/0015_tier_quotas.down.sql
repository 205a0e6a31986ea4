DROP INDEX IF EXISTS jobs_user_active;
