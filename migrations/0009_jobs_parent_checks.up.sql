-- jobs.user_id and jobs.batch_id: one check per statement instead of one per
-- row. A foreign key runs a trigger, a query and a row lock for every
-- inserted row; a 20,000-member sweep is one INSERT whose rows share one
-- user and one batch, and those checks were about 10 of its 15 us a row here
-- (bench-farm's sweep, in sf-api's backend). The statement triggers below
-- keep what the keys gave:
--   * an insert locks each distinct parent FOR KEY SHARE, as a foreign key
--     does (a concurrent delete of the parent waits for the insert, and an
--     insert after a committed delete finds no parent), and fails with
--     SQLSTATE 23503 naming the missing parent;
--   * user_id and batch_id never change (nothing in the farm changes them;
--     changing one fails);
--   * deleting users or batches deletes their jobs (ON DELETE CASCADE), and
--     the jobs' own cascades (results, signals) follow.
ALTER TABLE jobs DROP CONSTRAINT jobs_user_id_fkey, DROP CONSTRAINT jobs_batch_id_fkey;

CREATE FUNCTION sf_jobs_parents_check() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    missing uuid;
BEGIN
    PERFORM 1 FROM users u WHERE u.id IN (SELECT DISTINCT a.user_id FROM added a) FOR KEY SHARE;
    SELECT a.user_id INTO missing FROM (SELECT DISTINCT user_id FROM added) a
        WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = a.user_id) LIMIT 1;
    IF FOUND THEN
        RAISE foreign_key_violation USING MESSAGE = format(
            'insert on table "jobs" violates its parent check: user %s does not exist', missing);
    END IF;
    PERFORM 1 FROM batches b
        WHERE b.id IN (SELECT DISTINCT a.batch_id FROM added a WHERE a.batch_id IS NOT NULL) FOR KEY SHARE;
    SELECT a.batch_id INTO missing FROM (SELECT DISTINCT batch_id FROM added WHERE batch_id IS NOT NULL) a
        WHERE NOT EXISTS (SELECT 1 FROM batches b WHERE b.id = a.batch_id) LIMIT 1;
    IF FOUND THEN
        RAISE foreign_key_violation USING MESSAGE = format(
            'insert on table "jobs" violates its parent check: batch %s does not exist', missing);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_parents_check AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION sf_jobs_parents_check();

CREATE FUNCTION sf_jobs_parents_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE foreign_key_violation USING MESSAGE = format(
        'job %s: user_id and batch_id do not change', OLD.id);
END
$$;
CREATE TRIGGER jobs_parents_fixed BEFORE UPDATE OF user_id, batch_id ON jobs FOR EACH ROW
    WHEN (OLD.user_id IS DISTINCT FROM NEW.user_id OR OLD.batch_id IS DISTINCT FROM NEW.batch_id)
    EXECUTE FUNCTION sf_jobs_parents_fixed();

-- One function for both cascades: TG_ARGV[0] names the jobs column that
-- points at the deleted rows.
CREATE FUNCTION sf_jobs_cascade() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('DELETE FROM jobs j USING gone g WHERE j.%I = g.id', TG_ARGV[0]);
    RETURN NULL;
END
$$;
CREATE TRIGGER users_delete_jobs AFTER DELETE ON users
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION sf_jobs_cascade('user_id');
CREATE TRIGGER batches_delete_jobs AFTER DELETE ON batches
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION sf_jobs_cascade('batch_id');
