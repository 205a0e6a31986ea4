/*
 * table: sfctl's human-readable tables, one format for a run on this machine
 * (backtest, sweep --data) and on the farm (submit --wait, result, batch,
 * watch), so the two can be read side by side.
 *
 * Metrics: one row per metric of sf/rank.h, in the order of the local
 * backtest (final equity, total return, CAGR, Sharpe, ...), money with 2
 * decimals, ratios with 3, shares as percentages, then the drawdown span. A
 * value that is not a number shows as "n/a" (farm results store NaN and
 * infinities as null).
 *
 * Leaderboard: rank, index, the job id (farm members only), sharpe, sortino,
 * return, max dd, trades, the ranking metric when it is not one of these,
 * then the member's parameters.
 *
 * Everything is printed on stdout. Thread safety: single-threaded CLI code.
 */
#ifndef SFCTL_TABLE_H
#define SFCTL_TABLE_H

#include <stddef.h>

#include "sf/overfit.h"
#include "sf/perf.h"

void tbl_metrics(const sf_perf *p);

/* The header line; with_jobs adds the job id column; rank_by names the
 * ranking metric (an extra column when it is not already shown). */
void tbl_board_head(const char *rank_by, int with_jobs);

/* One member; job_id NULL when the head had no job column. */
void tbl_board_row(const char *rank_by, size_t rank, size_t index, const char *job_id, const sf_perf *p,
                   const char *params_json);

/* The overfitting lines under a leaderboard: the verdict, then PBO (splits,
 * blocks, the winners' out-of-sample Sharpe, the loss share) and DSR (the
 * best member, its Sharpe, returns and the trials), or the reason when there
 * is not enough data. */
void tbl_overfit(const sf_overfit *o);

#endif
