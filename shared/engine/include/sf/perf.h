/*
 * perf: performance metrics of a finished backtest, from its equity curve and
 * trades, as the README defines them (final equity, total return, CAGR, Sharpe,
 * Sortino, max drawdown with peak and trough times, win rate, profit factor,
 * trades, exposure, fees). Sums use compensated (Kahan-Neumaier) summation.
 *
 * Undefined values (Sharpe of a flat curve, profit factor with no losing
 * trade, win rate with no trades) are NaN or +Inf as documented per field;
 * serialisers write NaN/Inf as JSON null.
 *
 * Thread safety: pure. Ownership: caller storage only.
 */
#ifndef SF_PERF_H
#define SF_PERF_H

#include <stddef.h>
#include <stdint.h>

typedef enum sf_exit_reason {
    SF_EXIT_SIGNAL,
    SF_EXIT_STOP_LOSS,
    SF_EXIT_TAKE_PROFIT,
    SF_EXIT_END_OF_DATA
} sf_exit_reason;

typedef struct sf_trade {
    int side; /* +1 long, -1 short */
    int64_t entry_time;
    double entry_price; /* after slippage */
    int64_t exit_time;
    double exit_price; /* after slippage */
    double qty;        /* > 0 */
    double pnl;        /* net of both fees */
    double fees;       /* entry + exit fee */
    sf_exit_reason exit_reason;
} sf_trade;

typedef struct sf_perf {
    double final_equity;
    double total_return; /* final / initial - 1 */
    double cagr;         /* NaN when the span is zero */
    double sharpe;       /* NaN when fewer than 2 returns or zero deviation */
    double sortino;      /* NaN when no negative return */
    double max_drawdown; /* positive fraction of the running peak */
    int64_t drawdown_peak_time;
    int64_t drawdown_trough_time;
    double win_rate;      /* share of trades with pnl > 0; NaN with no trades */
    double profit_factor; /* gross profit / gross loss; +Inf with no loss, NaN with no trades */
    size_t trades;
    double exposure; /* share of bars at whose close a position is held */
    double fees;
} sf_perf;

const char *sf_exit_reason_name(sf_exit_reason r);

/*
 * ts/equity: n points (n >= 1); initial: starting capital; trades: n_trades;
 * bars_in_position: bars at whose close a position was held;
 * periods_per_year: for annualising Sharpe and Sortino (252 for daily bars).
 *
 * Details: returns r_i = equity[i]/equity[i-1] - 1 stop at the first i whose
 * equity[i-1] <= 0; Sortino's downside mean is over all returns; CAGR uses
 * years = (ts[n-1] - ts[0]) / (365.2425 * 86400) and is -1 when the final
 * equity is <= 0; when the curve never falls, max_drawdown is 0 and both
 * drawdown times are ts[0]; of equal drawdowns the first is reported;
 * profit_factor is NaN when no trade made or lost money (all pnl 0); Sharpe
 * and Sortino are NaN when periods_per_year <= 0. n == 0 gives NaN for the
 * curve metrics (a caller bug, but no crash).
 */
void sf_perf_compute(const int64_t *ts, const double *equity, size_t n, double initial, const sf_trade *trades,
                     size_t n_trades, size_t bars_in_position, double periods_per_year, sf_perf *out);

/*
 * The same metrics from a curve fed in pieces, for a caller that produces the
 * curve piece by piece and need not keep it (the engine feeds each chunk of
 * bars while it is in cache): sf_perf_curve_init for n points, then
 * sf_perf_curve_feed with the points in order (any split: pieces of len >= 0
 * adding up to n), then sf_perf_curve_finish, whose out is bit for bit what
 * sf_perf_compute gives on the whole curve (sf_perf_compute is these three
 * calls). Fields of sf_perf_curve are private.
 */
typedef struct sf_perf_ksum {
    double s, c; /* a compensated sum: value, compensation */
} sf_perf_ksum;

typedef struct sf_perf_curve {
    size_t n, next, m, peak, fold_at, best_peak, best_trough;
    double prev, peak_v, floor_ratio, worst;
    sf_perf_ksum s1, s2, down;
    double part[3]; /* the current block's plain sums: r, r^2, min(r,0)^2 */
} sf_perf_curve;

void sf_perf_curve_init(sf_perf_curve *c, size_t n);
void sf_perf_curve_feed(sf_perf_curve *c, const double *points, size_t len);
void sf_perf_curve_finish(const sf_perf_curve *c, const int64_t *ts, double initial, const sf_trade *trades,
                          size_t n_trades, size_t bars_in_position, double periods_per_year, sf_perf *out);

#endif
