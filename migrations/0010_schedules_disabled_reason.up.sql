-- A schedule whose executions keep failing (invalid logic, a data set that is
-- gone) is disabled by sf-scheduler after SF_SCHEDULE_MAX_FAILURES
-- consecutive failed executions, and the reason is kept on the row for the
-- user to read. The count is not stored: it is read from the newest finished
-- executions (schedule_firings -> jobs) fired at or after failures_since, so a
-- success ends it. Re-enabling a schedule, or changing its logic, symbol or
-- timeframe, starts a new count (failures_since = now()); re-enabling also
-- clears the reason.
ALTER TABLE schedules
    ADD COLUMN disabled_reason text,            -- why sf-scheduler disabled it; NULL otherwise
    ADD COLUMN disabled_at     timestamptz,
    ADD COLUMN failures_since  timestamptz NOT NULL DEFAULT now();

CREATE FUNCTION sf_schedules_count_anew() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.enabled AND NOT OLD.enabled THEN
        NEW.disabled_reason := NULL;
        NEW.disabled_at := NULL;
    END IF;
    NEW.failures_since := now();
    RETURN NEW;
END
$$;
CREATE TRIGGER schedules_count_anew BEFORE UPDATE OF enabled, logic, symbol, timeframe ON schedules
    FOR EACH ROW
    WHEN ((NEW.enabled AND NOT OLD.enabled) OR OLD.logic IS DISTINCT FROM NEW.logic
          OR OLD.symbol IS DISTINCT FROM NEW.symbol OR OLD.timeframe IS DISTINCT FROM NEW.timeframe)
    EXECUTE FUNCTION sf_schedules_count_anew();
