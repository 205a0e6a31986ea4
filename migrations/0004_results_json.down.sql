ALTER TABLE results RESET (toast_tuple_target);
ALTER TABLE results
    ALTER COLUMN trades TYPE jsonb USING trades::jsonb,
    ALTER COLUMN equity TYPE jsonb USING sf_equity_points(equity)::jsonb;
DROP FUNCTION IF EXISTS sf_equity_points(json);
