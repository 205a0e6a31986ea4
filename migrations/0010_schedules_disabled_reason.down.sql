DROP TRIGGER IF EXISTS schedules_count_anew ON schedules;
DROP FUNCTION IF EXISTS sf_schedules_count_anew();
ALTER TABLE schedules
    DROP COLUMN IF EXISTS failures_since,
    DROP COLUMN IF EXISTS disabled_at,
    DROP COLUMN IF EXISTS disabled_reason;
