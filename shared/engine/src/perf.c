/*
 * perf: backtest metrics from an equity curve and its trades; see sf/perf.h
 * and the README's "Metrics".
 *
 * Every sum goes through a Neumaier (improved Kahan) accumulator, so the
 * result does not depend on the magnitude mix of the terms and long curves do
 * not drift. Per-bar returns stop at the first bar whose previous equity is
 * <= 0: a run that lost everything has no meaningful returns after that, and
 * dividing by (near) zero would only produce Inf or denormal noise.
 */
#include "sf/perf.h"

#include <math.h>

static const char *const EXIT_NAMES[] = {
    [SF_EXIT_SIGNAL] = "signal",
    [SF_EXIT_STOP_LOSS] = "stop_loss",
    [SF_EXIT_TAKE_PROFIT] = "take_profit",
    [SF_EXIT_END_OF_DATA] = "end_of_data",
};

#define SECS_PER_YEAR (365.2425 * 86400.0)

const char *sf_exit_reason_name(sf_exit_reason r)
{
    if ((unsigned)r >= sizeof EXIT_NAMES / sizeof EXIT_NAMES[0])
        return "unknown";
    return EXIT_NAMES[r];
}

/* ---- compensated summation ---------------------------------------------------------- */

typedef struct ksum {
    double s, c;
} ksum;

/* Branch-free Neumaier step: the compiler turns the selects into blends. */
static inline void ksum_add(ksum *k, double x)
{
    double t = k->s + x;
    int s_big = fabs(k->s) >= fabs(x);
    double big = s_big ? k->s : x;
    double small = s_big ? x : k->s;
    k->c += (big - t) + small;
    k->s = t;
}

static double ksum_get(const ksum *k)
{
    return k->s + k->c;
}

/* ---- the curve, in one pass ---------------------------------------------------------------- */

/*
 * DESIGN: the curve is read once. A flat bar (equity unchanged: most bars of
 * most strategies, which sit out of the market part of the time) has r = 0
 * and cannot move the drawdown, so it costs one comparison: no division,
 * nothing summed. Moved bars add r, r^2 and min(r,0)^2 to plain partial sums
 * that are folded into Neumaier accumulators every PERF_BLOCK bars: blocked
 * summation, whose rounding error grows with the block, not the curve; the
 * order is fixed, so results are bit-identical on every run. Sharpe's
 * variance is (S2 - S1^2/m) / (m-1); for per-bar returns |mean| is far below
 * the deviation, so the cancellation is harmless. Returns stop at the first
 * bar whose previous equity is <= 0 (ruin); the drawdown compares by
 * multiplication and divides only when a deeper trough is found.
 */
#define PERF_BLOCK 512

typedef struct curve_pass {
    size_t m;          /* usable returns: i = 1.. while equity[i-1] > 0 */
    ksum s1, s2, down; /* sum r, sum r^2, sum min(r,0)^2 */
    size_t best_peak, best_trough;
    double worst; /* deepest drawdown fraction */
} curve_pass;

typedef struct partial {
    double r, sq, down;
} partial;

static void fold(curve_pass *p, partial *b)
{
    ksum_add(&p->s1, b->r);
    ksum_add(&p->s2, b->sq);
    ksum_add(&p->down, b->down);
    *b = (partial){0, 0, 0};
}

