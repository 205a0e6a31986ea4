-- The equity curve as two arrays, times (Unix seconds) and values, which the
-- workers send in PostgreSQL's binary format: no number is printed by the
-- worker or parsed by the server. As json text it was most of a result's
-- bytes and of a completion's cost (about 35 of 85 us a row here, 10,000-row
-- batches of 100-point curves). Rows written before keep the json column;
-- sf_equity_points(equity, equity_t, equity_v) renders either form as the
-- documented [{"time": "<ISO-8601 UTC>", "equity": <number>}] array.
ALTER TABLE results
    ALTER COLUMN equity DROP NOT NULL,
    ADD COLUMN equity_t bigint[],
    ADD COLUMN equity_v float8[],
    ADD CONSTRAINT results_equity_form CHECK (
        equity IS NOT NULL
        OR (equity_t IS NOT NULL AND equity_v IS NOT NULL
            AND cardinality(equity_t) = cardinality(equity_v)));

-- float8 text is the shortest that reads back bit for bit at
-- extra_float_digits 1 (the default), whatever the caller's session says.
CREATE FUNCTION sf_equity_points(e json, t bigint[], v float8[]) RETURNS json
LANGUAGE sql STABLE PARALLEL SAFE SET extra_float_digits = 1 AS $$
    SELECT CASE WHEN t IS NULL THEN sf_equity_points(e) ELSE
        ('[' || coalesce((
            SELECT string_agg(format('{"time": %s, "equity": %s}',
                       to_json(to_char(to_timestamp(p.t) AT TIME ZONE 'UTC',
                                       'YYYY-MM-DD"T"HH24:MI:SS"Z"')),
                       CASE WHEN p.v IN ('NaN', 'Infinity', '-Infinity') THEN 'null'
                            ELSE p.v::text END), ', ' ORDER BY p.i)
            FROM unnest(t, v) WITH ORDINALITY AS p(t, v, i)), '') || ']')::json
    END
$$;

-- results.job_id's foreign key ran a trigger, one query and a row lock per
-- inserted result (about a tenth of a completion's cost). The completion
-- inserts a result only in the statement that moves its job to succeeded
-- (the row is joined to the UPDATE ... RETURNING), so the key can't dangle on
-- insert; deleting jobs (retention, a deleted user) removes their results
-- with one statement-level trigger instead of ON DELETE CASCADE.
ALTER TABLE results DROP CONSTRAINT results_job_id_fkey;

CREATE FUNCTION sf_results_cascade() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM results r USING gone g WHERE r.job_id = g.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_delete_results AFTER DELETE ON jobs
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION sf_results_cascade();
