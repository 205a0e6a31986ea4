DROP INDEX IF EXISTS signals_schedule_list;
DROP INDEX IF EXISTS schedules_user_list;
DROP INDEX IF EXISTS logics_user_list;
ALTER TABLE schedules
    DROP COLUMN IF EXISTS logic_version,
    DROP COLUMN IF EXISTS logic_id;
ALTER TABLE batches
    DROP COLUMN IF EXISTS logic_version,
    DROP COLUMN IF EXISTS logic_id;
ALTER TABLE jobs DROP COLUMN IF EXISTS logic_version;
DROP TABLE IF EXISTS logic_versions;
ALTER TABLE logics
    DROP COLUMN IF EXISTS deleted_at,
    DROP COLUMN IF EXISTS updated_at,
    DROP COLUMN IF EXISTS version;