static void scan_curve(const double *equity, size_t n, curve_pass *p)
{
    *p = (curve_pass){0};
    size_t m = n > 1 && equity[0] > 0 ? n - 1 : 0;
    size_t peak = 0, fold_at = PERF_BLOCK;
    double peak_v = equity[0];
    double floor_ratio = 1.0; /* 1 - worst: below floor_ratio * peak is deeper */
    partial b = {0, 0, 0};
    for (size_t i = 1; i < n; i++) {
        if (i >= fold_at) {
            fold(p, &b);
            fold_at += PERF_BLOCK;
        }
        double prev = equity[i - 1], cur = equity[i];
        if (cur == prev)
            continue;
        if (i <= m) {
            double r = cur / prev - 1.0, sq = r * r;
            b.r += r;
            b.sq += sq;
            b.down += r < 0 ? sq : 0.0;
        }
        if (!(cur > 0) && m > i)
            m = i; /* ruin: no return after this bar */
        if (cur > peak_v) {
            peak_v = cur;
            peak = i;
        } else if (cur < floor_ratio * peak_v && peak_v > 0) {
            double dd = (peak_v - cur) / peak_v;
            if (dd > p->worst) {
                p->worst = dd;
                floor_ratio = 1.0 - dd;
                p->best_peak = peak;
                p->best_trough = i;
            }
        }
    }
    fold(p, &b);
    p->m = m;
}

static void risk_ratios(const curve_pass *p, double ppy, sf_perf *out)
{
    out->sharpe = NAN;
    out->sortino = NAN;
    if (p->m == 0 || !(ppy > 0))
        return;
    double m = (double)p->m;
    double s1 = ksum_get(&p->s1);
    double mean = s1 / m;
    double dd = ksum_get(&p->down) / m;
    if (dd > 0)
        out->sortino = mean / sqrt(dd) * sqrt(ppy);
    if (p->m < 2)
        return;
    double ss = ksum_get(&p->s2) - s1 * mean;
    double sd = ss > 0 ? sqrt(ss / (m - 1)) : 0;
    if (sd > 0)
        out->sharpe = mean / sd * sqrt(ppy);
}

/* ---- trades --------------------------------------------------------------------------------- */

static void trade_stats(const sf_trade *trades, size_t n_trades, sf_perf *out)
{
    ksum gain = {0, 0}, loss = {0, 0}, fees = {0, 0};
    size_t wins = 0;
    for (size_t i = 0; i < n_trades; i++) {
        double pnl = trades[i].pnl;
        if (pnl > 0) {
            wins++;
            ksum_add(&gain, pnl);
        } else if (pnl < 0) {
            ksum_add(&loss, -pnl);
        }
        ksum_add(&fees, trades[i].fees);
    }
    double g = ksum_get(&gain), l = ksum_get(&loss);
    out->trades = n_trades;
    out->fees = ksum_get(&fees);
    out->win_rate = n_trades ? (double)wins / (double)n_trades : NAN;
    if (n_trades == 0 || (g == 0 && l == 0))
        out->profit_factor = NAN;
    else
        out->profit_factor = l > 0 ? g / l : INFINITY;
}

/* ---- all together ------------------------------------------------------------------------- */

static double cagr(const int64_t *ts, size_t n, double initial, double final)
{
    double years = (double)(ts[n - 1] - ts[0]) / SECS_PER_YEAR;
    if (!(years > 0) || !(initial > 0))
        return NAN;
    if (final <= 0)
        return -1.0;
    return pow(final / initial, 1.0 / years) - 1.0;
}

void sf_perf_compute(const int64_t *ts, const double *equity, size_t n, double initial, const sf_trade *trades,
                     size_t n_trades, size_t bars_in_position, double periods_per_year, sf_perf *out)
{
    trade_stats(trades, n_trades, out);
    if (n == 0) {
        out->final_equity = out->total_return = out->cagr = NAN;
        out->sharpe = out->sortino = out->exposure = NAN;
        out->max_drawdown = 0;
        out->drawdown_peak_time = out->drawdown_trough_time = 0;
        return;
    }
    out->final_equity = equity[n - 1];
    out->total_return = initial > 0 ? out->final_equity / initial - 1.0 : NAN;
    out->cagr = cagr(ts, n, initial, out->final_equity);
    curve_pass pass;
    scan_curve(equity, n, &pass);
    risk_ratios(&pass, periods_per_year, out);
    out->max_drawdown = pass.worst;
    out->drawdown_peak_time = ts[pass.best_peak];
    out->drawdown_trough_time = ts[pass.best_trough];
    out->exposure = (double)bars_in_position / (double)n;
}
