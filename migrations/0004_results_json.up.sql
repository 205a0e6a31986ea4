-- Results: cheaper to write at farm rates (thousands of completions a second).
-- trades and equity become json (validated text: no jsonb tree to build on
-- insert); metrics stays jsonb (the leaderboard orders by metrics->>'sharpe').
-- Workers store the equity curve in columns, {"t": [Unix seconds...], "v":
-- [values...]} (about half the text of [{"time", "equity"}]); rows written
-- before keep the array form. sf_equity_points() gives either form as the
-- documented [{"time": "<ISO-8601 UTC>", "equity": <number>}] array, for the
-- API and for queries. A row up to a page stays inline and uncompressed
-- (toast_tuple_target): no pglz on the completion path.
ALTER TABLE results
    ALTER COLUMN trades TYPE json USING trades::json,
    ALTER COLUMN equity TYPE json USING equity::json;
ALTER TABLE results SET (toast_tuple_target = 8160);

CREATE FUNCTION sf_equity_points(e json) RETURNS json
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN json_typeof(e) = 'object' THEN
        ('[' || coalesce((
            SELECT string_agg(format('{"time": %s, "equity": %s}',
                       to_json(to_char(to_timestamp((t.x #>> '{}')::float8) AT TIME ZONE 'UTC',
                                       'YYYY-MM-DD"T"HH24:MI:SS"Z"')),
                       v.x::text), ', ' ORDER BY t.i)
            FROM json_array_elements(e -> 't') WITH ORDINALITY AS t(x, i)
            JOIN json_array_elements(e -> 'v') WITH ORDINALITY AS v(x, i) ON v.i = t.i), '') || ']')::json
    ELSE e END
$$;
