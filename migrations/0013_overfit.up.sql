-- Overfitting statistics of sweeps (issue 14): PBO and the Deflated Sharpe
-- Ratio (sf/overfit.h).
--
-- results.blocks: a sweep member's block statistics, packed by
-- sf_blocks_pack (a version byte, S, then per block the count, the sum and
-- the sum of squares of its per-bar returns, and two central moments over
-- the whole series): 20 + 20 x S bytes, 340 at S = 16. Never the return
-- series. NULL for single backtests and for members from before.
-- batches.blocks: S, even, 2 to 32 (the sweep request's "blocks");
-- batches.effective_trials: the DSR's number of trials when the user gives
-- one (NULL = the number of members); batches.overfit: the report
-- (sf_overfit_to_json), computed once the sweep has finished, the first
-- time it is asked for. Adding nullable columns and one with a constant
-- default rewrites nothing.
ALTER TABLE results ADD COLUMN blocks bytea;
ALTER TABLE batches
    ADD COLUMN blocks smallint NOT NULL DEFAULT 16 CHECK (blocks BETWEEN 2 AND 32 AND blocks % 2 = 0),
    ADD COLUMN effective_trials bigint CHECK (effective_trials >= 1),
    ADD COLUMN overfit jsonb;
