/*
 * result: backtest results and sweep leaderboards as JSON text.
 *
 * Backtest:
 *   {"metrics": {"final_equity", "total_return", "cagr", "sharpe", "sortino",
 *                "max_drawdown", "max_drawdown_peak_time",
 *                "max_drawdown_trough_time", "win_rate", "profit_factor",
 *                "trades", "exposure", "fees"},
 *    "trades": [{"entry_time", "entry_price", "exit_time", "exit_price", "qty",
 *                "pnl", "fees", "exit_reason", "side"}],
 *    "equity": [{"time", "equity"}]}
 * Times are ISO-8601 UTC text ("2024-01-02T00:00:00Z"); doubles are printed
 * with %.17g, so they read back bit for bit; NaN and +-Inf become null.
 * "side" is "long" or "short". With with_trades / with_equity off, the array
 * is written empty ([]), so the object always has the three keys.
 *
 * Sweep leaderboard:
 *   {"combinations": N, "rank_by": "sharpe",
 *    "members": [{"rank", "index", "params": {...}, "metrics": {...}}],
 *    "overfit": {...} (sf_overfit_to_json; only with has_overfit)}
 *
 * Thread safety: pure; the functions append to the caller's buffer.
 * Ownership: out is caller storage (sf_buf); on failure (SF_ERR_LIMIT when the
 * buffer's maximum is reached, SF_ERR_NOMEM) out may hold a partial text.
 */
#ifndef SF_RESULT_H
#define SF_RESULT_H

#include "sf/buf.h"
#include "sf/engine.h"
#include "sf/err.h"
#include "sf/perf.h"
#include "sf/sweep.h"

/* Append the metrics object {"final_equity": ..., ...}. */
sf_status sf_perf_to_json(const sf_perf *perf, sf_buf *out, sf_err *err);

/*
 * Read back a metrics object as sf_perf_to_json writes it (the farm's stored
 * metrics, as PostgreSQL prints them: a number at or above 2^63 may be an
 * integer of 20 digits or more, read as the double it is), so it can be
 * shown as a local run is. A key that is absent or
 * null reads as NaN (a double: so a stored infinite profit factor comes back
 * as NaN), 0 (trades) or 0 (a time); other keys are ignored. Errors:
 * SF_ERR_PARSE (not a JSON object, a key of the wrong type or a bad time).
 */
sf_status sf_perf_from_json(const char *text, size_t len, sf_perf *out, sf_err *err);

/* Append the backtest object. */
sf_status sf_result_to_json(const sf_result *result, int with_trades, int with_equity, sf_buf *out, sf_err *err);

/* Append the trades array alone: [{"entry_time", ...}] as in the backtest
 * object. */
sf_status sf_result_trades_json(const sf_result *result, sf_buf *out, sf_err *err);

/* Append the sweep leaderboard object. */
sf_status sf_sweep_to_json(const sf_sweep_result *sweep, sf_buf *out, sf_err *err);

#endif
